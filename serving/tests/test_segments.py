"""Segments for marketers through the API: the definition store (versions, archive, static lists), previews
and exports from the published store, and evaluate_now, the audience a campaign snapshots.

The session's world (SQLite source) carries the API tests; the definition store itself is also run on the
machine's PostgreSQL and MariaDB (module fixture below)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest
from conftest import ApiWorld, create_database, idem
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from mo.oltp.api_tables import AuditEntry
from mo.oltp.models import Customer
from mo.segments import store as segment_store
from mo.segments.definitions import SegmentNotFound, load_definitions, parse_definition

AUDIT = AuditEntry.__table__
RULE = {"all": [{"attr": "gender", "op": "eq", "value": "F"}, {"attr": "age", "op": "gte", "value": 30}]}


def new_id(prefix: str = "seg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def dynamic(segment_id: str, rule: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "segment_id": segment_id,
        "name": "Women 30 and over",
        "description": "Female customers aged 30 or more.",
        "owner": "growth-marketing",
        "kind": "dynamic",
        "rule": rule or RULE,
        **extra,
    }


def static(segment_id: str) -> dict[str, Any]:
    return {
        "segment_id": segment_id,
        "name": "Event guests",
        "description": "Guests of the client event.",
        "owner": "branch-marketing",
        "kind": "static",
    }


def version_count(world: ApiWorld, segment_id: str | None = None) -> int:
    with world.source.connect() as conn:
        query = select(func.count()).select_from(segment_store.VERSIONS)
        if segment_id is not None:
            query = query.where(segment_store.VERSIONS.c.segment_id == segment_id)
        return int(conn.execute(query).scalar() or 0)


def audit_rows(world: ApiWorld, action: str) -> list[Any]:
    with world.source.connect() as conn:
        return conn.execute(select(AUDIT).where(AUDIT.c.action == action).order_by(AUDIT.c.id)).all()


def published_profile(world: ApiWorld) -> list[dict[str, Any]]:
    from mo.serving_store.store import SqlServingStore

    store = SqlServingStore(world.serving_url)
    try:
        with store.read_transaction() as conn:
            refresh = store.current_refresh(conn)
            rows = conn.execute(text(f"SELECT * FROM {store.physical('customer_profile', refresh.refresh_id)}"))
            return [dict(r._mapping) for r in rows]
    finally:
        store.dispose()


def test_create_edit_list_and_archive_keep_every_version(world: ApiWorld, client: TestClient, accounts) -> None:  # type: ignore[no-untyped-def]
    marketer = accounts["marketer"].headers
    segment_id = new_id()
    key = idem()
    created = client.post("/v1/segments", json=dynamic(segment_id), headers={**marketer, **key})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["latest_version"], body["status"], body["origin"], body["kind"]) == (1, "active", "api", "dynamic")
    assert body["current"]["rule"] == RULE and body["created_by"].endswith(accounts["marketer"].username)
    replay = client.post("/v1/segments", json=dynamic(segment_id), headers={**marketer, **key})
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == body
    assert version_count(world, segment_id) == 1
    again = client.post("/v1/segments", json=dynamic(segment_id), headers={**marketer, **idem()})
    assert again.status_code == 409 and version_count(world, segment_id) == 1

    edit = {k: v for k, v in dynamic(segment_id).items() if k not in ("segment_id", "kind")}
    narrowed = {**edit, "rule": {"all": [*RULE["all"], {"attr": "customer_tier", "op": "in", "value": ["gold"]}]}}
    v2 = client.post(f"/v1/segments/{segment_id}/versions", json=narrowed, headers={**marketer, **idem()})
    assert v2.status_code == 200, v2.text
    assert v2.json()["created"] is True and v2.json()["segment"]["latest_version"] == 2
    same = client.post(f"/v1/segments/{segment_id}/versions", json=narrowed, headers={**marketer, **idem()})
    assert same.json()["created"] is False and same.json()["segment"]["latest_version"] == 2
    detail = client.get(f"/v1/segments/{segment_id}", headers=accounts["analyst"].headers).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["rule"] == RULE and detail["versions"][1]["rule"] == narrowed["rule"]

    archived = client.post(f"/v1/segments/{segment_id}/archive", headers={**marketer, **idem()})
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    refused = client.post(f"/v1/segments/{segment_id}/versions", json=edit, headers={**marketer, **idem()})
    assert refused.status_code == 409, refused.text
    assert version_count(world, segment_id) == 2
    assert any(r.outcome == "conflict" and segment_id in r.resource for r in audit_rows(world, "segments.edit"))
    creations = [r for r in audit_rows(world, "segments.create") if segment_id in (r.detail or "")]
    assert [(r.outcome, r.detail) for r in creations] == [
        ("ok", f"{segment_id} v1 dynamic"),
        ("conflict", f"segment '{segment_id}' already exists (active)"),
    ]

    # list: by id, cursor pages, status filter
    more = [new_id("list") for _ in range(3)]
    for sid in more:
        assert client.post("/v1/segments", json=dynamic(sid), headers={**marketer, **idem()}).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "active"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/segments", params=params, headers=accounts["approver"].headers).json()
        seen += [s["segment_id"] for s in page["items"]]
        assert all(s["status"] == "active" for s in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and set(more) <= set(seen) and segment_id not in seen
    archived_page = client.get("/v1/segments", params={"status": "archived", "limit": 100}, headers=marketer).json()
    assert segment_id in [s["segment_id"] for s in archived_page["items"]]


def test_bad_definitions_name_the_field_and_write_nothing(world: ApiWorld, client: TestClient, accounts) -> None:  # type: ignore[no-untyped-def]
    marketer = accounts["marketer"].headers
    before = version_count(world)
    unknown_column = dynamic(new_id(), {"all": [{"attr": "shoe_size", "op": "eq", "value": 42}, RULE["all"][0]]})
    answer = client.post("/v1/segments", json=unknown_column, headers={**marketer, **idem()})
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["/body/rule/all/0/attr"]
    assert "shoe_size" in answer.json()["errors"][0]["message"]

    deep: dict[str, Any] = RULE["all"][0]
    for _ in range(25):
        deep = {"not": deep}
    too_deep = client.post("/v1/segments", json=dynamic(new_id(), deep), headers={**marketer, **idem()})
    assert too_deep.status_code == 422
    assert too_deep.json()["errors"][0]["field"].startswith("/body/rule/not")
    assert "MAX_RULE_DEPTH" in too_deep.json()["errors"][0]["message"]

    long_name = client.post(
        "/v1/segments", json={**dynamic(new_id()), "name": "x" * 201}, headers={**marketer, **idem()}
    )
    assert long_name.status_code == 422 and long_name.json()["errors"][0]["field"] == "/body/name"
    no_rule = client.post("/v1/segments", json={**dynamic(new_id()), "rule": None}, headers={**marketer, **idem()})
    assert no_rule.status_code == 422 and no_rule.json()["errors"][0]["field"] == "/body/rule"
    rule_on_static = client.post(
        "/v1/segments", json={**static(new_id()), "rule": RULE}, headers={**marketer, **idem()}
    )
    assert rule_on_static.status_code == 422 and rule_on_static.json()["errors"][0]["field"] == "/body/rule"
    bad_id = client.post("/v1/segments", json=dynamic("Not A Slug"), headers={**marketer, **idem()})
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "/body/segment_id"
    assert version_count(world) == before
    refused = [r for r in audit_rows(world, "segments.create") if r.outcome == "invalid"]
    assert len(refused) >= 6


def test_preview_of_a_rule_and_of_a_saved_segment_agrees_with_the_published_profile(
    world: ApiWorld, client: TestClient, accounts
) -> None:  # type: ignore[no-untyped-def]
    profiles = published_profile(world)
    expected = sorted(p["customer_id"] for p in profiles if p["gender"] == "F" and p["age"] >= 30)
    assert expected, "the world has no women aged 30 or more: the test would prove nothing"
    answer = client.post(
        "/v1/segments/preview", json={"rule": RULE, "sample_size": 5}, headers=accounts["analyst"].headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(expected) and body["sample_ids"] == expected[:5]
    assert sum(b["customers"] for b in body["distributions"]["gender"]) == len(expected)
    assert body["distributions"]["gender"] == [{"value": "F", "customers": len(expected)}]
    assert body["refresh_id"] and body["clauses"]

    segment_id = new_id()
    marketer = accounts["marketer"].headers
    assert client.post("/v1/segments", json=dynamic(segment_id), headers={**marketer, **idem()}).status_code == 201
    saved = client.post("/v1/segments/preview", json={"segment_id": segment_id}, headers=marketer).json()
    assert (saved["count"], saved["segment_id"], saved["version"]) == (len(expected), segment_id, 1)

    bad = client.post(
        "/v1/segments/preview", json={"rule": {"attr": "shoe_size", "op": "eq", "value": 1}}, headers=marketer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/body/rule/attr"
    both = client.post("/v1/segments/preview", json={"rule": RULE, "segment_id": segment_id}, headers=marketer)
    assert both.status_code == 422
    missing = client.post("/v1/segments/preview", json={"segment_id": new_id()}, headers=marketer)
    assert missing.status_code == 404


def test_a_preview_past_its_timeout_is_a_503_naming_it(world: ApiWorld, accounts) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app
    from mo.serving_store import preview as preview_module

    slow = create_app(world.settings.model_copy(update={"statement_timeout_seconds": 0.001}))
    original = preview_module._SQLITE_PROGRESS_STEPS
    preview_module._SQLITE_PROGRESS_STEPS = 1  # check the deadline at every instruction
    try:
        with TestClient(slow, raise_server_exceptions=False) as client:
            event_rule = {
                "any": [
                    {"event": "message_open", "within_days": 30, "count": {"op": "gte", "value": n}}
                    for n in range(1, 20)
                ]
            }
            answer = client.post("/v1/segments/preview", json={"rule": event_rule}, headers=accounts["analyst"].headers)
    finally:
        preview_module._SQLITE_PROGRESS_STEPS = original
    assert answer.status_code == 503, answer.text
    assert "statement timeout" in answer.json()["detail"]


def _csv(column: str, values: list[Any]) -> bytes:
    return ("\n".join([column, *map(str, values)]) + "\n").encode()


def test_static_lists_from_ids_and_phones_are_versions_and_no_clear_phone_is_kept(
    world: ApiWorld, client: TestClient, accounts
) -> None:  # type: ignore[no-untyped-def]
    marketer = accounts["marketer"].headers
    segment_id = new_id("guests")
    assert client.post("/v1/segments", json=static(segment_id), headers={**marketer, **idem()}).status_code == 201
    live = sorted(p["customer_id"] for p in published_profile(world))
    ids = live[:5]
    upload = client.post(
        f"/v1/segments/{segment_id}/upload",
        files={"file": ("guests.csv", _csv("customer_id", [*ids, ids[0], 2**40]), "text/csv")},
        headers={**marketer, **idem()},
    )
    assert upload.status_code == 200, upload.text
    body = upload.json()
    assert (body["created"], body["rows"], body["members"], body["unknown"], body["duplicates"]) == (True, 7, 5, 1, 1)
    assert body["segment"]["latest_version"] == 2 and body["segment"]["current"]["member_count"] == 5
    with world.source.connect() as conn:
        assert segment_store.static_members(conn, segment_id, 2) == ids
    previewed = client.post("/v1/segments/preview", json={"segment_id": segment_id, "sample_size": 3}, headers=marketer)
    assert previewed.status_code == 200, previewed.text
    assert (previewed.json()["count"], previewed.json()["sample_ids"], previewed.json()["version"]) == (5, ids[:3], 2)

    with world.source.connect() as conn:
        phones = dict(conn.execute(select(Customer.__table__.c.id, Customer.__table__.c.phone)).all())
    chosen = live[5:9]
    formatted = [f"+86 {phones[i][:3]} {phones[i][3:7]} {phones[i][7:]}" for i in chosen]
    by_phone = client.post(
        f"/v1/segments/{segment_id}/upload",
        files={"file": ("phones.csv", _csv("phone", [*formatted, "13900000000"]), "text/csv")},
        headers={**marketer, **idem()},
    )
    assert by_phone.status_code == 200, by_phone.text
    sharing = sorted(i for i, p in phones.items() if p in {phones[c] for c in chosen} and i in set(live))
    assert by_phone.json()["members"] == len(sharing) and by_phone.json()["unknown"] == 1
    with world.source.connect() as conn:
        assert segment_store.static_members(conn, segment_id, 3) == sharing
        stored_text = " ".join(
            str(v)
            for table in (segment_store.SEGMENTS, segment_store.VERSIONS, segment_store.STATIC_MEMBERS, AUDIT)
            for row in conn.execute(select(table))
            for v in row
        )
    for i in chosen:
        assert phones[i] not in stored_text, "a clear phone number was stored"

    same = client.post(
        f"/v1/segments/{segment_id}/upload",
        files={"file": ("again.csv", _csv("customer_id", ids), "text/csv")},
        headers={**marketer, **idem()},
    )
    assert same.json()["created"] is True  # back to the first list: a new version (v4), v2 and v3 kept
    assert version_count(world, segment_id) == 4

    before = version_count(world, segment_id)
    empty = client.post(
        f"/v1/segments/{segment_id}/upload", files={"file": ("e.csv", b"", "text/csv")}, headers={**marketer, **idem()}
    )
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "/body/file"
    bad_lines = client.post(
        f"/v1/segments/{segment_id}/upload",
        files={"file": ("b.csv", _csv("phone", ["12345", phones[live[0]]]), "text/csv")},
        headers={**marketer, **idem()},
    )
    assert bad_lines.status_code == 422 and "line 2" in bad_lines.json()["errors"][0]["message"]
    assert "12345" not in bad_lines.text
    dynamic_id = new_id()
    assert client.post("/v1/segments", json=dynamic(dynamic_id), headers={**marketer, **idem()}).status_code == 201
    not_static = client.post(
        f"/v1/segments/{dynamic_id}/upload",
        files={"file": ("g.csv", _csv("customer_id", ids), "text/csv")},
        headers={**marketer, **idem()},
    )
    assert not_static.status_code == 409
    assert version_count(world, segment_id) == before and version_count(world, dynamic_id) == 1


def test_a_list_over_the_row_limit_or_with_a_bad_header_is_refused_by_line() -> None:
    with pytest.raises(segment_store.UploadError, match="more than 3 rows"):
        segment_store.parse_static_list("customer_id\n1\n2\n3\n4\n", pii_key=None, max_rows=3)
    with pytest.raises(segment_store.UploadError, match="line 1"):
        segment_store.parse_static_list("mobile\n13800138000\n", pii_key=b"k")
    parsed = segment_store.parse_static_list("phone\n+86 138 0013 8000\n13800138000\n\n", pii_key=b"k")
    assert parsed.rows == 2 and parsed.duplicates == 1 and parsed.tokens == [pii_token(b"k", "13800138000")]
    assert "13800138000" not in repr(parsed)


def pii_token(key: bytes, phone: str) -> str:
    from mo import pii

    return pii.token(key, "phone", phone) or ""


def test_an_oversized_upload_is_refused_naming_the_file(world: ApiWorld, accounts) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    small = create_app(world.settings.model_copy(update={"max_upload_bytes": 1024}))
    marketer = accounts["marketer"].headers
    with TestClient(small, raise_server_exceptions=False) as client:
        segment_id = new_id("big")
        assert client.post("/v1/segments", json=static(segment_id), headers={**marketer, **idem()}).status_code == 201
        big = _csv("customer_id", list(range(1, 400)))
        answer = client.post(
            f"/v1/segments/{segment_id}/upload",
            files={"file": ("big.csv", big, "text/csv")},
            headers={**marketer, **idem()},
        )
    assert answer.status_code == 413 and answer.json()["errors"][0]["field"] == "/body/file"
    assert version_count(world, segment_id) == 1


def test_export_is_masked_audited_and_is_what_evaluate_now_returns(
    world: ApiWorld, client: TestClient, accounts
) -> None:  # type: ignore[no-untyped-def]
    marketer = accounts["marketer"].headers
    segment_id = new_id("export")
    assert client.post("/v1/segments", json=dynamic(segment_id), headers={**marketer, **idem()}).status_code == 201
    profiles = {p["customer_id"]: p for p in published_profile(world)}
    expected = sorted(i for i, p in profiles.items() if p["gender"] == "F" and p["age"] >= 30)
    answer = client.get(f"/v1/segments/{segment_id}/members", headers=marketer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == "rule_on_published_profile" and body["version"] == 1
    assert [m["customer_id"] for m in body["members"]] == expected
    first = body["members"][0]
    assert first["phone_masked"] == profiles[first["customer_id"]]["phone_masked"] and "****" in first["phone_masked"]
    assert all(m["reasons"] == ["/all/0: gender = 'F'", "/all/1: age >= 30"] for m in body["members"])
    with world.source.connect() as conn:
        phones = {r.id: r.phone for r in conn.execute(select(Customer.__table__.c.id, Customer.__table__.c.phone))}
    assert not any(phones[i] in answer.text for i in expected), "a clear phone number was exported"

    as_csv = client.get(f"/v1/segments/{segment_id}/members", params={"format": "csv"}, headers=marketer)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["customer_id"]) for r in rows] == expected and json.loads(rows[0]["reasons"]) == first["reasons"]
    exports = [r for r in audit_rows(world, "segments.export") if (r.detail or "").startswith(segment_id)]
    assert len(exports) == 2 and "json" in exports[0].detail and "csv" in exports[1].detail

    store = _store(world)
    try:
        evaluation = segment_store.evaluate_now(world.source, store, segment_id)
        assert [m.customer_id for m in evaluation.members] == expected
        assert client.post(f"/v1/segments/{segment_id}/archive", headers={**marketer, **idem()}).status_code == 200
        with pytest.raises(segment_store.SegmentArchived):
            segment_store.evaluate_now(world.source, store, segment_id)
        kept = segment_store.evaluate_now(world.source, store, segment_id, 1, allow_archived=True)
        assert [m.customer_id for m in kept.members] == expected
    finally:
        store.dispose()
    assert client.get(f"/v1/segments/{segment_id}/members", headers=accounts["analyst"].headers).status_code == 403


def _store(world: ApiWorld):  # type: ignore[no-untyped-def]
    from mo.serving_store.store import SqlServingStore

    return SqlServingStore(world.serving_url)


def test_evaluate_now_takes_the_published_membership_when_the_refresh_computed_that_version(
    world: ApiWorld, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A second serving store whose refresh computed 'pub-loyal' v2: v2 is answered from the published
    membership with its clauses; v1 (not computed) from the rule on the published profile."""
    import redis
    from conftest import MACHINE_REDIS_URL, _load_platform_world

    from mo.serving_store import publish_batches
    from mo.serving_store.store import SqlServingStore

    platform = _load_platform_world()
    published = platform.make_world("pub", 30, seed=5)
    for row in [*published.definitions, *published.membership]:
        row["segment_id"] = row["segment_id"].replace("pub_", "pub-")
    store = SqlServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    prefix = f"hseg{uuid.uuid4().hex[:6]}"
    try:
        publish_batches(
            store,
            as_of=platform.AS_OF,
            tables=published.batches(),
            redis_profiles=published.redis_batches(),
            redis_client=client,
            redis_prefix=prefix,
            published_by="segments-test",
        )
        loyal = parse_definition(
            {
                "id": "pub-loyal",
                "name": "loyal",
                "description": "d",
                "owner": "crm",
                "kind": "dynamic",
                "rule": {"attr": "tenure_years", "op": "gte", "value": 3},
            }
        )
        with world.source.begin() as conn:
            if (
                conn.execute(
                    select(segment_store.SEGMENTS).where(segment_store.SEGMENTS.c.segment_id == "pub-loyal")
                ).first()
                is None
            ):
                segment_store.create_segment(conn, loyal, created_by="test")
                segment_store.save_version(
                    conn,
                    parse_definition({**loyal.to_dict(), "rule": {"attr": "tenure_years", "op": "gte", "value": 5}}),
                    created_by="test",
                )
        now = segment_store.evaluate_now(world.source, store, "pub-loyal", 2)
        with store.read_transaction() as conn:
            rows = conn.execute(
                text(
                    f"SELECT customer_id, matched_clauses FROM {store.qualified('segment_members')} "
                    "WHERE segment_id = 'pub-loyal'"
                )
            ).all()
        expected = sorted((int(r[0]), tuple(json.loads(r[1]))) for r in rows)
        assert expected, "the published world has no pub-loyal members: the test would prove nothing"
        assert now.method == "published_membership" and now.version == 2
        assert [(m.customer_id, m.reasons) for m in now.members] == expected
        older = segment_store.evaluate_now(world.source, store, "pub-loyal", 1)
        assert older.method == "rule_on_published_profile"
        assert [m.customer_id for m in older.members] == sorted(
            p["customer_id"] for p in published.profiles if p["tenure_years"] >= 3
        )
        assert older.members and all(m.reasons == (": tenure_years >= 3",) for m in older.members)
        with pytest.raises(SegmentNotFound):
            segment_store.evaluate_now(world.source, store, "pub-loyal", 9)
    finally:
        store.dispose()
        for key in client.scan_iter(f"{prefix}:*"):
            client.unlink(key)
        client.close()


# --- the definition store on PostgreSQL and MariaDB -------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def core_db(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    from mo.oltp.db import make_engine, migrate

    url = create_database(request.param, f"h_seg_{request.param[:5]}")
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_the_definition_store_on_postgresql_and_mariadb(core_db) -> None:  # type: ignore[no-untyped-def]
    engine = core_db
    examples = load_definitions()
    report = segment_store.import_folder(engine, imported_by="file:test")
    assert sorted(report.created) == sorted(d.id for d in examples)
    again = segment_store.import_folder(engine, imported_by="file:test")
    assert sorted(again.unchanged) == sorted(d.id for d in examples) and not again.created

    young = next(d for d in examples if d.id == "young-urban")
    edited = parse_definition({**young.to_dict(), "rule": {"attr": "age", "op": "lt", "value": 28}})
    with engine.begin() as conn:
        stored, created = segment_store.save_version(conn, edited, created_by="user:marketer")
    assert created and stored.version == 2
    after_edit = segment_store.import_folder(engine, imported_by="file:test")
    assert "young-urban" in after_edit.skipped, "a file must not revert an edit made through the API"
    with engine.connect() as conn:
        assert segment_store.get_version(conn, "young-urban").definition.rule == edited.rule
        assert [v.version for v in segment_store.versions(conn, "young-urban")] == [1, 2]

    guests = parse_definition(
        {
            "id": "db-guests",
            "name": "g",
            "description": "d",
            "owner": "crm",
            "kind": "static",
            "static": {"source": "upload"},
        }
    )
    with engine.begin() as conn:
        segment_store.create_segment(conn, guests, created_by="user:marketer")
        v2, created = segment_store.save_version(
            conn, guests, created_by="user:marketer", members=[5, 3, 9], unknown_count=1
        )
        assert created and v2.member_count == 3
        same, created = segment_store.save_version(conn, guests, created_by="user:marketer", members=[9, 5, 3])
        assert not created and same.version == 2
        renamed, created = segment_store.save_version(
            conn, parse_definition({**guests.to_dict(), "name": "guests"}), created_by="user:marketer"
        )
        assert created and renamed.version == 3 and renamed.member_count == 3  # the list carries over
        assert segment_store.static_members(conn, "db-guests", 3) == [3, 5, 9]
    with engine.connect() as conn:
        active = {a.version.segment_id: a for a in segment_store.active_definitions(conn)}
    assert active["db-guests"].static_members == [3, 5, 9] and active["young-urban"].version.version == 2

    with engine.begin() as conn:
        segment_store.archive_segment(conn, "db-guests", archived_by="user:marketer")
    with engine.begin() as conn, pytest.raises(segment_store.SegmentArchived):
        segment_store.save_version(conn, guests, created_by="user:marketer", members=[1])
    with engine.begin() as conn, pytest.raises(segment_store.SegmentExists):
        segment_store.create_segment(conn, guests, created_by="user:marketer")
    with engine.connect() as conn:
        assert "db-guests" not in {a.version.segment_id for a in segment_store.active_definitions(conn)}
        assert [v.version for v in segment_store.versions(conn, "db-guests")] == [1, 2, 3]


def test_two_editors_racing_get_two_versions_on_postgresql_and_mariadb(core_db) -> None:  # type: ignore[no-untyped-def]
    import threading

    engine = core_db
    base = {"id": "db-race", "name": "r", "description": "d", "owner": "crm", "kind": "dynamic"}
    with engine.begin() as conn:
        segment_store.create_segment(
            conn, parse_definition({**base, "rule": {"attr": "age", "op": "gte", "value": 18}}), created_by="t"
        )
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def edit(age: int) -> None:
        try:
            barrier.wait()
            with engine.begin() as conn:
                stored, _ = segment_store.save_version(
                    conn, parse_definition({**base, "rule": {"attr": "age", "op": "gte", "value": age}}), created_by="t"
                )
                results.append(stored.version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=edit, args=(age,)) for age in (30, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [2, 3]


def test_two_creators_racing_for_one_id_get_one_segment_on_postgresql_and_mariadb(core_db) -> None:  # type: ignore[no-untyped-def]
    import threading

    engine = core_db
    definition = parse_definition(
        {"id": "db-twice", "name": "t", "description": "d", "owner": "crm", "kind": "dynamic", "rule": RULE}
    )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            with engine.begin() as conn:
                segment_store.create_segment(conn, definition, created_by="t")
            outcomes.append("created")
        except segment_store.SegmentExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created", "exists"]
    with engine.connect() as conn:
        assert [v.version for v in segment_store.versions(conn, "db-twice")] == [1]
