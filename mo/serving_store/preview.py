"""Segment preview: how many customers a rule selects, a few of their ids, and how they split by tag.

The serving layer calls :func:`preview_segment` while a marketer edits a rule, so it answers from the
published serving store, never from the lakehouse. The rule goes through the one segment compiler
(``mo.segments.compiler.compile_rule``) for the store's SQL dialect; every value is a bound parameter.

Consistency: the preview resolves the current refresh once and queries that refresh's own tables, so
its count, sample and distributions always describe one refresh, even if a publish swaps the views
meanwhile (the previous refresh is kept for exactly such readers).

Bounded cost: a rule is validated against the size limits of mo.segments.rules before it is compiled, and
every query of a preview or a count runs under a statement timeout (:data:`PREVIEW_TIMEOUT_SECONDS`, or the
backend's ``timeout``): PostgreSQL ``statement_timeout`` set for the preview's transaction only, SQLite a
progress handler that interrupts the statement, DuckDB an interrupt from a timer. The server stops the work
itself, so an abandoned or cancelled preview does not keep a backend busy. A preview that hits it raises
:class:`PreviewTimeout`.

Event windows: the store keeps the last ``event_retention_days`` days of customer_event_daily up to the
refresh's as-of date. Rule validation caps ``within_days`` at that retention; a preview for an earlier as-of
date whose window would start before the first kept day is refused (RuleError naming the leaf), never counted
on partial data.

The store is pluggable: anything with a ``preview(rule, *, as_of, sample_size) -> Preview`` method is a
backend. :class:`SqlPreviewBackend` answers from the SQL store with one grouped scan (count and all
distributions) plus one sample query; a columnar or bitmap backend for the 1M+ profile latency target
can be added beside it without changing callers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from mo.serving_store.store import NothingPublished, ServingStoreError, SqlServingStore

# Longest a preview or count may run, per statement, in every engine (a typed rule answers in milliseconds to a
# second on 1M profiles; a rule that takes longer is stopped rather than allowed to hold a database backend).
PREVIEW_TIMEOUT_SECONDS = 10.0
# SQLite calls the progress handler every this many virtual machine instructions (about a millisecond).
_SQLITE_PROGRESS_STEPS = 10_000

# The tag distributions a preview reports (customer_profile columns).
DISTRIBUTION_COLUMNS = ("gender", "age_band", "acquisition_channel", "province", "customer_tier", "preferred_channel")


@dataclass(frozen=True)
class Preview:
    count: int
    sample_ids: list[int]
    # column -> value -> customers; a null value (e.g. no preferred channel yet) is the key None.
    distributions: dict[str, dict[str | None, int]]
    as_of: date
    refresh_id: str | None = None
    # Clause labels of the compiled rule, for display next to the numbers.
    clauses: list[str] = field(default_factory=list)


class PreviewTimeout(ServingStoreError):
    """A segment preview or count ran longer than its statement timeout and was stopped by the database."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the segment preview took longer than {seconds:g} s and was stopped (statement timeout); "
            "simplify the rule or try again when the store is less busy"
        )


@contextlib.contextmanager
def statement_timeout(conn: Connection, seconds: float) -> Iterator[None]:
    """Run the statements of the block under a timeout on ``conn`` (PostgreSQL or SQLite, in a transaction);
    a statement that exceeds it raises :class:`PreviewTimeout`."""
    if seconds <= 0:
        raise ValueError("the statement timeout must be positive")
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # Local to the transaction: the pooled connection goes back without it. The server cancels the statement.
        milliseconds = f"{max(1, round(seconds * 1000))}"
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": milliseconds})
        try:
            yield
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == "57014":  # query_canceled
                raise PreviewTimeout(seconds) from None
            raise
        return
    if dialect != "sqlite":  # pragma: no cover - the SQL store is PostgreSQL or SQLite
        raise ServingStoreError(f"no statement timeout for dialect {dialect}")
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + seconds
    expired = False

    def progress() -> int:
        nonlocal expired
        expired = time.monotonic() > deadline
        return 1 if expired else 0  # non-zero interrupts the running statement

    raw.set_progress_handler(progress, _SQLITE_PROGRESS_STEPS)  # type: ignore[union-attr]
    try:
        yield
    except DBAPIError:
        if expired:
            raise PreviewTimeout(seconds) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)  # type: ignore[union-attr]


def check_event_windows(rule: dict[str, Any], *, as_of: date, refresh: Any, retention_days: int) -> None:
    """Refuse a preview whose event windows start before the first day the refresh holds (its as-of date minus
    the retention): the count would be silently short. RuleError names each such leaf."""
    from mo.segments.compiler import rule_leaves
    from mo.segments.rules import RuleError, RuleProblem

    first_kept = refresh.as_of_date - timedelta(days=retention_days - 1)
    problems = []
    for path, node, _negated in rule_leaves(rule):
        if "event" not in node:
            continue
        start = as_of - timedelta(days=int(node["within_days"]) - 1)
        if start < first_kept:
            problems.append(
                RuleProblem(
                    f"{path}/within_days",
                    f"the {node['within_days']}-day window ending {as_of} starts on {start}, before {first_kept}, "
                    f"the first day of events refresh {refresh.refresh_id} holds (event_retention_days "
                    f"{retention_days} up to its as-of date {refresh.as_of_date})",
                )
            )
    if problems:
        raise RuleError(problems)


@runtime_checkable
class PreviewBackend(Protocol):
    def preview(self, rule: dict[str, Any], *, as_of: date | None, sample_size: int) -> Preview: ...


def _compile(rule: dict[str, Any], *, dialect: str, as_of: date, profile: str, events: str) -> Any:
    from mo.segments.compiler import compile_rule

    return compile_rule(rule, dialect=dialect, as_of=as_of, profile=profile, events=events)  # type: ignore[arg-type]


def preview_from_groups(groups: Any, sample_ids: list[int], *, as_of: date, refresh_id: str, compiled: Any) -> Preview:
    """A Preview from the rows of one grouped scan (the DISTRIBUTION_COLUMNS values, then the row count):
    the count is their sum, each distribution sorted by count, then value."""
    distributions: dict[str, dict[str | None, int]] = {c: {} for c in DISTRIBUTION_COLUMNS}
    total = 0
    for row in groups:
        n = int(row[-1])
        total += n
        for column, value in zip(DISTRIBUTION_COLUMNS, row[:-1], strict=True):
            bucket = distributions[column]
            bucket[value] = bucket.get(value, 0) + n
    return Preview(
        count=total,
        sample_ids=sample_ids,
        distributions={
            c: dict(sorted(d.items(), key=lambda kv: (-kv[1], str(kv[0])))) for c, d in distributions.items()
        },
        as_of=as_of,
        refresh_id=refresh_id,
        clauses=[getattr(c, "label", str(c)) for c in getattr(compiled, "clauses", [])],
    )


class SqlPreviewBackend:
    """Preview over the published SQL store (PostgreSQL or SQLite); every query under ``timeout`` seconds."""

    def __init__(self, store: SqlServingStore, *, timeout: float = PREVIEW_TIMEOUT_SECONDS) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.store = store
        self.timeout = timeout

    def preview(self, rule: dict[str, Any], *, as_of: date | None, sample_size: int) -> Preview:
        try:
            return self._preview(rule, as_of=as_of, sample_size=sample_size)
        except (OperationalError, ProgrammingError) as exc:
            # Two publishes between resolving the refresh and reading it dropped its tables: read the new one.
            if "does not exist" not in str(exc) and "no such table" not in str(exc):
                raise
            return self._preview(rule, as_of=as_of, sample_size=sample_size)

    def _preview(self, rule: dict[str, Any], *, as_of: date | None, sample_size: int) -> Preview:
        store = self.store
        refresh = store.current_refresh()
        if refresh is None:
            raise NothingPublished(f"the serving store ({store.qualified('refreshes')}) has no current refresh")
        as_of = as_of or refresh.as_of_date
        compiled = _compile(
            rule,
            dialect=store.dialect,
            as_of=as_of,
            profile=store.physical("customer_profile", refresh.refresh_id),
            events=store.physical("customer_event_daily", refresh.refresh_id),
        )
        check_event_windows(rule, as_of=as_of, refresh=refresh, retention_days=store.contract.event_retention_days)
        params = dict(compiled.params)
        if "preview_sample_size" in params:
            raise ValueError("the compiled rule uses the reserved parameter name preview_sample_size")
        params["preview_sample_size"] = sample_size
        profile = store.physical("customer_profile", refresh.refresh_id)
        columns = ", ".join(f"p.{c}" for c in DISTRIBUTION_COLUMNS)
        # One scan for the count and every distribution: group by all six columns (a few thousand groups
        # at most) and add up per column here.
        grouped = text(
            f"SELECT {columns}, count(*) AS customers FROM {profile} p WHERE {compiled.where_sql} GROUP BY {columns}"
        )
        sample = text(
            f"SELECT p.customer_id FROM {profile} p WHERE {compiled.where_sql} "
            "ORDER BY p.customer_id LIMIT :preview_sample_size"
        )
        with store.read_transaction() as conn, statement_timeout(conn, self.timeout):
            groups = conn.execute(grouped, params).all()
            sample_ids = [int(r[0]) for r in conn.execute(sample, params)] if sample_size > 0 else []
        return preview_from_groups(groups, sample_ids, as_of=as_of, refresh_id=refresh.refresh_id, compiled=compiled)


def preview_segment(
    rule: dict[str, Any],
    *,
    store: SqlServingStore | PreviewBackend,
    as_of: date | None = None,
    sample_size: int = 20,
) -> Preview:
    """Count, sample ids (the lowest customer ids) and tag distributions of the customers ``rule`` selects
    in the published store. ``as_of`` defaults to the published refresh's date (the date its tags were
    computed for), so time-relative conditions agree with the profile columns."""
    if sample_size < 0:
        raise ValueError("sample_size must be >= 0")
    backend = SqlPreviewBackend(store) if isinstance(store, SqlServingStore) else store
    return backend.preview(rule, as_of=as_of, sample_size=sample_size)
