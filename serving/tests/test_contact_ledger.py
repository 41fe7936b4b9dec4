"""The contact ledger through the API: a customer's touches page by page with their delivery states, and the
regulator's evidence export (JSON and CSV), audited; bad periods are 422 naming the field and export nothing."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
import redis
from conftest import MACHINE_REDIS_URL, Account, ApiWorld
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from mo.campaigns.decision import ContactPolicy, Intent, decide_batch
from mo.oltp.api_tables import AuditEntry
from mo.oltp.campaign_tables import Delivery, LedgerEntry
from mo.oltp.models import Customer

AUDIT = AuditEntry.__table__
NOW = datetime(2026, 12, 7, 2, 0)  # 10:00 in Shanghai


@pytest.fixture(scope="module")
def touched(world: ApiWorld) -> int:
    """A customer with three decisions (two service notices and a marketing touch) and a delivered message."""
    with world.source.connect() as conn:
        cid = conn.execute(select(Customer.__table__.c.id).order_by(Customer.__table__.c.id.desc())).scalars().first()
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    intents = [
        Intent(touch_key=f"service:notice-{n}:{cid}", source="service", customer_id=cid, channels=("sms",),
               purpose="service", priority=1, payload={"sms": {"template_code": "SMS_9"}})
        for n in (1, 2)
    ] + [
        Intent(touch_key=Intent.campaign_key(77, 1, cid), source="campaign", customer_id=cid,
               channels=("app_push", "sms"), campaign_id=77, occurrence=1, product_line="auto", priority=5)
    ]  # fmt: skip
    with world.source.begin() as conn:
        decisions = decide_batch(conn, client, world.redis_prefix, intents, now=NOW,
                                 policy=ContactPolicy(holdout_key=b"serving-tests"))  # fmt: skip
        sent = next(d for d in decisions if d.decision == "send")
        ledger_id = conn.execute(
            select(LedgerEntry.__table__.c.id).where(LedgerEntry.__table__.c.message_id == sent.message_id)
        ).scalar_one()  # this send's own row: the session's world is shared by every test file
        conn.execute(
            insert(Delivery.__table__).values(message_id=sent.message_id, ledger_id=ledger_id, customer_id=cid,
                                              state="delivered", provider="sms", at=NOW + timedelta(seconds=2))
        )  # fmt: skip
    client.close()
    return cid


def _audit_rows(world: ApiWorld, customer_id: int, outcome: str = "ok") -> list:
    """The audited exports of a customer's evidence (or the refused attempts with ``outcome``)."""
    with world.source.connect() as conn:
        return conn.execute(
            select(AUDIT).where(
                AUDIT.c.action == "contact_ledger.evidence",
                AUDIT.c.customer_id == customer_id,
                AUDIT.c.outcome == outcome,
            )
        ).all()


def test_touches_page_newest_first(client: TestClient, accounts: dict[str, Account], touched: int) -> None:
    first = client.get(f"/v1/customers/{touched}/touches", params={"limit": 2}, headers=accounts["marketer"].headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"/v1/customers/{touched}/touches",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=accounts["analyst"].headers,
    ).json()
    keys = [t["touch_key"] for t in page["items"] + rest["items"]]
    assert sorted(keys) == sorted([f"service:notice-1:{touched}", f"service:notice-2:{touched}",
                                   f"campaign:77:1:{touched}"])  # fmt: skip
    assert rest["next_cursor"] is None
    sends = [t for t in page["items"] + rest["items"] if t["decision"] == "send"]
    assert sends and all(t["message_id"] and t["reason"] == "ok" for t in sends)
    assert any(d["state"] == "delivered" for t in sends for d in t["deliveries"])
    assert all("consent" in t["rule_results"] for t in page["items"])
    bad = client.get(f"/v1/customers/{touched}/touches", params={"cursor": "bm90IGEgY3Vyc29y"},
                     headers=accounts["marketer"].headers)  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/query/cursor"


def test_evidence_export_json_and_csv_audited(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], touched: int
) -> None:
    before = len(_audit_rows(world, touched))
    params = {"customer_id": touched, "from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
    answer = client.get("/v1/contact-ledger/evidence", params=params, headers=accounts["reviewer"].headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["customer_id"] == touched and len(body["rows"]) == 3
    for row in body["rows"]:
        assert row["rule_results"]["purpose"] in ("service", "marketing")
        for consent in row["consent_evidence"]:
            if consent["version"]:
                assert consent["evidence"]["evidence_id"] == consent["version"]
    as_csv = client.get(
        "/v1/contact-ledger/evidence", params={**params, "format": "csv"}, headers=accounts["reviewer"].headers
    )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted(r["touch_key"] for r in parsed) == sorted(r["touch_key"] for r in body["rows"])
    assert all(json.loads(r["rule_results"]) for r in parsed)
    audited = _audit_rows(world, touched)
    assert len(audited) == before + 2
    assert {a.outcome for a in audited[before:]} == {"ok"}
    assert "format=csv" in audited[-1].detail and "rows=3" in audited[-1].detail
    assert audited[-1].actor.startswith("user:reviewer")

    outside = client.get("/v1/contact-ledger/evidence", headers=accounts["reviewer"].headers,
                         params={**params, "from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"})  # fmt: skip
    assert outside.status_code == 200 and outside.json()["rows"] == []


def test_evidence_refuses_bad_periods_and_other_roles(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], touched: int
) -> None:
    before = len(_audit_rows(world, touched))
    reviewer = accounts["reviewer"].headers
    backwards = client.get("/v1/contact-ledger/evidence", headers=reviewer,
                           params={"customer_id": touched, "from": "2026-12-02", "to": "2026-12-01"})  # fmt: skip
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "/query/to"
    too_long = client.get("/v1/contact-ledger/evidence", headers=reviewer,
                          params={"customer_id": touched, "from": "2020-01-01", "to": "2026-01-01"})  # fmt: skip
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "/query/to"
    missing = client.get(
        "/v1/contact-ledger/evidence", headers=reviewer, params={"from": "2026-12-01", "to": "2027-01-01"}
    )
    assert missing.status_code == 422 and "customer_id" in missing.text
    refused = client.get("/v1/contact-ledger/evidence", headers=accounts["marketer"].headers,
                         params={"customer_id": touched, "from": "2026-12-01", "to": "2027-01-01"})  # fmt: skip
    assert refused.status_code == 403
    assert len(_audit_rows(world, touched)) == before  # nothing exported
    assert [a.status_code for a in _audit_rows(world, touched, "invalid")][-2:] == [422, 422]
    with world.source.connect() as conn:
        refusals = conn.execute(
            select(AUDIT.c.outcome).where(AUDIT.c.action == "contact_ledger.evidence", AUDIT.c.outcome != "ok")
        ).scalars().all()  # fmt: skip
    assert "invalid" in refusals and "denied" in refusals
