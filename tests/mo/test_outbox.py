"""The outbox table and add_event on SQLite, MariaDB and PostgreSQL: an event commits with its business
write or not at all, a bad event writes nothing, and the table is never taken for a synced source table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mo.config import Settings
from mo.contracts import load_source_contracts
from mo.errors import ContractViolation
from mo.events.producer import encode_event
from mo.oltp.models import SOURCE_TABLES, Base, Customer
from mo.oltp.outbox import OutboxEvent, add_event, new_event, outbox_status
from tests.mo.outbox_helpers import customer_row, migrated_engine

SETTINGS = Settings(kafka_topic_prefix="acme")
OUTBOX = OutboxEvent.__table__


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request, tmp_path):
    yield from migrated_engine(request.param, tmp_path)


def consent_event(customer_id: int, status: str = "opt_out") -> dict:
    payload = {"channel": "sms", "purpose": "marketing", "status": status, "text_version": "v3", "source": "app"}
    return new_event("consent_changed", customer_id=customer_id, payload=payload, source="app")


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        customers = conn.execute(select(func.count()).select_from(Customer.__table__)).scalar_one()
        events = conn.execute(select(func.count()).select_from(OUTBOX)).scalar_one()
    return customers, events


def test_event_commits_with_the_business_write(engine):
    event = consent_event(1)
    with engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [customer_row(1)])
        assert add_event(conn, event, settings=SETTINGS) == event["event_id"]
    with engine.connect() as conn:
        row = conn.execute(select(OUTBOX)).one()
    assert _counts(engine) == (1, 1)
    assert row.event_id == event["event_id"] and row.event_type == "consent_changed"
    assert row.topic == "acme.business" and row.partition_key == "1"
    assert row.payload == encode_event(event).decode("utf-8")  # the whole event, exactly what the relay sends
    assert json.loads(row.payload) == event
    assert row.published_at is None and row.attempts == 0 and row.last_error is None
    assert abs(row.created_at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)


def test_rollback_drops_the_event_with_the_business_write(engine):
    with pytest.raises(RuntimeError, match="the claim check failed"), engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [customer_row(2)])
        add_event(conn, consent_event(2), settings=SETTINGS)
        raise RuntimeError("the claim check failed")
    assert _counts(engine) == (0, 0)

    with Session(engine) as session:  # the same through an ORM session
        session.add(Customer(**customer_row(3)))
        add_event(session, consent_event(3), settings=SETTINGS)
        session.flush()
        session.rollback()
    assert _counts(engine) == (0, 0)
    with Session(engine) as session, session.begin():
        session.add(Customer(**customer_row(3)))
        add_event(session, consent_event(3), settings=SETTINGS)
    assert _counts(engine) == (1, 1)


def test_a_broken_event_is_refused_and_writes_nothing(engine):
    bad = consent_event(4)
    bad["payload"]["purpose"] = "ads"
    with pytest.raises(ContractViolation, match=r"consent_changed violates its contract: payload.purpose: 'ads'"):
        with engine.begin() as conn:
            conn.execute(insert(Customer.__table__), [customer_row(4)])
            add_event(conn, bad, settings=SETTINGS)
    with pytest.raises(ContractViolation, match="unknown event_type 'claim_closed'"):
        with engine.begin() as conn:
            add_event(conn, {**consent_event(4), "event_type": "claim_closed"}, settings=SETTINGS)
    assert _counts(engine) == (0, 0)


def test_an_event_id_is_stored_once(engine):
    event = consent_event(5)
    with engine.begin() as conn:
        add_event(conn, event, settings=SETTINGS)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        add_event(conn, event, settings=SETTINGS)
    assert _counts(engine) == (0, 1)


def test_status_counts_pending_events_and_the_lag(engine):
    assert outbox_status(engine).as_dict() == {
        "pending": 0,
        "oldest_pending_at": None,
        "lag_seconds": 0.0,
        "max_attempts": 0,
        "last_error": None,
    }
    with engine.begin() as conn:
        for customer_id in (1, 2, 3):
            add_event(conn, consent_event(customer_id), settings=SETTINGS)
        oldest = conn.execute(select(func.min(OUTBOX.c.created_at))).scalar_one()
        conn.execute(OUTBOX.update().where(OUTBOX.c.partition_key == "1").values(published_at=oldest))
        conn.execute(OUTBOX.update().where(OUTBOX.c.partition_key == "3").values(attempts=2, last_error="timed out"))
    with engine.connect() as conn:
        waiting_since = conn.execute(
            select(func.min(OUTBOX.c.created_at)).where(OUTBOX.c.published_at.is_(None))
        ).scalar_one()
    status = outbox_status(engine, now=waiting_since + timedelta(seconds=90))
    assert (status.pending, status.oldest_pending_at, status.lag_seconds) == (2, waiting_since, 90.0)
    assert (status.max_attempts, status.last_error) == (2, "timed out")
    with Session(engine) as session:  # the API reads it on its own session
        assert outbox_status(session).pending == 2


def test_the_unpublished_scan_reads_the_index(engine):
    """The relay's scan (unpublished, in id order) and its ordering check read the outbox's indexes, not the
    table: most rows are long published, a few wait. SQLite and MariaDB read the pending rows in id order
    from the index; PostgreSQL sorts the pending rows it found there (the sort is over waiting rows only)."""
    published, waiting = datetime(2026, 12, 1, 0, 0, 1), None
    rows = [
        {"event_id": f"e{i}", "event_type": "consent_changed", "topic": "acme.business", "partition_key": str(i % 50),
         "payload": "{}", "created_at": datetime(2026, 12, 1), "published_at": waiting if i >= 1990 else published,
         "attempts": 1}
        for i in range(2000)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(OUTBOX), rows)
        conn.execute(text({"postgresql": "ANALYZE outbox", "mysql": "ANALYZE TABLE outbox"}.get(engine.dialect.name,
                                                                                              "ANALYZE")))  # fmt: skip
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    scan = "select id from outbox where published_at is null order by id limit 500"
    check = (
        "select partition_key, min(id) from outbox where published_at is null and partition_key in ('1', '2') "
        "and id not in (1991, 1992) group by partition_key"
    )
    with engine.connect() as conn:
        scan_plan = " ".join(str(tuple(r)) for r in conn.execute(text(explain + scan)))
        check_plan = " ".join(str(tuple(r)) for r in conn.execute(text(explain + check)))
    assert "ix_outbox_published_at_id" in scan_plan, scan_plan
    assert "ix_outbox_partition_key_published_at" in check_plan, check_plan
    if engine.dialect.name != "postgresql":
        assert "filesort" not in scan_plan and "TEMP B-TREE" not in scan_plan, scan_plan


def test_the_outbox_is_not_a_synced_source_table(engine):
    assert "outbox" not in SOURCE_TABLES
    assert "outbox" not in load_source_contracts()
    assert "outbox" in Base.metadata.tables  # on the metadata the migrations and the drift test compare
    assert "outbox" in inspect(engine).get_table_names()


def test_new_event_builds_a_contract_valid_envelope():
    occurred = datetime(2026, 12, 6, 7, 0, 0, 123456, tzinfo=UTC)
    payload = {"claim_no": "CL1", "policy_no": "P1", "incident_type": "collision", "amount_claimed": 1200.5}
    event = new_event("claim_filed", customer_id=7, payload=payload, source="app", occurred_at=occurred)
    assert event["occurred_at"] == "2026-12-06T07:00:00.123456Z"
    assert event["schema_version"] == 1 and event["customer_id"] == 7 and event["source"] == "app"
    assert (
        len(event["event_id"]) == 36
        and event["event_id"] != new_event("claim_filed", customer_id=7, payload=payload, source="app")["event_id"]
    )
    from mo.events.contracts import contract_error

    assert contract_error(event) is None
    beijing = occurred.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert (
        new_event("claim_filed", customer_id=7, payload=payload, source="app", occurred_at=beijing)["occurred_at"]
        == event["occurred_at"]
    )
