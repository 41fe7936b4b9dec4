"""Complaints on real stores: an open complaint is in the hot record when the POST returns; assign and
resolve move it as a state machine (409 otherwise); bad input names the field and files nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from conftest import MACHINE_REDIS_URL, Account, ApiWorld, idem
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mo import hot_record
from mo.oltp.models import Complaint, Policy
from mo.oltp.outbox import OutboxEvent

COMPLAINTS = Complaint.__table__
OUTBOX = OutboxEvent.__table__
POLICIES = Policy.__table__


@pytest.fixture(scope="module")
def rdb() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    yield client
    client.close()


def complaint_count(world: ApiWorld, customer_id: int) -> int:
    with world.source.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(COMPLAINTS).where(COMPLAINTS.c.customer_id == customer_id)
        ).scalar()


def policy_of(world: ApiWorld, customer_id: int) -> str:
    with world.source.connect() as conn:
        return conn.execute(select(POLICIES.c.policy_no).where(POLICIES.c.customer_id == customer_id)).scalar()


def filing(world: ApiWorld, customer_id: int, **over) -> dict:  # type: ignore[no-untyped-def]
    return {
        "customer_id": customer_id,
        "policy_no": policy_of(world, customer_id),
        "channel": "app",
        "category": "claim",
        "summary": "理赔三天无进展 <b>'; DROP TABLE complaints; --",
        **over,
    }


def file(client: TestClient, account: Account, body: dict):  # type: ignore[no-untyped-def]
    return client.post("/v1/complaints", json=body, headers={**account.headers, **idem()})


def test_an_open_complaint_stops_marketing_at_once_and_resolving_it_lifts_that(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    app, agent = accounts["app"], accounts["service_agent"]
    assert (
        client.post(
            "/v1/customers/21/consents",
            json={"channel": "sms", "purpose": "marketing", "status": "opt_in", "text_version": "v1", "source": "app"},
            headers={**app.headers, **idem()},
        ).status_code
        == 201
    )
    with world.source.connect() as conn:
        already_open = hot_record.record_from_source(conn, 21).open_complaints
    filed = file(client, app, filing(world, 21))
    assert filed.status_code == 201, filed.text
    complaint = filed.json()
    number = complaint["complaint_no"]
    assert complaint["status"] == "open" and complaint["summary"].startswith("理赔三天无进展 <b>'; DROP TABLE")
    record = hot_record.hot_record(rdb, 21, world.redis_prefix)  # right after the POST returned
    assert number in record.open_complaints and record.may_contact("sms") is False
    with world.source.connect() as conn:
        types = conn.execute(select(OUTBOX.c.event_type).where(OUTBOX.c.payload.contains(number))).scalars().all()
    assert types == ["complaint_opened"]

    assigned = client.post(
        f"/v1/complaints/{number}/assign",
        json={"assignee": f"user:{agent.username}"},
        headers={**agent.headers, **idem()},
    )
    assert assigned.status_code == 200 and assigned.json()["status"] == "in_progress"
    assert number in hot_record.hot_record(rdb, 21, world.redis_prefix).open_complaints  # still open for campaigns
    resolved = client.post(
        f"/v1/complaints/{number}/resolve",
        json={"resolution": "Paid and apologised."},
        headers={**agent.headers, **idem()},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolution"] == "Paid and apologised."
    record = hot_record.hot_record(rdb, 21, world.redis_prefix)
    assert number not in record.open_complaints
    assert record.may_contact("sms") is (not already_open)
    again = client.post(
        f"/v1/complaints/{number}/resolve", json={"resolution": "twice"}, headers={**agent.headers, **idem()}
    )
    assert again.status_code == 409
    assert again.json()["status_now"] == "resolved" and again.json()["allowed_from"] == ["open", "in_progress"]
    with world.source.connect() as conn:
        types = conn.execute(select(OUTBOX.c.event_type).where(OUTBOX.c.payload.contains(number))).scalars().all()
    assert sorted(types) == ["complaint_opened", "complaint_resolved"]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"channel": "pigeon"}, "/body/channel"),
        ({"category": "weather"}, "/body/category"),
        ({"summary": "x" * 1001}, "/body/summary"),
        ({"summary": "bell\x07"}, "/body/summary"),
        ({"extra": True}, "/body/extra"),
        ({"policy_no": "P000NOTMINE"}, "/body/policy_no"),
    ],
)
def test_bad_input_names_the_field_and_files_nothing(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], over: dict, field: str
) -> None:
    before = complaint_count(world, 22)
    answer = file(client, accounts["app"], filing(world, 22, **over))
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert complaint_count(world, 22) == before


def test_a_policy_of_another_customer_and_an_unknown_customer_are_refused(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    before = complaint_count(world, 23)
    other = file(client, accounts["app"], filing(world, 23, policy_no=policy_of(world, 24)))
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "/body/policy_no"
    assert complaint_count(world, 23) == before
    assert (
        file(client, accounts["app"], {**filing(world, 23, policy_no=None), "customer_id": 10_000_000}).status_code
        == 404
    )


def test_roles_and_retries(world: ApiWorld, client: TestClient, accounts: dict[str, Account]) -> None:
    assert file(client, accounts["marketer"], filing(world, 25)).status_code == 403
    headers = {**accounts["app"].headers, "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/v1/complaints", json=filing(world, 25), headers=headers)
    count = complaint_count(world, 25)
    again = client.post("/v1/complaints", json=filing(world, 25), headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert complaint_count(world, 25) == count
    number = first.json()["complaint_no"]
    # The app files but does not handle complaints.
    refused = client.post(
        f"/v1/complaints/{number}/assign", json={"assignee": "user:x"}, headers={**accounts["app"].headers, **idem()}
    )
    assert refused.status_code == 403
    assert client.get(f"/v1/complaints/{number}", headers=accounts["marketer"].headers).status_code == 403
    assert client.get(f"/v1/complaints/{number}", headers=accounts["app"].headers).json()["customer_id"] == 25


def test_the_list_pages_newest_first_and_filters(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    for _ in range(3):
        assert file(client, accounts["app"], filing(world, 26, policy_no=None)).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"customer_id": 26, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/complaints", params=params, headers=accounts["service_agent"].headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == complaint_count(world, 26) and all(c["customer_id"] == 26 for c in seen)
    ids = [int(c["complaint_no"][-8:]) for c in seen]  # the number ends with the complaint's id
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    open_only = client.get(
        "/v1/complaints", params={"customer_id": 26, "status": "open"}, headers=accounts["app"].headers
    ).json()["items"]
    assert len(open_only) >= 3 and all(c["status"] == "open" for c in open_only)


@pytest.fixture(scope="module")
def maria_world(world: ApiWorld, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from contact_worlds import database_world

    with database_world("mariadb", "mo_consent_h_maria", tmp_path_factory.mktemp("maria"), world) as built:
        yield built


def test_on_mariadb_filing_with_redis_down_files_nothing_and_filing_works_when_it_is_up(
    maria_world, accounts: dict[str, Account], rdb: redis.Redis, closed_port: int
) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    maria, maria_client = maria_world
    assert maria.source.dialect.name in ("mysql", "mariadb")
    before = complaint_count(maria, 5)
    down = create_app(maria.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"}))
    with TestClient(down, raise_server_exceptions=False) as broken:
        refused = file(broken, accounts["app"], filing(maria, 5))
    assert refused.status_code == 503
    assert complaint_count(maria, 5) == before
    filed = file(maria_client, accounts["app"], filing(maria, 5))
    assert filed.status_code == 201, filed.text
    assert complaint_count(maria, 5) == before + 1
    assert filed.json()["complaint_no"] in hot_record.hot_record(rdb, 5, maria.redis_prefix).open_complaints
