"""Campaign dispatch against the real parts: the definition store and a published serving store, the machine's
Redis, the embedded Kafka-protocol broker, the provider sandbox and a channel worker.

- a due campaign's audience is frozen from the published refresh, every member decided once, every send
  produced, delivered to the sandbox once, and the live funnel agrees with the ledger and the sandbox's log;
- a dispatcher killed (SIGKILL) after deciding or after producing, then run again, decides nobody twice, skips
  nobody, and the sandbox receives every intended message exactly once;
- two campaigns due together over the same customers: the higher priority takes the last contact slot whatever
  their order of creation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import func, insert, select

from mo.campaigns.dispatch import run_round
from mo.campaigns.results import campaign_funnel
from mo.channels.messages import send_producer
from mo.config import REPO_ROOT, get_settings
from mo.oltp.campaign_tables import Campaign, CampaignAudience, Delivery, LedgerEntry
from mo.oltp.db import make_engine, migrate
from tests.channels.helpers import env_for_subprocess, point_channels_at, running_sandbox, sandbox_log
from tests.conftest import unique

pytestmark = [pytest.mark.kafka]

REDIS_URL = "redis://127.0.0.1:6379/12"
CUSTOMERS = 60
CAMPAIGNS, AUDIENCE = Campaign.__table__, CampaignAudience.__table__
LEDGER, DELIVERIES = LedgerEntry.__table__, Delivery.__table__
SEGMENT = {
    "id": "women",
    "name": "Women",
    "description": "Female customers.",
    "owner": "growth-marketing",
    "kind": "dynamic",
    "rule": {"attr": "gender", "op": "eq", "value": "F"},
}
CHANNELS = [
    {
        "channel": "sms",
        "template": {
            "sign_name": "中安保险",
            "template_code": "SMS_RENEWAL_01",
            "params": {
                "name": "{{profile.name_masked}}",
                "product": "{{product.name}}",
                "renewal_date": "{{profile.next_renewal_date}}",
                "link": "https://m.example-insurer.cn/r",
            },
        },
    },
    {
        "channel": "wechat",
        "template": {
            "template_id": "TM_RENEWAL_REMINDER",
            "url": "https://m.example-insurer.cn/renew",
            "data": {"thing1": "{{product.name}}", "time2": "{{profile.next_renewal_date}}", "thing3": "续保"},
        },
    },
    {
        "channel": "push",
        "template": {
            "title": "{{product.name}}续保",
            "body": "点击续保，保障不断档",
            "extras": {"url": "https://m.example-insurer.cn/renew"},
        },
    },
]


def _now() -> datetime:
    """Inside the default send window (09:00-21:00 Asia/Shanghai) whatever the hour the test runs."""
    today = datetime.now(UTC).replace(tzinfo=None)
    return today.replace(hour=3, minute=0, second=0, microsecond=0)  # 11:00 in Shanghai


@pytest.fixture
def flow(kafka_settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The core systems, a published refresh of their customers, the segment in the store, Redis and the broker."""
    from mo.generator.world import generate_world
    from mo.segments.definitions import parse_definition
    from mo.segments.store import create_segment
    from mo.serving_store import publish_batches
    from mo.serving_store.store import SqlServingStore
    from tests.serving_store.world import AS_OF, make_world

    prefix = unique("dispatch")
    monkeypatch.setenv("MO_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MO_REDIS_PREFIX", prefix)
    monkeypatch.setenv("MO_PII_KEY", "dispatch-tests-pii-key-0123456789")
    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    generate_world(engine, customers=CUSTOMERS, seed=5, start_date=AS_OF - timedelta(days=400))
    with engine.begin() as conn:
        create_segment(conn, parse_definition(SEGMENT), created_by="user:test")
    client = redis.Redis.from_url(REDIS_URL)
    store = SqlServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    world = make_world("d", CUSTOMERS, seed=9)
    publish_batches(
        store, as_of=AS_OF, tables=world.batches(), redis_profiles=world.redis_batches(), redis_client=client,
        redis_prefix=prefix, published_by="dispatch-tests",
    )  # fmt: skip
    yield settings, engine, store, client
    store.dispose()
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
    engine.dispose()


def add_campaign(engine, *, priority: int = 50, code: str | None = None, now: datetime) -> int:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return conn.execute(
            insert(CAMPAIGNS).values(
                campaign_code=code or f"CMP-{uuid.uuid4().hex[:8]}", name="续保提醒", objective="renewal",
                product_line="auto", purpose="marketing", offer_type="product", offer_product_code="AU-COMP",
                segment_id="women", segment_version=1, channels=json.dumps(CHANNELS, ensure_ascii=False),
                schedule=json.dumps({"kind": "now"}), priority=priority, holdout_share=Decimal("0.1000"),
                ends_at=now + timedelta(days=30), status="scheduled", author="user:m", approver="user:a",
                next_run_at=now - timedelta(minutes=1), version=1, created_at=now, updated_at=now,
            )
        ).inserted_primary_key[0]  # fmt: skip


def _dispatch(settings, engine, store, client, now):  # type: ignore[no-untyped-def]
    producer = send_producer(settings)
    try:
        return run_round(engine, client, store, settings, producer=producer, now=now)
    finally:
        producer.close(timeout=5)


def _deliver(settings) -> None:  # type: ignore[no-untyped-def]
    """Every send on the topic, through one channel worker run (its own process, as in production)."""
    env = env_for_subprocess(**{k: v for k, v in os.environ.items() if k.startswith("MO_")})
    done = subprocess.run(
        [sys.executable, "-m", "mo", "channels", "worker", "--once"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _ledger(engine, campaign_id: int) -> list[Any]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(LEDGER).where(LEDGER.c.campaign_id == campaign_id).order_by(LEDGER.c.id)).all()


def test_a_due_campaign_is_frozen_decided_sent_once_and_counted(flow, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    settings, engine, store, client = flow
    now = _now()
    campaign_id = add_campaign(engine, now=now)
    with running_sandbox(tmp_path / "sandbox") as sandbox:
        point_channels_at(monkeypatch, sandbox.url)
        settings = get_settings()
        report = _dispatch(settings, engine, store, client, now)
        (occurrence,) = report.occurrences
        with engine.connect() as conn:
            audience = conn.execute(select(AUDIENCE.c.customer_id).where(AUDIENCE.c.campaign_id == campaign_id))
            members = sorted(audience.scalars())
        women = sorted(p["customer_id"] for p in store_profiles(store) if p["gender"] == "F")
        assert members == women and occurrence.audience == len(women) > 0
        rows = _ledger(engine, campaign_id)
        finals = Counter(r.touch_key for r in rows if r.final_key)
        assert set(finals.values()) == {1} and len(finals) == len(members)  # everyone decided, once
        sends = [r for r in rows if r.decision == "send"]
        unrenderable = _failed(engine)  # e.g. no renewal date in the profile for the SMS's {{profile...}}
        assert all("template not rendered" in detail for detail in unrenderable.values())
        assert sends and occurrence.produced == len(sends) - len(unrenderable)
        _deliver(settings)
        received = sandbox_log(sandbox)
        # the sandbox received exactly the decided (and renderable) sends, once each
        ids = Counter(r["client_msg_id"] for r in received)
        expected = sorted(r.message_id for r in sends if r.message_id not in unrenderable)
        assert sorted(ids) == expected and set(ids.values()) == {1}
        # WeChat and push links are the API's signed redirect for that very message
        from mo.channels.links import read_token

        linked = [(r, json.loads(r["body"])) for r in received if r["provider"] in ("wechat", "push")]
        assert linked, "some messages went by WeChat or push"
        for record, body in linked:
            url = body.get("url") or body.get("notification", {}).get("android", {}).get("extras", {}).get("url")
            url = url or json.dumps(body)  # the push body's shape is the provider's; find the link in it
            token = url.split("/v1/t/", 1)[1].split('"', 1)[0]
            assert read_token(token, settings) == (record["client_msg_id"], "https://m.example-insurer.cn/renew")
        # SMS links are short links within the provider's 35-character variable, stored for that very message
        from mo.channels.links import is_short_code, read_short

        texted = [(r, json.loads(json.loads(r["body"])["TemplateParam"])) for r in received if r["provider"] == "sms"]
        assert texted, "some messages went by SMS"
        with engine.connect() as conn:
            for record, params in texted:
                link = params["link"]
                assert len(link) <= 35 and link.startswith(f"{settings.channel_link_base_url}/v1/t/")
                assert is_short_code(code := link.rsplit("/", 1)[1])
                assert read_short(conn, code, settings) == (record["client_msg_id"], "https://m.example-insurer.cn/r")
        # a second round decides and produces nothing more; the one-off campaign is completed
        again = _dispatch(settings, engine, store, client, now + timedelta(minutes=1))
        assert again.occurrences == [] and len(_ledger(engine, campaign_id)) == len(rows)
    with engine.connect() as conn:
        status = conn.execute(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.id == campaign_id)).scalar_one()
        funnel = campaign_funnel(conn, campaign_id)
        sent = conn.execute(
            select(func.count()).select_from(DELIVERIES).where(DELIVERIES.c.state == "sent")
        ).scalar_one()
    assert status == "completed"
    assert funnel is not None and funnel.audience == len(members)
    assert funnel.sent == sent == len(expected) and funnel.failed == len(unrenderable)
    suppressed = Counter(r.reason for r in rows if r.decision == "suppress")
    assert funnel.suppressed == dict(sorted(suppressed.items()))


def _failed(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES.c.message_id, DELIVERIES.c.detail).where(DELIVERIES.c.state == "failed"))
        return {r.message_id: r.detail for r in rows}


def store_profiles(store) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT customer_id, gender FROM customer_profile"))]


@pytest.mark.parametrize("fault", ["after_decide", "after_produce"])
def test_a_killed_dispatcher_rerun_decides_and_sends_everyone_once(flow, tmp_path, monkeypatch, fault):  # type: ignore[no-untyped-def]
    settings, engine, store, client = flow
    now = _now()
    campaign_id = add_campaign(engine, now=now)
    with running_sandbox(tmp_path / "sandbox") as sandbox:
        point_channels_at(monkeypatch, sandbox.url)
        script = (
            "import sys; from datetime import datetime; from tests.campaigns.test_dispatch import dispatch_main; "
            f"dispatch_main(datetime.fromisoformat({now.isoformat()!r}), {str(tmp_path / 'serving.db')!r})"
        )
        env = env_for_subprocess(**{k: v for k, v in os.environ.items() if k.startswith("MO_")})
        env["PYTHONPATH"] = str(REPO_ROOT)
        killed = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, env={**env, "MO_DISPATCH_FAULT": fault},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == 137, killed.stdout[-2000:] + killed.stderr[-2000:]
        if fault == "after_decide":
            assert not sandbox_log(sandbox)
        rerun = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        _deliver(get_settings())
        rows = _ledger(engine, campaign_id)
        finals = Counter(r.touch_key for r in rows if r.final_key)
        with engine.connect() as conn:
            members = conn.execute(
                select(func.count()).select_from(AUDIENCE).where(AUDIENCE.c.campaign_id == campaign_id)
            ).scalar_one()
        assert len(finals) == members and set(finals.values()) == {1}
        unrenderable = _failed(engine)
        sends = sorted(r.message_id for r in rows if r.decision == "send" and r.message_id not in unrenderable)
        received = Counter(r["client_msg_id"] for r in sandbox_log(sandbox))
        assert sorted(received) == sends and set(received.values()) == {1}
        requests = [r for r in sandbox_log(sandbox, "requests") if r["endpoint"] != "token" and r["client_msg_id"]]
        assert not [r for r in requests if r["duplicate"]], "a message reached the provider twice"


def dispatch_main(now: datetime, serving_db: str) -> None:
    """The dispatcher as its own process (for the kill test): one round."""
    from mo.serving_store.store import SqlServingStore

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    client = redis.Redis.from_url(settings.redis_url)
    store = SqlServingStore(f"sqlite:///{serving_db}")
    _dispatch(settings, engine, store, client, now)


def test_the_higher_priority_takes_the_last_slot_whatever_the_creation_order(flow, monkeypatch):  # type: ignore[no-untyped-def]
    settings, engine, store, client = flow
    monkeypatch.setenv("MO_CONTACT_CAP_7D", "1")
    settings = get_settings()
    now = _now()
    low = add_campaign(engine, priority=10, now=now)  # created first
    high = add_campaign(engine, priority=90, now=now)
    _dispatch(settings, engine, store, client, now)
    by_customer: dict[int, dict[int, Any]] = {}
    for campaign_id in (low, high):
        for row in _ledger(engine, campaign_id):
            if row.final_key:
                by_customer.setdefault(row.customer_id, {})[campaign_id] = row
    contested = [c for c, rows in by_customer.items() if rows[high].decision == "send"]
    assert contested, "some customers could be contacted at all"
    for customer in contested:
        loser = by_customer[customer][low]
        assert (loser.decision, loser.reason) == ("suppress", "cap_7d"), loser
        assert json.loads(loser.detail)["winner"]["touch_key"].startswith(f"campaign:{high}:")


def test_the_dispatch_and_funnel_commands(flow, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from mo.cli import cli

    settings, engine, store, client = flow
    monkeypatch.setenv("MO_SERVING_DB_URL", str(store.engine.url))
    campaign_id = add_campaign(engine, now=datetime.now(UTC).replace(tzinfo=None))
    with running_sandbox(tmp_path / "sandbox") as sandbox:
        point_channels_at(monkeypatch, sandbox.url)
        ran = CliRunner().invoke(cli, ["campaigns", "dispatch", "--once"])
        assert ran.exit_code == 0, ran.output
        (occurrence,) = json.loads(ran.output)["occurrences"]
        assert occurrence["campaign_id"] == campaign_id and occurrence["audience"] > 0
    shown = CliRunner().invoke(cli, ["campaigns", "funnel", str(campaign_id)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["audience"] == occurrence["audience"]
    huge = CliRunner().invoke(cli, ["campaigns", "funnel", str(2**64)])  # refused by the option, not the driver
    assert huge.exit_code == 2 and "is not in the range" in huge.output
    missing = CliRunner().invoke(cli, ["campaigns", "funnel", str(campaign_id + 100)])
    assert missing.exit_code != 0 and f"campaign {campaign_id + 100} not found" in str(missing.exception)


def test_an_unmigrated_source_is_named_in_one_line(settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from mo.campaigns.dispatch import require_campaign_tables
    from mo.errors import MoError

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(MoError, match="no campaign tables in the source database .*: run `mo db migrate`"):
        require_campaign_tables(engine)
