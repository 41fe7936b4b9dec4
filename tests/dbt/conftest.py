"""Fixtures for the dbt project: one small synthetic world in its own lake, shared by every dbt test.

Building the world (generate, sync to silver, a few stream events) and running ``dbt build`` are the
expensive parts, so both are session-scoped: each dbt test module reads the marts of the same build.
The world gets its own MO_HOME and Iceberg catalog name so it never meets the catalogs of other tests
that share the SparkSession.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

WORLD_CUSTOMERS = 150
WORLD_SEED = 7
# The generated world's history ends the day before its start date (2026-01-01): that day is "today".
AS_OF_DATE = date(2025, 12, 31)

# Stream events written straight to bronze.events: (event_type, customer_id, minutes before AS_OF midnight).
STREAM_EVENTS: tuple[tuple[str, int, int], ...] = (
    ("app_page_view", 1, 60),
    ("app_page_view", 2, 120),
    ("wechat_follow", 3, 180),
    ("wechat_click", 3, 240),
    ("form_submit", 4, 300),
    ("coupon_claim", 5, 360),
    ("coupon_redeem", 5, 420),
    ("message_open", 6, 480),
    ("policy_near_renewal", 7, 540),
    ("claim_filed", 8, 600),
    ("claim_status_changed", 8, 590),
    ("claim_document_attached", 8, 580),
    ("consent_changed", 9, 570),
    ("complaint_opened", 9, 560),
    ("customer_erased", 10, 550),
)
# The outbox relays at least once: these events reach bronze twice (same event_id, a later offset), as after a
# relay killed between the broker's acknowledgement and marking its rows published.
RELAYED_TWICE = ("consent_changed", "claim_status_changed")


@dataclass(frozen=True)
class _Verdict:
    passed: bool
    detail: str = ""

    def summary(self) -> str:
        return self.detail or "passed"


def _count_gate(spark, settings, tables, source_counts, scopes=None, pending=None) -> _Verdict:
    """Candidate silver holds exactly the source's live rows (the full GX gate is tested elsewhere)."""
    wrong = [f"{n}: {tables[n].count()} != {c}" for n, c in source_counts.items() if tables[n].count() != c]
    return _Verdict(not wrong, "; ".join(wrong))


def stream_event_rows(as_of: date = AS_OF_DATE) -> list[dict]:
    """Contract-valid events (mo.events.samples) for existing customers, dated just before ``as_of``."""
    from mo.events.contracts import contract_error
    from mo.events.samples import sample_event

    midnight = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    events = []
    for seq, (event_type, customer_id, minutes_before) in enumerate(STREAM_EVENTS):
        occurred = midnight - timedelta(minutes=minutes_before)
        event = sample_event(
            event_type,
            seq,
            customer_id=customer_id,
            occurred_at=occurred.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        )
        assert contract_error(event) is None, contract_error(event)
        events.append(event)
    return events


def write_stream_events(spark, settings, events: list[dict]) -> None:
    """Append events to bronze.events the way the ingest job does (one batch, offsets 0..n-1)."""
    from mo.events.contracts import topic_for
    from spark_jobs.events_ingest import EVENTS_COLUMNS, _append, ensure_tables, event_row

    ensure_tables(spark, settings)
    now = datetime.now(UTC)
    batch_id = uuid.uuid4().hex[:16]
    rows = [
        event_row(e, topic_for(settings, e["event_type"]), 0, i, "test-cluster", batch_id, now)
        for i, e in enumerate(events)
    ]
    _append(spark, settings, "bronze.events", rows, EVENTS_COLUMNS)


@pytest.fixture(scope="session")
def dbt_world(spark, tmp_path_factory: pytest.TempPathFactory):
    """(settings, spark) for a ~150-customer world synced to silver, with stream events in bronze.events."""
    from mo.config import Settings
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from spark_jobs.session import get_spark
    from spark_jobs.sync import run_sync

    home = tmp_path_factory.mktemp("dbt_world")
    settings = Settings(home=home, catalog_name=f"lake_dbt_{uuid.uuid4().hex[:8]}")
    engine = make_engine(settings.resolved_source_url)
    try:
        migrate(engine)
        generate_world(engine, customers=WORLD_CUSTOMERS, seed=WORLD_SEED)
    finally:
        engine.dispose()
    session = get_spark(settings)
    run_sync(session, settings, gate=_count_gate)
    events = stream_event_rows()
    write_stream_events(session, settings, events + [e for e in events if e["event_type"] in RELAYED_TWICE])
    return settings, session


@pytest.fixture(scope="session")
def dbt_as_of() -> date:
    """The reference date (dbt var ``as_of_date``) every dbt test builds with."""
    return AS_OF_DATE


# The Customer 360 part of the project: marketing models are selected by their own tests.
CUSTOMER_360_SELECTOR = [
    "path:models/staging",
    "path:models/intermediate/customer",
    "path:models/intermediate/organisation",
    "path:models/intermediate/policy",
    "path:models/intermediate/claims",
    "path:models/intermediate/recordings",
    "path:models/marts/customer",
    "path:models/marts/policy",
    "path:models/marts/claims",
    "path:models/marts/recordings",
]


@pytest.fixture(scope="session")
def customer_360_build(dbt_world, dbt_as_of):
    """Run ``dbt build`` (models, unit tests, data tests) of the Customer 360 marts once; return its result."""
    from mo.marts.dbt import build_vars, run_dbt

    settings, _ = dbt_world
    result = run_dbt(
        settings,
        ["build", "--select", *CUSTOMER_360_SELECTOR],
        vars=build_vars(settings, as_of_date=dbt_as_of),
    )
    return result


def mart(settings, name: str) -> str:
    return f"{settings.catalog_name}.marts.{name}"


def rows_as_dicts(df) -> list[dict]:
    return [json.loads(json.dumps(r.asDict(), default=str)) for r in df.collect()]
