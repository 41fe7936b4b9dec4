"""The whole loop from an app's write to the lake: API -> core systems -> sync -> silver, and
API -> outbox -> relay -> broker -> events ingest -> bronze.events.

The API runs as its own process from its own environment (serving/.venv, as `make serve` runs it), on
the same MO_HOME as the platform: the embedded defaults on both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mo.oltp.db import make_engine, migrate
from mo.oltp.models import Policy
from mo.oltp.outbox import OUTBOX
from tests.conftest import free_port

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
SERVING_PYTHON = SERVING / ".venv" / "bin" / "python"
PASSWORD = "loop-test-password-0123"


def _call(base: str, method: str, path: str, *, token: str | None = None, body=None, form=None, headers=None):  # type: ignore[no-untyped-def]
    data, sent = None, dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def source(kafka_settings):  # type: ignore[no-untyped-def]
    """The core systems on the embedded default (SQLite under MO_HOME), migrated, with a small world."""
    from mo.generator.world import generate_world

    engine = make_engine(kafka_settings.resolved_source_url)
    migrate(engine)
    generate_world(engine, customers=40, seed=3, start_date=date.today() - timedelta(days=60))
    yield engine
    engine.dispose()


ACCOUNT = f"""
from app.core.config import Settings
from app.core.stores import source_engine
from app.services.accounts import create_user

with source_engine(Settings()).begin() as conn:
    create_user(conn, username="loop-agent", password="{PASSWORD}", role="service_agent")
"""


@pytest.fixture
def api(kafka_settings, source) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The serving API on a free port over the test's MO_HOME, with a service agent account."""
    assert SERVING_PYTHON.exists(), "serving/.venv is missing: run `make serving-env`"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVING_")}
    env["PYTHONPATH"] = f"{REPO}:{SERVING}"
    account = ACCOUNT
    subprocess.run([str(SERVING_PYTHON), "-c", account], cwd=SERVING, env=env, check=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        [str(SERVING_PYTHON), "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=SERVING,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _call(base, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else "exited"
            assert time.monotonic() < deadline, "the API did not answer within 60 s"
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_an_api_write_reaches_silver_by_the_sync_and_bronze_events_by_the_outbox(  # type: ignore[no-untyped-def]
    spark, kafka_settings, source, api
):
    from mo.events.relay import relay_once
    from spark_jobs.events_ingest import EVENTS_TABLE, ingest_events
    from spark_jobs.session import get_spark
    from spark_jobs.sync import run_sync

    settings = kafka_settings
    engine = source
    lake = get_spark(settings)
    run_sync(lake, settings)
    catalog = settings.catalog_name

    today = date.today()
    with engine.connect() as conn:
        policy = conn.execute(
            select(Policy.policy_no, Policy.customer_id, Policy.start_date, Policy.sum_insured)
            .where(Policy.status == "in_force", Policy.start_date < today, Policy.end_date >= today)
            .order_by(Policy.id)
            .limit(1)
        ).one()
    status, token = _call(
        api, "POST", "/v1/auth/token", form={"grant_type": "password", "username": "loop-agent", "password": PASSWORD}
    )
    assert status == 200, token
    loss_at = datetime.combine(max(policy.start_date, today - timedelta(days=1)), datetime.min.time()).isoformat()
    claim = {
        "customer_id": policy.customer_id,
        "policy_no": policy.policy_no,
        "incident_at": loss_at,
        "incident_type": "other",
        "incident_province": "广东省",
        "incident_city": "深圳市",
        "amount_claimed": str(min(policy.sum_insured, 1000)),
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, filed = _call(api, "POST", "/v1/claims", token=token["access_token"], body=claim, headers=key)
    if status == 422 and any(e["field"] == "/body/incident_city" for e in filed.get("errors", [])):
        pytest.fail(f"the test's incident place is refused: {filed}")
    assert status == 201, filed
    again = _call(api, "POST", "/v1/claims", token=token["access_token"], body=claim, headers=key)
    assert again == (201, filed)  # a retry answers the same and writes nothing again
    claim_no = filed["claim_no"]

    with engine.connect() as conn:
        events = conn.execute(select(OUTBOX.c.event_id, OUTBOX.c.event_type, OUTBOX.c.payload)).all()
    (filed_event,) = [
        e for e in events if e.event_type == "claim_filed" and json.loads(e.payload)["payload"]["claim_no"] == claim_no
    ]

    # API -> outbox -> relay -> broker -> ingest -> bronze.events
    assert relay_once(engine, settings).published >= 1
    ingest_events(lake, settings, idle_stop_s=1.0)
    lake.sql(f"REFRESH TABLE {catalog}.{EVENTS_TABLE}")
    landed = lake.sql(
        f"SELECT event_type, customer_id FROM {catalog}.{EVENTS_TABLE} WHERE event_id = '{filed_event.event_id}'"
    ).collect()
    assert [(r.event_type, r.customer_id) for r in landed] == [("claim_filed", policy.customer_id)]

    # API -> core systems -> sync -> silver
    run_sync(lake, settings)
    lake.sql(f"REFRESH TABLE {catalog}.silver.claims")
    rows = lake.sql(
        f"SELECT customer_id, status, amount_claimed FROM {catalog}.silver.claims WHERE claim_no = '{claim_no}'"
    ).collect()
    assert [(r.customer_id, r.status, float(r.amount_claimed)) for r in rows] == [
        (policy.customer_id, "submitted", float(claim["amount_claimed"]))
    ]
