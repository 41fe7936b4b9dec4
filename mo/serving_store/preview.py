"""Segment preview: how many customers a rule selects, a few of their ids, and how they split by tag.

The serving layer calls :func:`preview_segment` while a marketer edits a rule, so it answers from the
published serving store, never from the lakehouse. The rule goes through the one segment compiler
(``mo.segments.compiler.compile_rule``) for the store's SQL dialect; every value is a bound parameter.

Consistency: the preview resolves the current refresh once and queries that refresh's own tables, so
its count, sample and distributions always describe one refresh, even if a publish swaps the views
meanwhile (the previous refresh is kept for exactly such readers).

The store is pluggable: anything with a ``preview(rule, *, as_of, sample_size) -> Preview`` method is a
backend. :class:`SqlPreviewBackend` answers from the SQL store with one grouped scan (count and all
distributions) plus one sample query; a columnar or bitmap backend for the 1M+ profile latency target
can be added beside it without changing callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from mo.serving_store.store import NothingPublished, SqlServingStore

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
    """Preview over the published SQL store (PostgreSQL or SQLite)."""

    def __init__(self, store: SqlServingStore) -> None:
        self.store = store

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
        with store.read_transaction() as conn:
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
