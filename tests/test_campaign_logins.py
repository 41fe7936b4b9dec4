"""The campaign path under its production logins, on the machine's MariaDB: the dispatcher connected as a login
granted exactly DISPATCH_WRITES and the channel worker as one granted exactly CHANNEL_WRITES (by `python -m app.cli
grant-logins`, as serving-init does) run a whole campaign: frozen audience, decisions, holdouts, sends produced,
delivered to the provider sandbox, the campaign completed with its event, audit entry and outbox event. A table
missing from the grants fails here with MariaDB's access-denied error, before it fails in production."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, func, select, text

from mo.campaigns.dispatch import run_round
from mo.channels.messages import send_producer
from mo.channels.worker import ChannelWorker
from mo.config import get_settings
from mo.oltp.db import make_engine
from tests.campaigns.test_dispatch import CAMPAIGNS, LEDGER, add_campaign, flow  # noqa: F401 (the fixture)
from tests.campaigns.test_dispatch import _now as inside_send_window
from tests.channels.helpers import point_channels_at, running_sandbox, sandbox_log
from tests.conftest import MARIADB_ADMIN_URL

REPO = Path(__file__).resolve().parents[1]
SERVING_PYTHON = REPO / "serving" / ".venv" / "bin" / "python"

pytestmark = [pytest.mark.kafka, pytest.mark.mariadb]


@pytest.fixture
def kafka_settings(kafka_settings, mariadb_url, monkeypatch):  # type: ignore[no-untyped-def]
    """test_dispatch's world (its `flow` fixture), built by the administrator in a private MariaDB database."""
    monkeypatch.setenv("MO_SOURCE_URL", mariadb_url)
    return get_settings()


@pytest.fixture
def logins(flow, mariadb_url):  # type: ignore[no-untyped-def]  # noqa: F811
    """Three private logins with no table at all (as 20-serving-logins.sh creates them), then serving-init's grants."""
    assert SERVING_PYTHON.exists(), "serving/.venv is missing: run `make serving-env`"
    tag = uuid.uuid4().hex[:8]
    users = {role: (f"h_{role}_{tag}", f"pw-{role}-{uuid.uuid4().hex}") for role in ("api", "dispatch", "channels")}
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for user, password in users.values():
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
    try:
        env = {"PATH": "/usr/bin:/bin", "SERVING_SOURCE_URL": mariadb_url, "PYTHONPATH": f"{REPO}:{REPO / 'serving'}"}
        granted = subprocess.run(
            [str(SERVING_PYTHON), "-m", "app.cli", "grant-logins", "--api-user", users["api"][0],
             "--dispatch-user", users["dispatch"][0], "--channels-user", users["channels"][0]],
            cwd=REPO / "serving", env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert granted.returncode == 0, granted.stderr
        base = mariadb_url.replace("mysql+pymysql://root@", "mysql+pymysql://{}:{}@")
        yield {role: base.format(user, password) for role, (user, password) in users.items()}
    finally:
        with admin.connect() as conn:
            for user, _ in users.values():
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


def test_a_campaign_runs_end_to_end_under_the_dispatch_and_channel_logins(flow, logins, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    settings, engine, store, client = flow
    assert "root@" in str(engine.url), "the world is built by the administrator"
    now = inside_send_window()
    campaign_id = add_campaign(engine, now=now)
    dispatcher = make_engine(logins["dispatch"])
    worker_engine = make_engine(logins["channels"])
    try:
        with running_sandbox(tmp_path / "sandbox") as sandbox:
            point_channels_at(monkeypatch, sandbox.url)
            settings = get_settings()
            producer = send_producer(settings)
            try:
                report = run_round(dispatcher, client, store, settings, producer=producer, now=now)
                again = run_round(
                    dispatcher, client, store, settings, producer=producer, now=now + timedelta(minutes=1)
                )
            finally:
                producer.close(timeout=5)
            (occurrence,) = report.occurrences
            assert occurrence.audience > 0 and occurrence.produced > 0 and occurrence.done
            assert again.occurrences == []
            stats = ChannelWorker(settings, worker_engine).run(once=True)
            assert stats.sent == occurrence.produced and stats.failed == stats.dead_letter == 0
            received = Counter(r["client_msg_id"] for r in sandbox_log(sandbox))
            assert len(received) == occurrence.produced and set(received.values()) == {1}
        with engine.connect() as conn:
            status = conn.execute(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.id == campaign_id)).scalar_one()
            audit = conn.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'system:dispatcher'")).scalar_one()
            outbox = conn.execute(
                text("SELECT count(*) FROM outbox WHERE event_type = 'campaign_status_changed'")
            ).scalar_one()
            holdouts = conn.execute(text("SELECT count(*) FROM holdout_assignments")).scalar_one()
            finals = conn.execute(
                select(func.count()).select_from(LEDGER).where(LEDGER.c.campaign_id == campaign_id,
                                                               LEDGER.c.final_key.is_not(None))
            ).scalar_one()  # fmt: skip
        assert status == "completed" and finals == occurrence.audience
        assert audit == 2 and outbox == 2  # start and complete, each audited and published
        assert holdouts > 0
        # and what neither may do, through the same engines the workers used
        with dispatcher.connect() as conn, pytest.raises(Exception, match="denied"):
            conn.execute(text("SELECT phone FROM customers"))
        with worker_engine.connect() as conn, pytest.raises(Exception, match="denied"):
            conn.execute(text("SELECT count(*) FROM contact_ledger"))
    finally:
        dispatcher.dispose()
        worker_engine.dispose()


def healthcheck(service: str) -> list[str]:
    test = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"], test
    return [sys.executable, *test[2:]]


def test_the_services_healthchecks_pass_under_their_logins(flow, logins, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    """The compose healthchecks, run as written against the logins the services use (the production settings)."""
    base = {"PATH": "/usr/bin:/bin", "MO_ENV": "production", "MO_HOME": str(tmp_path)}
    dispatcher = subprocess.run(
        healthcheck("campaign-dispatcher"), env={**base, "MO_SOURCE_URL": logins["dispatch"]}, cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dispatcher.returncode == 0, dispatcher.stderr[-2000:]
    secrets = {
        f"MO_{name.upper()}": f"production-{name}-{uuid.uuid4().hex}"
        for name in ("channel_wechat_secret", "channel_wechat_token", "channel_sms_access_key_secret",
                     "channel_push_master_secret", "channel_coupon_api_key", "channel_webhook_secret",
                     "channel_link_secret")
    }  # fmt: skip
    worker_env = {**base, **secrets, "MO_SOURCE_URL": logins["channels"]}
    worker = subprocess.run(healthcheck("channel-worker"), env=worker_env, cwd=REPO, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-2000:]
    # unhealthy while a provider secret is still the sandbox's well-known one
    sandbox_secret = {**worker_env, "MO_CHANNEL_SMS_ACCESS_KEY_SECRET": "sandbox-access-secret"}
    refused = subprocess.run(healthcheck("channel-worker"), env=sandbox_secret, cwd=REPO, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode != 0 and "channel_sms_access_key_secret" in refused.stderr.lower(), refused.stderr
    # and the dispatcher's check fails for a login without its grants
    stranger = subprocess.run(
        healthcheck("campaign-dispatcher"), env={**base, "MO_SOURCE_URL": logins["channels"]}, cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stranger.returncode != 0
