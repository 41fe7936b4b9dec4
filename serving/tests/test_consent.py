"""Consent and contact preferences on real stores: effective at once in the hot record, fail-safe ordering,
validation that writes nothing, idempotent retries, and the rebuild of a Redis that lost its data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from conftest import MACHINE_REDIS_URL, Account, ApiWorld, idem
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from mo import hot_record
from mo.oltp.models import Consent, Customer, Policy
from mo.oltp.outbox import OutboxEvent
from mo.oltp.privacy import ConsentEvidence

CONSENTS = Consent.__table__
EVIDENCE = ConsentEvidence.__table__
OUTBOX = OutboxEvent.__table__


@pytest.fixture(scope="module")
def rdb(world: ApiWorld) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    yield client
    client.close()


def counts(world: ApiWorld, customer_id: int) -> tuple[int, int, int]:
    """Evidence rows, consents rows and outbox events of the customer: what a write leaves behind."""
    with world.source.connect() as conn:
        return (
            conn.execute(
                select(func.count()).select_from(EVIDENCE).where(EVIDENCE.c.customer_id == customer_id)
            ).scalar(),
            conn.execute(
                select(func.count()).select_from(CONSENTS).where(CONSENTS.c.customer_id == customer_id)
            ).scalar(),
            conn.execute(
                select(func.count()).select_from(OUTBOX).where(OUTBOX.c.partition_key == str(customer_id))
            ).scalar(),
        )


def marketing_status(world: ApiWorld, customer_id: int, channel: str) -> str | None:
    with world.source.connect() as conn:
        return conn.execute(
            select(CONSENTS.c.status)
            .where(
                CONSENTS.c.customer_id == customer_id, CONSENTS.c.channel == channel, CONSENTS.c.deleted_at.is_(None)
            )
            .order_by(CONSENTS.c.decided_at.desc())
        ).scalar()


def decision(channel: str = "sms", status: str = "opt_out", purpose: str = "marketing") -> dict:
    return {"channel": channel, "purpose": purpose, "status": status, "text_version": "mkt-2026.3", "source": "app"}


def post(client: TestClient, account: Account, customer_id: int, body: dict, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        f"/v1/customers/{customer_id}/consents", json=body, headers={**account.headers, **idem(), **headers}
    )


def test_a_withdrawal_is_in_the_hot_record_when_the_post_returns(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    app = accounts["app"]
    granted = post(client, app, 3, decision("app_push", "opt_in"))
    assert granted.status_code == 201, granted.text
    assert hot_record.hot_record(rdb, 3, world.redis_prefix).may_contact("app_push") is True

    withdrawn = post(client, app, 3, decision("app_push", "opt_out"))
    assert withdrawn.status_code == 201, withdrawn.text
    body = withdrawn.json()
    assert body["hot_record"] == "current" and body["evidence_id"] > granted.json()["evidence_id"]
    record = hot_record.hot_record(rdb, 3, world.redis_prefix)  # read right after the POST returned
    assert record.known and record.consent("app_push") == "opt_out" and record.may_contact("app_push") is False
    assert marketing_status(world, 3, "app_push") == "opt_out"  # the synced table holds the latest decision
    with world.source.connect() as conn:
        event = conn.execute(
            select(OUTBOX.c.payload).where(OUTBOX.c.event_type == "consent_changed").order_by(OUTBOX.c.id.desc())
        ).scalar()
    assert '"status":"opt_out"' in event.replace(" ", "") and '"channel":"app_push"' in event.replace(" ", "")
    with world.source.connect() as conn:
        audited = (
            conn.execute(
                text("select detail from audit_log where action = 'consents.write' and customer_id = 3 order by id")
            )
            .scalars()
            .all()
        )
    assert audited[-2:] == ["app_push/marketing opt_in text mkt-2026.3", "app_push/marketing opt_out text mkt-2026.3"]


def test_service_consent_is_kept_apart_from_marketing(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    before = marketing_status(world, 4, "email")
    answer = post(client, accounts["service_agent"], 4, decision("email", "opt_out", "service"))
    assert answer.status_code == 201, answer.text
    assert marketing_status(world, 4, "email") == before  # the synced table is marketing only
    record = hot_record.hot_record(rdb, 4, world.redis_prefix)
    assert record.consent("email", "service") == "opt_out" and record.may_contact("email", "service") is False
    state = client.get("/v1/customers/4/consents", headers=accounts["app"].headers).json()
    service = [c for c in state["current"] if c["purpose"] == "service"]
    assert service == [
        {
            "channel": "email",
            "purpose": "service",
            "status": "opt_out",
            "decided_at": service[0]["decided_at"],
            "source": "app",
            "text_version": "mkt-2026.3",
            "evidence_id": answer.json()["evidence_id"],
        }
    ]


def test_redis_down_during_a_withdrawal_answers_503_and_commits_nothing(
    world: ApiWorld, accounts: dict[str, Account], closed_port: int
) -> None:
    """The chosen order: a withdrawal goes to Redis before the commit, so Redis down -> 503, nothing written."""
    from app.main import create_app

    down = create_app(world.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"}))
    before = counts(world, 5)
    status_before = marketing_status(world, 5, "sms")
    with TestClient(down, raise_server_exceptions=False) as broken:
        answer = post(broken, accounts["app"], 5, decision("sms", "opt_out"))
    assert answer.status_code == 503, answer.text
    assert "Redis" in answer.json()["detail"] and answer.headers["retry-after"]
    assert counts(world, 5) == before
    assert marketing_status(world, 5, "sms") == status_before


def test_a_grant_with_redis_down_after_the_commit_stays_stricter_in_redis(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis, closed_port: int
) -> None:
    """A grant commits first; Redis unreachable afterwards leaves the older opt-out there (no marketing), and
    the answer says the hot record is stale; the next sync brings it level."""
    from app.main import create_app

    assert post(client, accounts["app"], 6, decision("wechat", "opt_out")).status_code == 201
    down = create_app(world.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"}))
    with TestClient(down, raise_server_exceptions=False) as broken:
        answer = post(broken, accounts["app"], 6, decision("wechat", "opt_in"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["hot_record"] == "stale"
    assert marketing_status(world, 6, "wechat") == "opt_in"
    assert hot_record.hot_record(rdb, 6, world.redis_prefix).may_contact("wechat") is False
    with world.source.connect() as conn:
        hot_record.sync_from_source(conn, rdb, world.redis_prefix, 6)
    assert hot_record.hot_record(rdb, 6, world.redis_prefix).may_contact("wechat") is True


def test_an_older_version_never_overwrites_a_newer_decision(world: ApiWorld, rdb: redis.Redis) -> None:
    prefix = world.redis_prefix
    hot_record.set_consent(rdb, prefix, 999_001, "sms", "marketing", "opt_out", 20)
    hot_record.set_consent(rdb, prefix, 999_001, "sms", "marketing", "opt_in", 19)  # a late, older grant
    raw = rdb.hgetall(hot_record.hot_key(prefix, 999_001))
    assert raw[b"consent:sms:marketing"] == b"opt_out|20"
    rdb.delete(hot_record.hot_key(prefix, 999_001))


def test_a_missing_hot_record_is_unknown_and_the_rebuild_restores_it(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    assert post(client, accounts["app"], 7, decision("sms", "opt_out")).status_code == 201
    rdb.delete(hot_record.hot_key(world.redis_prefix, 7))  # Redis lost its data
    lost = hot_record.hot_record(rdb, 7, world.redis_prefix)
    assert lost.known is False and lost.may_contact("sms") is None  # unknown, never "consented"
    with world.source.connect() as conn:
        assert hot_record.record_from_source(conn, 7).may_contact("sms") is False
        written = hot_record.rebuild(conn, rdb, world.redis_prefix)
        live = conn.execute(select(func.count()).select_from(Customer.__table__)).scalar()
    assert written == live
    rebuilt = hot_record.hot_record(rdb, 7, world.redis_prefix)
    assert rebuilt.known and rebuilt.consent("sms") == "opt_out"
    # Every rebuilt record says what the source says, for every customer.
    with world.source.connect() as conn:
        for cid in range(1, 30):
            assert (
                hot_record.hot_record(rdb, cid, world.redis_prefix).consents
                == hot_record.record_from_source(conn, cid).consents
            )


def test_the_hot_rebuild_cli(world: ApiWorld, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mo.cli import cli

    rdb.delete(hot_record.hot_key(world.redis_prefix, 8))
    monkeypatch.setenv("MO_SOURCE_URL", world.source_url)
    monkeypatch.setenv("MO_REDIS_URL", MACHINE_REDIS_URL)
    monkeypatch.setenv("MO_REDIS_PREFIX", world.redis_prefix)
    result = CliRunner().invoke(cli, ["hot", "rebuild", "--customer", "8"])
    assert result.exit_code == 0, result.output
    assert "1 hot record" in result.output
    assert hot_record.hot_record(rdb, 8, world.redis_prefix).known
    rdb.delete(hot_record.seen_key(world.redis_prefix))  # no mark: the first refresh remakes every record
    rdb.delete(hot_record.hot_key(world.redis_prefix, 8))
    result = CliRunner().invoke(cli, ["hot", "refresh"])
    assert result.exit_code == 0, result.output
    assert f"hot records refreshed: {world.customers}" in result.output
    assert hot_record.hot_record(rdb, 8, world.redis_prefix).known


def test_changes_the_core_systems_make_outside_the_api_reach_the_hot_record_on_refresh(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    """A call centre's opt-out and a complaint logged in the complaint system never pass through the API: the
    next refresh_changed copies them (and only the customers changed since the last pass) into Redis."""
    from mo.oltp.models import Complaint

    prefix = world.redis_prefix
    with world.source.connect() as conn:
        hot_record.refresh_changed(conn, rdb, prefix)  # the first pass (or a later one): the mark is set
    assert post(client, accounts["app"], 11, decision("wechat", "opt_in")).status_code == 201
    assert hot_record.hot_record(rdb, 11, prefix).consent("wechat") == "opt_in"
    now = datetime.now(UTC).replace(tzinfo=None)
    complaints = Complaint.__table__
    with world.source.begin() as conn:  # the core systems, not the API
        changed = conn.execute(
            CONSENTS.update()
            .where(CONSENTS.c.customer_id == 11, CONSENTS.c.channel == "wechat", CONSENTS.c.deleted_at.is_(None))
            .values(status="opt_out", source="call_center", decided_at=now, updated_at=now)
        ).rowcount
        assert changed >= 1
        template = conn.execute(select(complaints).limit(1)).mappings().first()
        assert template is not None
        conn.execute(
            complaints.insert().values(
                {**template, "id": 9_000_000_011, "complaint_no": "TSCORE0000000011", "customer_id": 12,
                 "status": "open", "created_at": now, "updated_at": now, "deleted_at": None}
            )
        )  # fmt: skip
    assert hot_record.hot_record(rdb, 11, prefix).consent("wechat") == "opt_in"  # stale until the refresh
    with world.source.connect() as conn:
        written = hot_record.refresh_changed(conn, rdb, prefix)
        live = conn.execute(select(func.count()).select_from(Customer.__table__)).scalar()
    assert 2 <= written < live, "only the customers changed since the last pass are remade"
    assert hot_record.hot_record(rdb, 11, prefix).consent("wechat") == "opt_out"
    assert hot_record.hot_record(rdb, 11, prefix).may_contact("wechat") is False
    assert "TSCORE0000000011" in hot_record.hot_record(rdb, 12, prefix).open_complaints


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**decision(), "channel": "fax"}, "/body/channel"),
        ({**decision(), "purpose": "profiling"}, "/body/purpose"),
        ({**decision(), "status": "maybe"}, "/body/status"),
        ({**decision(), "text_version": "v1<script>"}, "/body/text_version"),
        ({**decision(), "text_version": "x" * 33}, "/body/text_version"),
        ({**decision(), "extra": 1}, "/body/extra"),
        ({k: v for k, v in decision().items() if k != "source"}, "/body/source"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], body: dict, field: str
) -> None:
    before = counts(world, 9)
    answer = post(client, accounts["app"], 9, body)
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert counts(world, 9) == before


def test_unknown_customer_and_customer_outside_scope_are_404_and_write_nothing(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], make_account
) -> None:  # type: ignore[no-untyped-def]
    unknown = post(client, accounts["app"], 10_000_000, decision())
    assert unknown.status_code == 404
    with world.source.connect() as conn:
        agent_of_1 = conn.execute(
            select(Policy.__table__.c.agent_id).where(
                Policy.__table__.c.customer_id == 1, Policy.__table__.c.agent_id.is_not(None)
            )
        ).scalar()
        others = (
            conn.execute(select(Policy.__table__.c.customer_id).where(Policy.__table__.c.agent_id != agent_of_1))
            .scalars()
            .all()
        )
        mine = set(
            conn.execute(select(Policy.__table__.c.customer_id).where(Policy.__table__.c.agent_id == agent_of_1))
            .scalars()
            .all()
        )
    outsider = next(c for c in others if c not in mine)
    agent = make_account("service_agent", agent_id=agent_of_1)
    before = counts(world, outsider)
    refused = post(client, agent, outsider, decision())
    assert refused.status_code == 404
    assert counts(world, outsider) == before
    assert client.get(f"/v1/customers/{outsider}/consents", headers=agent.headers).status_code == 404
    assert post(client, agent, next(iter(mine)), decision()).status_code == 201


def test_a_retried_post_writes_once_and_returns_the_first_answer(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    headers = {**accounts["app"].headers, **key}
    first = client.post("/v1/customers/11/consents", json=decision("phone", "opt_out"), headers=headers)
    after_first = counts(world, 11)
    again = client.post("/v1/customers/11/consents", json=decision("phone", "opt_out"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert counts(world, 11) == after_first
    other = client.post("/v1/customers/11/consents", json=decision("phone", "opt_in"), headers=headers)
    assert other.status_code == 422 and counts(world, 11) == after_first


def test_roles_without_consents_write_are_refused(client: TestClient, accounts: dict[str, Account]) -> None:
    for role in ("marketer", "analyst", "claims_handler", "admin"):
        assert post(client, accounts[role], 12, decision()).status_code == 403, role


def test_contact_preferences_reach_the_hot_record_and_quiet_hours_use_the_customers_zone(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis
) -> None:
    body = {"max_push_per_week": 2, "quiet_hours": {"start": "22:00", "end": "08:00"}, "time_zone": "Asia/Shanghai",
            "source": "app"}  # fmt: skip
    answer = client.post(
        "/v1/customers/13/contact-preferences", json=body, headers={**accounts["app"].headers, **idem()}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["preferences"]["version"] >= 1
    record = hot_record.hot_record(rdb, 13, world.redis_prefix)
    assert record.known and record.max_push_per_week == 2
    assert record.quiet_hours is not None
    assert record.quiet_hours.contains(datetime(2026, 12, 6, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    assert not record.quiet_hours.contains(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))  # 11:00 in Shanghai
    state = client.get("/v1/customers/13/consents", headers=accounts["app"].headers).json()
    assert state["contact_preferences"]["quiet_hours"] == {"start": "22:00", "end": "08:00"}
    for bad, field in (
        ({**body, "time_zone": "Mars/Olympus"}, "/body/time_zone"),
        ({**body, "quiet_hours": {"start": "25:00", "end": "08:00"}}, "/body/quiet_hours/start"),
        ({**body, "max_push_per_week": -1}, "/body/max_push_per_week"),
    ):
        refused = client.post(
            "/v1/customers/13/contact-preferences", json=bad, headers={**accounts["app"].headers, **idem()}
        )
        assert refused.status_code == 422 and field in [e["field"] for e in refused.json()["errors"]], refused.text


def test_the_evidence_history_pages_newest_first_and_cannot_be_rewritten(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    for status in ("opt_in", "opt_out", "opt_in"):
        assert post(client, accounts["app"], 14, decision("email", status)).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/customers/14/consents", params=params, headers=accounts["app"].headers).json()
        seen += page["evidence"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["status"] for e in seen[:3]] == ["opt_in", "opt_out", "opt_in"]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
    from sqlalchemy.exc import DBAPIError

    for statement in ("UPDATE consent_evidence SET status = 'opt_in'", "DELETE FROM consent_evidence"):
        with pytest.raises(DBAPIError, match="append-only"):
            with world.source.begin() as conn:
                conn.execute(text(statement))


@pytest.fixture(scope="module")
def pg_world(world: ApiWorld, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from contact_worlds import database_world

    with database_world("postgresql", "mo_consent_h_pg", tmp_path_factory.mktemp("pg"), world) as built:
        yield built


def test_on_postgresql_a_withdrawal_is_effective_at_once_and_redis_down_rolls_it_back(
    pg_world, accounts: dict[str, Account], rdb: redis.Redis, closed_port: int
) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    pg, pg_client = pg_world
    assert pg.source.dialect.name == "postgresql"
    assert post(pg_client, accounts["app"], 2, decision("sms", "opt_in")).status_code == 201
    answer = post(pg_client, accounts["app"], 2, decision("sms", "opt_out"))
    assert answer.status_code == 201, answer.text
    assert hot_record.hot_record(rdb, 2, pg.redis_prefix).may_contact("sms") is False
    assert marketing_status(pg, 2, "sms") == "opt_out"

    before = counts(pg, 3)
    down = create_app(pg.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"}))
    with TestClient(down, raise_server_exceptions=False) as broken:
        refused = post(broken, accounts["app"], 3, decision("email", "opt_out"))
    assert refused.status_code == 503
    assert counts(pg, 3) == before


def test_resolve_falls_back_to_the_source_when_the_record_is_unknown_or_redis_is_down(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account], rdb: redis.Redis, closed_port: int
) -> None:
    assert post(client, accounts["app"], 15, decision("sms", "opt_out")).status_code == 201
    rdb.delete(hot_record.hot_key(world.redis_prefix, 15))
    found = hot_record.resolve(rdb, world.source, 15, world.redis_prefix)
    assert found.known and found.may_contact("sms") is False
    down = redis.Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=0.5)
    assert hot_record.resolve(down, world.source, 15, world.redis_prefix).may_contact("sms") is False


def test_the_hot_rebuild_cli_names_an_unreachable_redis(
    world: ApiWorld, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    from click.testing import CliRunner

    from mo.cli import cli
    from mo.errors import MoError

    monkeypatch.setenv("MO_SOURCE_URL", world.source_url)
    monkeypatch.setenv("MO_REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    result = CliRunner().invoke(cli, ["hot", "rebuild", "--customer", "8"])
    assert isinstance(result.exception, MoError)
    assert "Redis unreachable for the hot records" in str(result.exception)


def test_on_postgresql_concurrent_grants_and_withdrawals_leave_redis_equal_to_the_source(
    pg_world, accounts: dict[str, Account], rdb: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    pg, pg_client = pg_world
    statuses = ["opt_in", "opt_out"] * 8
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda s: post(pg_client, accounts["app"], 4, decision("email", s)), statuses))
    assert [a.status_code for a in answers] == [201] * len(statuses)
    final = marketing_status(pg, 4, "email")
    record = hot_record.hot_record(rdb, 4, pg.redis_prefix)
    assert record.known and record.consent("email") == final
    with pg.source.connect() as conn:  # the last committed evidence is the decision the source holds
        last = conn.execute(
            select(EVIDENCE.c.status)
            .where(EVIDENCE.c.customer_id == 4, EVIDENCE.c.channel == "email")
            .order_by(EVIDENCE.c.id.desc())
        ).scalar()
    assert last == final
