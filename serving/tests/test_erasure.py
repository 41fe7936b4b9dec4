"""Erasure on real stores: exactly the marketing data goes (published profile in every refresh Redis holds,
marketing consent withdrawn and kept as evidence, hot record marked erased), the legal-hold data stays
(policies, claims, complaints, sales recordings, the customer row), and the request records both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from conftest import MACHINE_REDIS_URL, Account, ApiWorld, idem
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mo import hot_record
from mo.oltp.models import Claim, Complaint, Consent, Customer, Policy, SalesRecording
from mo.oltp.outbox import OutboxEvent
from mo.oltp.privacy import CHANNELS, ConsentEvidence, ErasureRequest
from mo.serving_store.redis_store import ProfileKeys, read_profile

HOLD = {"policies": Policy, "claims": Claim, "complaints": Complaint, "sales_recordings": SalesRecording}
ERASURES = ErasureRequest.__table__
EVIDENCE = ConsentEvidence.__table__
CONSENTS = Consent.__table__
OUTBOX = OutboxEvent.__table__
BODY = {"basis": "customer_request", "source": "call_center"}


@pytest.fixture(scope="module")
def rdb() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    yield client
    client.close()


def snapshot(world: ApiWorld, customer_id: int) -> dict:
    """Everything under legal hold for the customer, row by row, and the customer row itself."""
    with world.source.connect() as conn:
        held = {
            name: sorted(
                tuple(r) for r in conn.execute(select(model.__table__).where(model.customer_id == customer_id))
            )
            for name, model in HOLD.items()
        }
        held["customer"] = [tuple(conn.execute(select(Customer.__table__).where(Customer.id == customer_id)).one())]
    return held


def erase(client: TestClient, account: Account, customer_id: int, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/customers/{customer_id}/erasure", json=BODY, headers={**account.headers, **idem(), **headers}
    )


def a_customer_with_legal_hold_data(world: ApiWorld, start: int) -> int:
    with world.source.connect() as conn:
        return conn.execute(
            select(Claim.__table__.c.customer_id)
            .where(Claim.__table__.c.customer_id >= start)
            .order_by(Claim.__table__.c.customer_id)
        ).scalar()


def check_erased(world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis, cid: int,
                 answer) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    body = answer.json()
    prefix = world.redis_prefix
    # The profile is gone from Redis, the hot record says erased and refuses marketing on every channel.
    assert read_profile(rdb, cid, prefix=prefix) is None
    record = hot_record.hot_record(rdb, cid, prefix)
    assert record.known and record.erased
    assert all(record.may_contact(channel) is False for channel in CHANNELS)
    with world.source.connect() as conn:
        # Marketing consent withdrawn on every channel, in the synced table, with evidence.
        statuses = dict(
            conn.execute(
                select(CONSENTS.c.channel, CONSENTS.c.status).where(
                    CONSENTS.c.customer_id == cid, CONSENTS.c.deleted_at.is_(None)
                )
            ).all()
        )
        assert statuses == dict.fromkeys(CHANNELS, "opt_out")
        reasons = (
            conn.execute(
                select(EVIDENCE.c.channel).where(EVIDENCE.c.customer_id == cid, EVIDENCE.c.reason == "erasure")
            )
            .scalars()
            .all()
        )
        assert sorted(reasons) == sorted(CHANNELS)
        # The request is recorded with what was erased and what was kept, counted from the tables.
        row = conn.execute(select(ERASURES).where(ERASURES.c.customer_id == cid)).one()
        kept = {k["category"]: k for k in json.loads(row.kept)}
        for name, model in HOLD.items():
            count = conn.execute(
                select(func.count()).select_from(model.__table__).where(model.customer_id == cid)
            ).scalar()
            assert kept[name]["count"] == count and kept[name]["reason"]
        assert {e["category"] for e in json.loads(row.erased)} >= {
            "profile",
            "tags",
            "marketing_consents",
            "hot_record",
        }
        assert row.request_no == body["request_no"] and row.status == "completed"
        # The event carries categories only: no name, phone or ID number.
        customer = conn.execute(select(Customer.__table__).where(Customer.id == cid)).one()
        payload = conn.execute(
            select(OUTBOX.c.payload).where(OUTBOX.c.event_type == "customer_erased", OUTBOX.c.partition_key == str(cid))
        ).scalar()
    event = json.loads(payload)
    assert event["payload"]["request_id"] == body["request_no"]
    assert "claims" in event["payload"]["kept_under_legal_hold"]
    for pii in (customer.name, customer.phone, customer.id_number):
        assert pii not in payload


def test_erasure_erases_exactly_the_marketing_data_and_keeps_legal_hold_data(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    cid = a_customer_with_legal_hold_data(world, 40)
    neighbour = cid + 1
    prefix = world.redis_prefix
    keys = ProfileKeys(prefix)
    assert read_profile(rdb, cid, prefix=prefix) is not None
    # A previous refresh still in Redis holds the customer too: it must go as well, nobody else's.
    rdb.set(keys.previous, "olderrefresh")
    rdb.set(keys.profile("olderrefresh", cid), "[1]")
    rdb.set(keys.profile("olderrefresh", neighbour), "[2]")
    held_before = snapshot(world, cid)
    neighbour_profile = read_profile(rdb, neighbour, prefix=prefix)

    answer = erase(client, accounts["admin"], cid)
    assert answer.status_code == 201, answer.text
    check_erased(world, client, accounts, rdb, cid, answer)
    assert not rdb.exists(keys.profile("olderrefresh", cid))
    assert snapshot(world, cid) == held_before  # legal hold: not one row changed
    # Other customers keep everything.
    assert read_profile(rdb, neighbour, prefix=prefix) == neighbour_profile
    assert rdb.get(keys.profile("olderrefresh", neighbour)) == b"[2]"

    # Marketing cannot be granted again; service consent can still be recorded.
    grant = {"channel": "sms", "purpose": "marketing", "status": "opt_in", "text_version": "v2", "source": "app"}
    refused = client.post(f"/v1/customers/{cid}/consents", json=grant, headers={**accounts["app"].headers, **idem()})
    assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "/body/status"
    service = {**grant, "purpose": "service"}
    assert (
        client.post(
            f"/v1/customers/{cid}/consents", json=service, headers={**accounts["app"].headers, **idem()}
        ).status_code
        == 201
    )
    state = client.get(f"/v1/customers/{cid}/consents", headers=accounts["app"].headers).json()
    assert state["erased"] is True
    # A second erasure is refused and names the first.
    again = erase(client, accounts["admin"], cid)
    assert again.status_code == 409 and again.json()["request_no"] == answer.json()["request_no"]
    rdb.delete(keys.previous, keys.profile("olderrefresh", neighbour))


def test_only_admins_erase_and_a_retry_erases_once(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    for role in ("app", "service_agent", "marketer", "claims_handler"):
        assert erase(client, accounts[role], 31).status_code == 403, role
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = erase(client, accounts["admin"], 32, **key)
    again = erase(client, accounts["admin"], 32, **key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    with world.source.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(ERASURES).where(ERASURES.c.customer_id == 32)).scalar() == 1
        )
    assert erase(client, accounts["admin"], 10_000_000).status_code == 404
    bad = client.post(
        "/v1/customers/33/erasure", json={**BODY, "basis": "whim"}, headers={**accounts["admin"].headers, **idem()}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/body/basis"
    with world.source.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(ERASURES).where(ERASURES.c.customer_id == 33)).scalar() == 0
        )


@pytest.fixture(scope="module")
def pg_world(world: ApiWorld, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from contact_worlds import database_world

    with database_world("postgresql", "mo_consent_h_erasure", tmp_path_factory.mktemp("pg"), world) as built:
        yield built


def test_on_postgresql_erasure_with_redis_down_erases_nothing_then_erases_under_legal_hold(
    pg_world, accounts: dict[str, Account], rdb: redis.Redis, closed_port: int
) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    pg, pg_client = pg_world
    assert pg.source.dialect.name == "postgresql"
    cid = a_customer_with_legal_hold_data(pg, 1)
    held_before = snapshot(pg, cid)
    down = create_app(pg.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"}))
    with TestClient(down, raise_server_exceptions=False) as broken:
        assert erase(broken, accounts["admin"], cid).status_code == 503
    with pg.source.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ERASURES)).scalar() == 0
        assert (
            conn.execute(select(func.count()).select_from(EVIDENCE).where(EVIDENCE.c.customer_id == cid)).scalar() == 0
        )
    assert read_profile(rdb, cid, prefix=pg.redis_prefix) is not None

    answer = erase(pg_client, accounts["admin"], cid)
    assert answer.status_code == 201, answer.text
    check_erased(pg, pg_client, accounts, rdb, cid, answer)
    assert snapshot(pg, cid) == held_before
