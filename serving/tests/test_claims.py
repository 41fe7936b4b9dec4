"""Claims through the API on real stores: filing, bad input writing nothing, idempotency, the state machine over
every (from, to) pair, documents typed by content, SLA flags on crafted dates, and races on PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import threading
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, ApiWorld, build_world, create_database, idem
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select, text, update

from app.api.routes.claims import IncidentType
from app.services.claims import STATUSES, TRANSITIONS, incident_types
from app.services.documents import DocumentStore
from mo.generator import reference
from mo.oltp.api_tables import AuditEntry
from mo.oltp.claims_tables import ClaimDocument, ClaimStatusHistory
from mo.oltp.models import Claim, Policy, Product
from mo.oltp.outbox import OutboxEvent
from mo.workdays import add_working_days, working_days_between

CLAIMS, HISTORY, DOCUMENTS = Claim.__table__, ClaimStatusHistory.__table__, ClaimDocument.__table__
OUTBOX, AUDIT, POLICIES, PRODUCTS = OutboxEvent.__table__, AuditEntry.__table__, Policy.__table__, Product.__table__

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(32) + b"\xff\xd9"
HOSTILE = "'); DROP TABLE claims; -- <script>alert(1)</script> {{7*7}} ${jndi:x}"


def today() -> date:
    return datetime.now(UTC).date()


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in (("claims", CLAIMS), ("history", HISTORY), ("documents", DOCUMENTS), ("outbox", OUTBOX))
        } | {"keys": conn.execute(text("select count(*) from idempotency_keys")).scalar_one()}


def policies_in_force(engine: Engine, n: int = 2) -> list[Any]:
    """In-force policies of different customers whose period includes a past day (for a valid loss date)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(POLICIES, PRODUCTS.c.line)
            .select_from(POLICIES.join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id))
            .where(POLICIES.c.status == "in_force", POLICIES.c.start_date < today() - timedelta(days=2))
            .order_by(POLICIES.c.id)
        ).all()
    found, seen = [], set()
    for row in rows:
        if row.customer_id not in seen:
            seen.add(row.customer_id)
            found.append(row)
        if len(found) == n:
            return found
    raise AssertionError(f"the world has fewer than {n} customers with a policy in force")


def claim_body(policy: Any, **changes: Any) -> dict[str, Any]:
    loss_day = min(policy.end_date, today() - timedelta(days=1))
    body = {
        "customer_id": policy.customer_id,
        "policy_no": policy.policy_no,
        "incident_at": f"{loss_day.isoformat()}T08:30:00Z",
        "incident_type": reference.INCIDENT_TYPES[policy.line][0][0],
        "incident_province": "广东省",
        "incident_city": "深圳市",
        "amount_claimed": str(min(Decimal("1000.00"), policy.sum_insured)),
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture(scope="session")
def policies(world: ApiWorld) -> list[Any]:
    return policies_in_force(world.source)


def file_claim(client: TestClient, account: Any, policy: Any) -> dict[str, Any]:
    answer = client.post("/v1/claims", json=claim_body(policy), headers={**account.headers, **idem()})
    assert answer.status_code == 201, answer.text
    return answer.json()


def move(client: TestClient, handler: Any, claim_no: str, to: str, **extra: Any):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"to": to, **extra}
    if to in ("docs_requested", "rejected") and "reason" not in extra:
        body["reason"] = f"moved to {to} by the test"
    if to == "approved" and "amount_approved" not in extra:
        body["amount_approved"] = "800.00"
    if to == "paid" and "amount_paid" not in extra:
        body["amount_paid"] = "800.00"
    return client.post(f"/v1/claims/{claim_no}/transitions", json=body, headers={**handler.headers, **idem()})


PATHS = {
    "submitted": [],
    "under_review": ["under_review"],
    "docs_requested": ["under_review", "docs_requested"],
    "approved": ["under_review", "approved"],
    "rejected": ["under_review", "rejected"],
    "paying": ["under_review", "approved", "paying"],
    "paid": ["under_review", "approved", "paying", "paid"],
}


def claim_in(client: TestClient, accounts: dict, policy: Any, status: str) -> dict[str, Any]:
    claim = file_claim(client, accounts["app"], policy)
    for step in PATHS[status]:
        answer = move(client, accounts["claims_handler"], claim["claim_no"], step)
        assert answer.status_code == 200, answer.text
        claim = answer.json()
    assert claim["status"] == status
    return claim


# --- filing --------------------------------------------------------------------------------------------------


def test_the_incident_types_are_the_claims_contracts() -> None:
    assert set(typing.get_args(IncidentType)) == set(incident_types())


def test_filing_writes_claim_history_audit_and_event_once(world: ApiWorld, client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    policy = policies[0]
    before = counts(world.source)
    key = idem()
    body = claim_body(policy)
    first = client.post("/v1/claims", json=body, headers={**accounts["app"].headers, **key})
    assert first.status_code == 201, first.text
    claim = first.json()
    assert claim["status"] == "submitted" and claim["policy_no"] == policy.policy_no
    assert claim["claim_no"].startswith(f"CL{today().year}") and len(claim["claim_no"]) <= 24
    assert claim["allowed_transitions"] == ["under_review"]
    assert [h["to_status"] for h in claim["history"]] == ["submitted"] and claim["history"][0]["from_status"] is None
    assert claim["sla"]["review_due"] == add_working_days(today(), 3).isoformat()
    assert claim["sla"]["at_risk"] is False and claim["sla"]["breached"] is False

    # the answer is what the claim reads back as
    assert client.get(f"/v1/claims/{claim['claim_no']}", headers=accounts["app"].headers).json() == claim
    again = client.post("/v1/claims", json=body, headers={**accounts["app"].headers, **key})
    assert again.status_code == 201 and again.json() == claim
    assert again.headers.get("idempotent-replayed") == "true"
    after = counts(world.source)
    assert after == before | {
        "claims": before["claims"] + 1,
        "history": before["history"] + 1,
        "outbox": before["outbox"] + 1,
        "keys": before["keys"] + 1,
    }
    with world.source.connect() as conn:
        row = conn.execute(select(CLAIMS).where(CLAIMS.c.claim_no == claim["claim_no"])).one()
        event = conn.execute(
            select(OUTBOX).where(OUTBOX.c.event_type == "claim_filed").order_by(OUTBOX.c.id.desc())
        ).first()
        entry = conn.execute(select(AUDIT).where(AUDIT.c.action == "claims.submit").order_by(AUDIT.c.id.desc())).first()
    assert (
        row.status == "submitted"
        and row.customer_id == policy.customer_id
        and row.amount_claimed == Decimal(body["amount_claimed"])
    )
    assert row.submitted_at == row.reported_at == row.created_at == row.updated_at
    assert row.incident_at == datetime.fromisoformat(body["incident_at"][:-1])
    assert claim["claim_no"] in event.payload and event.partition_key == str(policy.customer_id)
    assert entry.outcome == "ok" and entry.customer_id == policy.customer_id and entry.status_code == 201

    # the same key with a different request is refused, nothing written
    other = client.post(
        "/v1/claims", json=claim_body(policy, amount_claimed="5.00"), headers={**accounts["app"].headers, **key}
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "/header/Idempotency-Key"
    assert counts(world.source) == after


def _bad_cases(policies: list[Any]) -> list[tuple[str, dict[str, Any], int, str]]:
    mine, theirs = policies
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before_start = f"{(mine.start_date - timedelta(days=1)).isoformat()}T08:00:00Z"
    wrong_type = next(t for t in incident_types() if t not in {n for n, _ in reference.INCIDENT_TYPES[mine.line]})
    return [
        ("unknown customer", claim_body(mine, customer_id=2**62), 422, "/body/customer_id"),
        ("another customer's policy", claim_body(mine, policy_no=theirs.policy_no), 422, "/body/policy_no"),
        ("unknown policy", claim_body(mine, policy_no="PX0000000000000"), 422, "/body/policy_no"),
        (
            "above the cover",
            claim_body(mine, amount_claimed=str(mine.sum_insured + Decimal("0.01"))),
            422,
            "/body/amount_claimed",
        ),
        ("loss before the policy", claim_body(mine, incident_at=before_start), 422, "/body/incident_at"),
        ("loss in the future", claim_body(mine, incident_at=future), 422, "/body/incident_at"),
        ("incident the product does not cover", claim_body(mine, incident_type=wrong_type), 422, "/body/incident_type"),
        (
            "incident type outside the contract",
            claim_body(mine, incident_type="alien_abduction"),
            422,
            "/body/incident_type",
        ),
        ("zero amount", claim_body(mine, amount_claimed="0"), 422, "/body/amount_claimed"),
        ("three decimals", claim_body(mine, amount_claimed="1.005"), 422, "/body/amount_claimed"),
        ("extra field", claim_body(mine, note="hello"), 422, "/body/note"),
        ("missing field", claim_body(mine, amount_claimed=...), 422, "/body/amount_claimed"),
        ("over-long city", claim_body(mine, incident_city="深" * 33), 422, "/body/incident_city"),
        (
            "SQL in the province",
            claim_body(mine, incident_province="广东省'; DROP TABLE claims;--"),
            422,
            "/body/incident_province",
        ),
        ("script in the city", claim_body(mine, incident_city="<script>x</script>"), 422, "/body/incident_city"),
        ("control character", claim_body(mine, incident_city="深圳\x00市"), 422, "/body/incident_city"),
        ("city of another province", claim_body(mine, incident_city="杭州市"), 422, "/body/incident_city"),
        ("SQL in the policy number", claim_body(mine, policy_no="1' OR '1'='1"), 422, "/body/policy_no"),
    ]


def test_bad_filings_name_the_field_write_nothing_and_are_audited(
    world: ApiWorld, client: TestClient, accounts, policies
):  # type: ignore[no-untyped-def]
    for name, body, status, field in _bad_cases(policies):
        before = counts(world.source)
        with world.source.connect() as conn:
            refused_before = conn.execute(
                select(func.count())
                .select_from(AUDIT)
                .where(AUDIT.c.action == "claims.submit", AUDIT.c.outcome == "invalid")
            ).scalar_one()
        answer = client.post("/v1/claims", json=body, headers={**accounts["app"].headers, **idem()})
        assert answer.status_code == status, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in answer.json()["errors"]], (name, answer.json())
        assert counts(world.source) == before, name
        with world.source.connect() as conn:
            refused = conn.execute(
                select(func.count())
                .select_from(AUDIT)
                .where(AUDIT.c.action == "claims.submit", AUDIT.c.outcome == "invalid")
            ).scalar_one()
        assert refused == refused_before + 1, name
    assert "claims" in inspect(world.source).get_table_names()


def test_a_scoped_caller_cannot_file_for_a_customer_outside_its_scope(
    world: ApiWorld, client: TestClient, make_account, policies
):  # type: ignore[no-untyped-def]
    mine, theirs = policies
    agent = make_account("service_agent", agent_id=10**12)  # an agent with no customers
    before = counts(world.source)
    answer = client.post("/v1/claims", json=claim_body(mine), headers={**agent.headers, **idem()})
    assert answer.status_code == 404
    assert counts(world.source) == before


def test_roles_without_the_scope_are_refused(client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    for role in ("claims_handler", "marketer", "analyst", "admin"):
        answer = client.post("/v1/claims", json=claim_body(policies[0]), headers={**accounts[role].headers, **idem()})
        assert answer.status_code == 403, role
    assert client.post("/v1/claims", json=claim_body(policies[0]), headers=idem()).status_code == 401


# --- the state machine -----------------------------------------------------------------------------------------


def test_state_machine_over_every_pair(world: ApiWorld, client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    policy = policies[0]
    handler = accounts["claims_handler"]
    for source_status in STATUSES:
        parked = claim_in(client, accounts, policy, source_status)
        for target in STATUSES:
            if target in TRANSITIONS[source_status]:
                claim = claim_in(client, accounts, policy, source_status)
                before = counts(world.source)
                answer = move(client, handler, claim["claim_no"], target)
                assert answer.status_code == 200, (source_status, target, answer.text)
                moved = answer.json()
                assert moved["status"] == target and moved["history"][-1]["from_status"] == source_status
                assert moved["history"][-1]["changed_by_role"] == "claims_handler"
                assert counts(world.source) == before | {
                    "history": before["history"] + 1,
                    "outbox": before["outbox"] + 1,
                    "keys": before["keys"] + 1,
                }
                with world.source.connect() as conn:
                    row = conn.execute(select(CLAIMS).where(CLAIMS.c.claim_no == claim["claim_no"])).one()
                    event = conn.execute(
                        select(OUTBOX.c.payload, OUTBOX.c.event_type).order_by(OUTBOX.c.id.desc())
                    ).first()
                assert row.status == target and getattr(row, f"{target}_at") is not None
                assert event.event_type == "claim_status_changed"
                assert (
                    f'"from_status":"{source_status}"' in event.payload.replace(" ", "")
                    and claim["claim_no"] in event.payload
                )
            else:
                before = counts(world.source)
                answer = move(client, handler, parked["claim_no"], target)
                assert answer.status_code == 409, (source_status, target, answer.text)
                problem = answer.json()
                assert problem["allowed_transitions"] == list(TRANSITIONS[source_status])
                assert problem["current_status"] == source_status
                assert problem["errors"][0]["field"] == "/body/to"
                assert counts(world.source) == before, (source_status, target)


def test_review_again_keeps_the_first_review_time(world: ApiWorld, client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    claim = claim_in(client, accounts, policies[0], "docs_requested")
    again = move(client, accounts["claims_handler"], claim["claim_no"], "under_review")
    assert again.status_code == 200
    assert [h["to_status"] for h in again.json()["history"]] == [
        "submitted",
        "under_review",
        "docs_requested",
        "under_review",
    ]
    first_review = again.json()["history"][1]["changed_at"]
    with world.source.connect() as conn:
        row = conn.execute(select(CLAIMS).where(CLAIMS.c.claim_no == claim["claim_no"])).one()
    assert row.under_review_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") == first_review


def test_transition_inputs_are_checked_and_text_is_stored_verbatim(
    world: ApiWorld, client: TestClient, accounts, policies
):  # type: ignore[no-untyped-def]
    handler = accounts["claims_handler"]
    claim = claim_in(client, accounts, policies[0], "under_review")
    no = claim["claim_no"]
    cases = [
        ({"to": "approved"}, "/body/amount_approved"),
        ({"to": "approved", "amount_approved": "1000.01"}, "/body/amount_approved"),  # above the 1000.00 claimed
        ({"to": "rejected"}, "/body/reason"),
        ({"to": "docs_requested", "reason": "x" * 501}, "/body/reason"),
        ({"to": "docs_requested", "reason": "ok", "amount_paid": "1.00"}, "/body/amount_paid"),
        ({"to": "docs_requested", "reason": "ok", "extra": 1}, "/body/extra"),
        ({"to": "closed"}, "/body/to"),
        ({"reason": "no target"}, "/body/to"),
    ]
    for body, field in cases:
        before = counts(world.source)
        answer = client.post(f"/v1/claims/{no}/transitions", json=body, headers={**handler.headers, **idem()})
        assert answer.status_code == 422, (body, answer.text)
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.json())
        assert counts(world.source) == before
    assert (
        client.post(
            "/v1/claims/CL0000/transitions", json={"to": "under_review"}, headers={**handler.headers, **idem()}
        ).status_code
        == 404
    )
    assert move(client, handler, no, "docs_requested", reason=HOSTILE).status_code == 200
    shown = client.get(f"/v1/claims/{no}", headers=handler.headers).json()
    assert shown["history"][-1]["reason"] == HOSTILE
    with world.source.connect() as conn:
        stored = conn.execute(select(HISTORY.c.reason).order_by(HISTORY.c.id.desc())).first()
        assert conn.execute(select(func.count()).select_from(CLAIMS)).scalar_one() > 0  # the table is still there
    assert stored.reason == HOSTILE
    # an app may not move claims
    answer = client.post(
        f"/v1/claims/{no}/transitions", json={"to": "under_review"}, headers={**accounts["app"].headers, **idem()}
    )
    assert answer.status_code == 403


# --- documents -------------------------------------------------------------------------------------------------


def upload(
    client: TestClient, account: Any, claim_no: str, name: str, content: bytes, declared: str | None = None, **extra
):  # type: ignore[no-untyped-def]
    files = {"file": (name, content, declared) if declared else (name, content)}
    return client.post(
        f"/v1/claims/{claim_no}/documents", files=files, data=extra, headers={**account.headers, **idem()}
    )


def test_documents_are_typed_by_content_stored_by_hash_and_listed(
    world: ApiWorld, client: TestClient, accounts, policies
):  # type: ignore[no-untyped-def]
    claim = file_claim(client, accounts["app"], policies[0])
    no = claim["claim_no"]
    before = counts(world.source)
    key = idem()
    name = "事故照片 <script>.pdf"
    files = {"file": (name, PDF, "application/pdf")}
    first = client.post(
        f"/v1/claims/{no}/documents",
        files=files,
        data={"kind": "loss_report"},
        headers={**accounts["app"].headers, **key},
    )
    assert first.status_code == 201, first.text
    doc = first.json()
    assert doc["content_type"] == "application/pdf" and doc["size_bytes"] == len(PDF) and doc["file_name"] == name
    replay = client.post(
        f"/v1/claims/{no}/documents",
        files=files,
        data={"kind": "loss_report"},
        headers={**accounts["app"].headers, **key},
    )
    assert replay.status_code == 201 and replay.json() == doc
    assert counts(world.source) == before | {
        "documents": before["documents"] + 1,
        "outbox": before["outbox"] + 1,
        "keys": before["keys"] + 1,
    }
    store = DocumentStore(world.settings.resolved_document_dir)
    assert store.get(doc["sha256"]) == PDF
    for content, file_name in ((PNG, "scan.png"), (JPEG, "photo.JPG")):
        assert upload(client, accounts["service_agent"], no, file_name, content).status_code == 201
    listed = client.get(f"/v1/claims/{no}/documents?limit=2", headers=accounts["claims_handler"].headers)
    assert listed.status_code == 200
    page = listed.json()
    assert [d["content_type"] for d in page["items"]] == ["application/pdf", "image/png"] and page["next_cursor"]
    rest = client.get(
        f"/v1/claims/{no}/documents?limit=2&cursor={page['next_cursor']}", headers=accounts["claims_handler"].headers
    ).json()
    assert [d["content_type"] for d in rest["items"]] == ["image/jpeg"] and rest["next_cursor"] is None
    detail = client.get(f"/v1/claims/{no}", headers=accounts["app"].headers).json()
    assert [d["document_id"] for d in detail["documents"]][0] == doc["document_id"]
    with world.source.connect() as conn:
        events = (
            conn.execute(select(OUTBOX.c.payload).where(OUTBOX.c.event_type == "claim_document_attached"))
            .scalars()
            .all()
        )
    assert any(doc["document_id"] in e for e in events)


def test_bad_files_name_the_field_and_write_nothing(world: ApiWorld, client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    claim = file_claim(client, accounts["app"], policies[0])
    no = claim["claim_no"]
    limit = world.settings.max_upload_bytes
    cases = [
        ("notes.pdf", b"just text, not a PDF", None, 415, "/body/file"),
        ("evil.pdf", b"MZ\x90\x00 an executable", "application/pdf", 415, "/body/file"),
        ("photo.pdf", PNG, None, 422, "/body/file/filename"),
        ("photo.png", JPEG, "image/jpeg", 422, "/body/file/filename"),
        ("scan.png", PNG, "application/pdf", 415, "/body/file/content_type"),
        ("noextension", PDF, None, 422, "/body/file/filename"),
        ("empty.pdf", b"", None, 422, "/body/file"),
        ("a" * 252 + ".pdf", PDF, None, 422, "/body/file/filename"),
    ]
    for name, content, declared, status, field in cases:
        before = counts(world.source)
        answer = upload(client, accounts["app"], no, name, content, declared)
        assert answer.status_code == status, (name, answer.text)
        assert field in [e["field"] for e in answer.json()["errors"]], (name, answer.json())
        assert counts(world.source) == before, name
    before = counts(world.source)
    big = upload(client, accounts["app"], no, "big.pdf", PDF + b"0" * limit)
    assert big.status_code == 413 and str(limit) in big.json()["detail"]
    assert [e["field"] for e in big.json()["errors"]] == ["/body/file"]  # the route's own check names the field
    assert counts(world.source) == before
    bad_kind = upload(client, accounts["app"], no, "ok.pdf", PDF, kind="selfie")
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["field"] == "/body/kind"
    assert upload(client, accounts["app"], "CL0000", "ok.pdf", PDF).status_code == 404
    assert upload(client, accounts["claims_handler"], no, "ok.pdf", PDF).status_code == 403
    assert counts(world.source) == before


# --- SLA -------------------------------------------------------------------------------------------------------


def day_with(count: int, *, before: date) -> date:
    """The latest day whose working days up to ``before`` are exactly ``count``."""
    day = before
    while working_days_between(day, before) != count:
        day -= timedelta(days=1)
    return day


def craft(engine: Engine, claim_no: str, **columns: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(CLAIMS).where(CLAIMS.c.claim_no == claim_no).values(**columns))


def at_noon(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=12)


def test_sla_flags_on_crafted_dates_and_the_at_risk_list(world: ApiWorld, client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    policy, handler, now = policies[0], accounts["claims_handler"], today()
    crafted = {
        # name: (status to reach, working days since the clock started, which clock, at_risk, breached)
        "review fresh": ("submitted", 0, "review", False, False),
        "review 1 used": ("submitted", 1, "review", False, False),
        "review at risk": ("submitted", 2, "review", True, False),
        "review due today": ("submitted", 3, "review", True, False),
        "review breached": ("submitted", 4, "review", False, True),
        "payment at risk": ("approved", 4, "payment", True, False),
        "payment breached": ("paying", 6, "payment", False, True),
        "payment on time": ("approved", 3, "payment", False, False),
    }
    numbers = {}
    for offset, (name, (status, used, clock, _, _)) in enumerate(crafted.items()):
        claim = claim_in(client, accounts, policy, status)
        started = at_noon(day_with(used, before=now))
        if clock == "review":
            craft(
                world.source, claim["claim_no"], reported_at=started, submitted_at=started - timedelta(seconds=offset)
            )
        else:
            reported = at_noon(day_with(used + 2, before=now))
            craft(
                world.source,
                claim["claim_no"],
                reported_at=reported,
                submitted_at=reported - timedelta(seconds=offset),
                under_review_at=reported + timedelta(hours=1),
                approved_at=started,
            )
        numbers[name] = claim["claim_no"]
    for name, (_, used, clock, at_risk, breached) in crafted.items():
        sla = client.get(f"/v1/claims/{numbers[name]}", headers=handler.headers).json()["sla"]
        assert (sla["at_risk"], sla["breached"]) == (at_risk, breached), (name, sla)
        assert sla[f"{clock}_working_days"] == used, (name, sla)
        start = day_with(used, before=now)
        assert sla[f"{clock}_due"] == add_working_days(start, 3 if clock == "review" else 5).isoformat()
    # every page of the at-risk list, oldest submission first
    listed, cursor = [], None
    while True:
        url = "/v1/claims/at-risk?limit=50" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=handler.headers)
        assert page.status_code == 200, page.text
        listed += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    order = [(c["submitted_at"], c["claim_no"]) for c in listed]
    assert [o[0] for o in order] == sorted(o[0] for o in order)
    assert all(c["sla"]["at_risk"] or c["sla"]["breached"] for c in listed)
    in_list = {c["claim_no"] for c in listed}
    for name, (_, _, _, at_risk, breached) in crafted.items():
        assert (numbers[name] in in_list) == (at_risk or breached), name
    assert client.get("/v1/claims/at-risk", headers=accounts["app"].headers).status_code == 403


def test_claims_of_a_customer_newest_first_by_status(client: TestClient, accounts, policies):  # type: ignore[no-untyped-def]
    policy = policies[1]
    filed = [file_claim(client, accounts["app"], policy)["claim_no"] for _ in range(3)]
    url = f"/v1/claims?customer_id={policy.customer_id}&status=submitted&limit=2"
    first = client.get(url, headers=accounts["service_agent"].headers).json()
    rest = client.get(f"{url}&cursor={first['next_cursor']}", headers=accounts["service_agent"].headers).json()
    seen = [c["claim_no"] for c in first["items"] + rest["items"]]
    assert seen[:3] == filed[::-1]
    assert all(
        c["customer_id"] == policy.customer_id and c["status"] == "submitted" for c in first["items"] + rest["items"]
    )
    bad = client.get("/v1/claims?cursor=nonsense", headers=accounts["service_agent"].headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/query/cursor"
    assert client.get("/v1/claims?status=lost", headers=accounts["reviewer"].headers).status_code == 422


# --- races on PostgreSQL and MariaDB -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def db_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A world whose source is a database of its own on the machine's PostgreSQL or MariaDB, and its app."""
    import redis
    from conftest import MACHINE_MARIADB_URL, MACHINE_POSTGRES_URL, MACHINE_REDIS_URL
    from sqlalchemy import create_engine

    from app.main import create_app

    kind, name = request.param, "h_claims_tests"
    saved = {k: os.environ.get(k) for k in ("MO_HOME", "MO_PII_KEY", "MO_REDIS_PREFIX", "MO_KAFKA_BOOTSTRAP")}
    url = create_database(kind, name)
    try:
        built = build_world(tmp_path_factory.mktemp(f"claims-{kind}"), source_url=url, customers=40)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with TestClient(create_app(built.settings), raise_server_exceptions=False) as db_client:
        yield built, db_client
    built.source.dispose()
    keys = redis.Redis.from_url(MACHINE_REDIS_URL)
    for key in keys.scan_iter(f"{built.redis_prefix}:*", count=1000):
        keys.unlink(key)
    keys.close()
    admin = create_engine(
        MACHINE_POSTGRES_URL if kind == "postgresql" else MACHINE_MARIADB_URL, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))
    admin.dispose()


def _login(world: ApiWorld, client: TestClient, role: str) -> dict[str, str]:
    from app.services.accounts import create_user

    username = f"{role}-{uuid.uuid4().hex[:8]}"
    with world.source.begin() as conn:
        create_user(conn, username=username, password=PASSWORD, role=role)
    token = client.post("/v1/auth/token", data={"grant_type": "password", "username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _at_once(*calls):  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_races_on_postgresql_and_mariadb(db_world) -> None:  # type: ignore[no-untyped-def]
    world, client = db_world
    app_headers, handler_a, handler_b = (_login(world, client, r) for r in ("app", "claims_handler", "claims_handler"))
    policy = policies_in_force(world.source, 1)[0]
    for _ in range(3):
        # two requests with one Idempotency-Key at once: one claim, one event, the same answer twice
        before = counts(world.source)
        key = idem()
        body = claim_body(policy)
        first, second = _at_once(
            lambda body=body, key=key: client.post("/v1/claims", json=body, headers={**app_headers, **key}),
            lambda body=body, key=key: client.post("/v1/claims", json=body, headers={**app_headers, **key}),
        )
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        assert first.json() == second.json()
        after = counts(world.source)
        assert after["claims"] == before["claims"] + 1 and after["outbox"] == before["outbox"] + 1
        no = first.json()["claim_no"]
        assert move(client, _Account(handler_a), no, "under_review").status_code == 200
        # two handlers deciding the same claim at once: one wins, the other is told 409
        approve, reject = _at_once(
            lambda no=no: move(client, _Account(handler_a), no, "approved"),
            lambda no=no: move(client, _Account(handler_b), no, "rejected"),
        )
        assert sorted([approve.status_code, reject.status_code]) == [200, 409], (approve.text, reject.text)
        with world.source.connect() as conn:
            decided = (
                conn.execute(
                    select(HISTORY.c.to_status)
                    .join(CLAIMS, CLAIMS.c.id == HISTORY.c.claim_id)
                    .where(CLAIMS.c.claim_no == no)
                )
                .scalars()
                .all()
            )
        assert decided == ["submitted", "under_review", "approved" if approve.status_code == 200 else "rejected"]


class _Account:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_document_store_defaults_under_mo_home(world: ApiWorld) -> None:
    assert world.settings.resolved_document_dir == Path(world.settings.platform.home) / "documents"


def test_sla_flags_agree_with_the_marts_unit_test() -> None:
    """The dbt unit test of int_claims_sla_measured, replayed through the API's SLA: same working days, same
    breaches (dbt/models/intermediate/claims/_claims__models.yml)."""
    from types import SimpleNamespace

    import yaml

    from app.services.claims import sla_of

    spec = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "dbt/models/intermediate/claims/_claims__models.yml").read_text()
    )
    case = next(t for t in spec["unit_tests"] if t["model"] == "int_claims_sla_measured")
    as_of = date.fromisoformat(case["overrides"]["vars"]["as_of_date"])
    given = case["given"][0]["rows"]
    expected = {row["claim_id"]: row for row in case["expect"]["rows"]}
    assert len(given) == len(expected) >= 6
    columns = ("reported_at", "under_review_at", "docs_requested_at", "approved_at", "rejected_at", "paid_at")
    for row in given:
        claim = SimpleNamespace(**{c: datetime.fromisoformat(row[c]) if row.get(c) else None for c in columns})
        sla = sla_of(claim, as_of)
        want = expected[row["id"]]
        assert sla["review_working_days"] == want["review_working_days"], row
        assert sla["payment_working_days"] == want["payment_working_days"], row
        assert sla["breached"] == want["is_sla_breached"], row
