"""Reading the contact ledger: a customer's touches with their deliveries, window counts, and the regulator's
evidence export (every decision in a period with the consent evidence it rested on and the rule results),
in JSON and CSV, through the library and `mo campaigns evidence` (audited)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from mo import hot_record
from mo.campaigns import ledger
from mo.campaigns.decision import decide_batch
from mo.oltp.api_tables import AuditEntry
from mo.oltp.campaign_tables import Delivery
from tests.campaigns.decision_world import (
    NOON_SHANGHAI,
    POLICY,
    add_customer,
    add_evidence,
    drop_prefix,
    intent,
    migrated_engine,
    new_prefix,
    redis_client,
    seed_reference,
)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request, tmp_path):
    yield from migrated_engine(request.param, tmp_path)


@pytest.fixture
def hot():
    client = redis_client()
    prefix = new_prefix()
    yield client, prefix
    drop_prefix(client, prefix)
    client.close()


def _world(engine, hot):
    """Customer 1: one send (campaign 1), one suppression after withdrawing SMS and push (campaign 2), one
    deferral then send (campaign 3); customer 2: a send. Returns the evidence ids and the decisions."""
    client, prefix = hot
    with engine.begin() as conn:
        seed_reference(conn)
        versions = add_customer(conn, 1)
        add_customer(conn, 2)
    with engine.connect() as conn:
        hot_record.rebuild(conn, client, prefix)
    with engine.begin() as conn:
        first = decide_batch(conn, client, prefix, [intent(1), intent(2)], now=NOON_SHANGHAI, policy=POLICY)
    later = NOON_SHANGHAI + timedelta(days=1)
    with engine.begin() as conn:
        withdrawn = {c: add_evidence(conn, 1, c, "opt_out", at=later) for c in ("app_push", "sms")}
    for channel, version in withdrawn.items():
        hot_record.set_consent(client, prefix, 1, channel, "marketing", "opt_out", version)
    with engine.begin() as conn:
        second = decide_batch(conn, client, prefix, [intent(1, campaign=2)], now=later, policy=POLICY)
        sent = first[0]
        conn.execute(
            insert(Delivery.__table__),
            [
                {"message_id": sent.message_id, "ledger_id": 1, "customer_id": 1, "state": state, "provider": "push",
                 "provider_message_id": "pm-1", "detail": None, "at": NOON_SHANGHAI + timedelta(seconds=n)}
                for n, state in enumerate(("queued", "sent", "delivered"), start=1)
            ],
        )  # fmt: skip
    return versions, withdrawn, first, second


def test_evidence_joins_the_consent_evidence_of_each_decision(engine, hot):
    versions, withdrawn, first, _ = _world(engine, hot)
    with engine.connect() as conn:
        rows = ledger.evidence(conn, 1, NOON_SHANGHAI - timedelta(days=1), NOON_SHANGHAI + timedelta(days=2))
        only_first = ledger.evidence(conn, 1, NOON_SHANGHAI, NOON_SHANGHAI + timedelta(hours=1))
        other = ledger.evidence(conn, 2, NOON_SHANGHAI, NOON_SHANGHAI + timedelta(days=2))
    assert [(r["touch_key"], r["decision"], r["reason"]) for r in rows] == [
        ("campaign:1:1:1", "send", "ok"),
        ("campaign:2:1:1", "suppress", "consent_withdrawn"),
    ]
    assert [r["touch_key"] for r in only_first] == ["campaign:1:1:1"]  # the period bounds the decisions
    assert [r["touch_key"] for r in other] == ["campaign:1:1:2"]  # one customer's evidence only
    send, suppress = rows
    assert send["message_id"] == first[0].message_id and send["channel"] == "app_push"
    push = next(c for c in send["consent_evidence"] if c["channel"] == "app_push")
    assert push["status_at_decision"] == "opt_in" and push["version"] == versions["app_push"]
    assert push["evidence"]["evidence_id"] == versions["app_push"] and push["evidence"]["status"] == "opt_in"
    assert push["evidence"]["text_version"] == "v3" and push["read_from"] == "hot"
    withdrawn_push = next(c for c in suppress["consent_evidence"] if c["channel"] == "app_push")
    assert withdrawn_push["evidence"]["evidence_id"] == withdrawn["app_push"]
    assert withdrawn_push["evidence"]["status"] == "opt_out"
    assert send["rule_results"]["counts"]["7d"] == 0 and send["rule_results"]["local"]["zone"] == "Asia/Shanghai"
    assert [d["state"] for d in send["deliveries"]] == ["queued", "sent", "delivered"]
    assert suppress["deliveries"] == []

    document = json.loads(ledger.to_json(rows))
    assert list(document[0]) == list(ledger.EVIDENCE_COLUMNS)
    assert document[1]["consent_evidence"][0]["evidence"]["status"] == "opt_out"

    parsed = list(csv.DictReader(io.StringIO(ledger.to_csv(rows))))
    assert [p["touch_key"] for p in parsed] == ["campaign:1:1:1", "campaign:2:1:1"]
    assert json.loads(parsed[0]["rule_results"]) == json.loads(json.dumps(send["rule_results"], default=str))
    assert json.loads(parsed[1]["consent_evidence"])[0]["evidence"]["evidence_id"] in withdrawn.values()
    assert parsed[1]["message_id"] == "" and parsed[0]["attempt"] == "1"


def test_touches_page_newest_first_with_deliveries_and_window_counts(engine, hot):
    _world(engine, hot)
    with engine.connect() as conn:
        page = ledger.touches(conn, 1, limit=1)
        rest = ledger.touches(conn, 1, after=(page[0]["decided_at"], page[0]["id"]), limit=5)
        counts = ledger.window_counts(conn, [1, 2], NOON_SHANGHAI + timedelta(days=1))
        beyond = ledger.window_counts(conn, [1], NOON_SHANGHAI + timedelta(days=7))
    assert [t["touch_key"] for t in page] == ["campaign:2:1:1"]
    assert [t["touch_key"] for t in rest] == ["campaign:1:1:1"]
    assert [d["state"] for d in rest[0]["deliveries"]] == ["queued", "sent", "delivered"]
    assert counts == {1: {"app_push": [1, 1]}, 2: {"app_push": [1, 1]}}
    assert beyond == {1: {"app_push": [0, 1]}}  # exactly 7 x 24 h later: out of the week, in the month


def test_cli_exports_evidence_and_audits_it(tmp_path, hot):
    for engine in migrated_engine("sqlite", tmp_path):
        _world(engine, hot)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MO_")}
        env.update({"MO_HOME": str(tmp_path / "home"), "MO_PII_KEY": "test-key", "MO_SOURCE_URL": str(engine.url)})
        base = [sys.executable, "-m", "mo", "campaigns", "evidence", "--customer", "1", "--from", "2026-12-01",
                "--to", "2026-12-31"]  # fmt: skip
        as_json = subprocess.run([*base, "--format", "json"], capture_output=True, text=True, env=env, timeout=300)
        assert as_json.returncode == 0, as_json.stderr
        assert [r["reason"] for r in json.loads(as_json.stdout)] == ["ok", "consent_withdrawn"]
        as_csv = subprocess.run([*base, "--format", "csv"], capture_output=True, text=True, env=env, timeout=300)
        assert as_csv.returncode == 0, as_csv.stderr
        assert as_csv.stdout.splitlines()[0] == ",".join(ledger.EVIDENCE_COLUMNS)
        assert len(list(csv.DictReader(io.StringIO(as_csv.stdout)))) == 2
        bad = subprocess.run([*base[:-4], "--from", "2026-12-31", "--to", "2026-12-01"], capture_output=True,
                             text=True, env=env, timeout=300)  # fmt: skip
        assert bad.returncode != 0 and "--to" in bad.stderr
        with engine.connect() as conn:
            audit = conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.__table__.c.id)).all()
        assert [(a.action, a.customer_id, a.outcome) for a in audit] == [("contact_ledger.evidence", 1, "ok")] * 2
        assert audit[0].actor.startswith("cli:") and "format=json" in audit[0].detail
        assert "rows=2" in audit[1].detail
