"""Segment preview (count) over the published store: the columnar copy against an indexed PostgreSQL count(*).

For each size in ``MO_BENCH_PREVIEW_SIZES`` (default ``1000000,5000000`` profiles) this generates a synthetic
customer_profile (every contract column, skewed realistic distributions, numpy in batches; no Spark) and
customer_event_daily over the 180 retained days (``MO_BENCH_PREVIEW_EVENTS_PER_CUSTOMER`` rows per customer
on average, default 3), publishes it with ``publish_batches`` into a private PostgreSQL schema (COPY, primary
keys and the serving contract's indexes on the predicate columns, ANALYZE) with the columnar copy, then times
``MO_BENCH_PREVIEW_RUNS`` (default 30) runs after 3 warm-up runs of:

- baseline: ``SELECT count(*)`` with the rule compiled for PostgreSQL (same predicates, bound parameters) on
  the refresh's indexed tables, with PostgreSQL's own plan (EXPLAIN is recorded), and, for information, the
  same query with ``enable_seqscan = off`` (the planner forced onto the indexes);
- ``ColumnarPreviewStore.count``: resolve the current refresh in PostgreSQL, compile the rule for DuckDB,
  count in the refresh's DuckDB file;
- ``ColumnarPreviewStore.preview``: count, 20 sample ids and six distributions (what the UI shows).

Two 5-clause rules: enum + enum + range + boolean + an event condition, and the same with a date-range
clause instead of the event condition. The schema is dropped afterwards. ``MO_BENCH_PREVIEW_URL`` sets the
PostgreSQL database (default the machine's ``test`` database).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlalchemy import create_engine, text

from mo.segments.compiler import compile_rule
from mo.serving_store import publish_batches
from mo.serving_store.columnar import (
    ColumnarPreviewStore,
    columnar_directory,
    filter_sql,
    refresh_path,
    write_refresh,
)
from mo.serving_store.contract import ARROW_TYPES, ServingContract, ServingTable, load_serving_contract
from mo.serving_store.store import SqlServingStore

AS_OF = dt.date(2026, 3, 31)
BATCH = 250_000
WARMUP = 3
RETENTION_DAYS = 180

# Five clauses: two enums (IN lists), a numeric range, a boolean and an event condition.
RULE_WITH_EVENT = {
    "all": [
        {"attr": "age_band", "op": "in", "value": ["25-34", "35-44"]},
        {"attr": "province", "op": "in", "value": ["Guangdong", "Zhejiang", "Jiangsu", "Shandong"]},
        {"attr": "total_premium", "op": "gte", "value": 3000},
        {"attr": "has_auto", "op": "eq", "value": True},
        {"event": "app_page_view", "within_days": 30, "count": {"op": "gte", "value": 2}},
    ]
}
RULE_PROFILE_ONLY = {
    "all": [
        *RULE_WITH_EVENT["all"][:4],
        {"attr": "next_renewal_date", "op": "between", "value": [{"days_from_as_of": 0}, {"days_from_as_of": 60}]},
    ]
}
RULES = {"with event condition": RULE_WITH_EVENT, "profile only": RULE_PROFILE_ONLY}

PROVINCES = [
    "Guangdong", "Shandong", "Henan", "Jiangsu", "Sichuan", "Hebei", "Hunan", "Zhejiang", "Anhui", "Hubei",
    "Guangxi", "Yunnan", "Jiangxi", "Liaoning", "Fujian", "Shaanxi", "Heilongjiang", "Shanxi", "Guizhou",
    "Chongqing", "Jilin", "Gansu", "Inner Mongolia", "Xinjiang", "Shanghai", "Beijing", "Tianjin", "Hainan",
    "Ningxia", "Qinghai", "Tibet",
]  # fmt: skip
EVENT_TYPES = ["app_page_view", "message_open", "wechat_click", "coupon_claim", "form_submit", "claim_filed"]
EVENT_WEIGHTS = [0.38, 0.3, 0.14, 0.08, 0.07, 0.03]
LINES = ["auto", "property", "accident", "health", "life"]


def _choice(rng: np.random.Generator, values: list[Any], n: int, weights: list[float] | None = None) -> np.ndarray:
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]


def _masked(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[mask] = None
    return out


def profile_batch(start: int, n: int, seed: int, table: ServingTable) -> pa.RecordBatch:
    """Profiles ``start .. start+n-1``: skewed provinces and channels, correlated lines, premium and tier."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + n, dtype=np.int64)
    ids_text = ids.astype(str).astype(object)
    age = np.clip(rng.normal(42, 13, n), 18, 90).astype(np.int32)
    bands = np.select(
        [age < 25, age < 35, age < 45, age < 55, age < 65], ["<25", "25-34", "35-44", "45-54", "55-64"], "65+"
    ).astype(object)
    province_weights = 1 / np.arange(1, len(PROVINCES) + 1) ** 0.8  # Zipf-like: Guangdong first
    province = _choice(rng, PROVINCES, n, list(province_weights))
    held = np.stack([rng.random(n) < p for p in (0.45, 0.2, 0.3, 0.35, 0.25)], axis=1)
    lines_text = np.array([",".join(sorted(LINES[i] for i in range(5) if (m >> i) & 1)) or None for m in range(32)])
    mask = (held * (1 << np.arange(5))).sum(axis=1)
    lines_held = lines_text[mask].astype(object)
    policy_count = held.sum(axis=1).astype(np.int32) + (rng.random(n) < 0.2).astype(np.int32) * held.any(axis=1)
    premium = np.where(held.any(axis=1), np.round(rng.lognormal(8.0, 0.9, n) * policy_count, 2), 0.0)
    renewal_days = rng.integers(-5, 365, n)
    no_policy = ~held.any(axis=1)
    renewal_date = np.datetime64(AS_OF) + renewal_days.astype("timedelta64[D]")
    has_auto = held[:, 0]
    inactive = rng.random(n) < 0.15
    last_active = np.datetime64(dt.datetime.combine(AS_OF, dt.time(12)), "us") - rng.integers(
        0, 180 * 86_400_000_000, n
    ).astype("timedelta64[us]")
    tier = np.select([premium > 20_000, premium > 8_000, premium > 2_000], ["platinum", "gold", "silver"], "bronze")
    engagement = _choice(rng, ["never_active", "dormant", "occasional", "engaged"], n, [0.2, 0.3, 0.3, 0.2])
    tags = np.array(
        [json.dumps({"engagement_status": e}) for e in ["never_active", "dormant", "occasional", "engaged"]]
    )
    tag_index = {"never_active": 0, "dormant": 1, "occasional": 2, "engaged": 3}
    columns: dict[str, Any] = {
        "customer_id": ids,
        "name_masked": np.char.add("C**", ids_text.astype(str)).astype(object),
        "phone_masked": np.char.add("138****", (ids % 10_000).astype(str)).astype(object),
        "phone_token": np.char.add("tok", ids_text.astype(str)).astype(object),
        "id_number_token": np.char.add("idtok", ids_text.astype(str)).astype(object),
        "customer_since_date": np.datetime64(AS_OF) - rng.integers(30, 5000, n).astype("timedelta64[D]"),
        "gender": _choice(rng, ["M", "F"], n, [0.52, 0.48]),
        "age": age,
        "age_band": bands,
        "province": province,
        "city": np.char.add(
            province.astype(str), _choice(rng, [" capital", " 2", " 3"], n, [0.5, 0.3, 0.2]).astype(str)
        ),
        "city_tier": _choice(rng, ["tier1", "new_tier1", "tier2", "tier3_below"], n, [0.15, 0.2, 0.3, 0.35]),
        "acquisition_channel": _choice(
            rng, ["agent", "app", "wechat", "bancassurance", "telesales", "web"], n, [0.4, 0.15, 0.15, 0.15, 0.1, 0.05]
        ),
        "risk_rating": _choice(rng, ["R1", "R2", "R3", "R4", "R5"], n, [0.1, 0.3, 0.35, 0.2, 0.05]),
        "lines_held": lines_held,
        "has_auto": has_auto,
        "has_property": held[:, 1],
        "has_accident": held[:, 2],
        "has_health": held[:, 3],
        "has_life": held[:, 4],
        "policy_count": policy_count,
        "total_premium": premium,
        "tenure_years": rng.integers(0, 20, n).astype(np.int32),
        "next_renewal_date": _masked(no_policy, renewal_date.astype(object)),
        "days_to_renewal": _masked(no_policy, renewal_days.astype(object)),
        "vehicle_age_years": _masked(~has_auto, rng.integers(0, 16, n).astype(object)),
        "vehicle_value_band": _masked(
            ~has_auto, _choice(rng, ["<100k", "100k-200k", "200k-400k", "400k+"], n, [0.35, 0.35, 0.2, 0.1])
        ),
        "last_active_at": _masked(inactive, last_active.astype(object)),
        "active_days_30d": np.where(inactive, 0, rng.integers(0, 31, n)).astype(np.int32),
        "preferred_channel": _choice(rng, ["app", "wechat", "sms", "agent", None], n, [0.3, 0.3, 0.1, 0.1, 0.2]),
        "content_preference": _choice(rng, ["health", "auto", "wealth", "family", None], n),
        "customer_tier": tier.astype(object),
        "lifetime_value": np.round(premium * rng.uniform(1, 8, n), 2),
        "claims_ratio": np.round(rng.exponential(0.3, n), 3),
        "claims_12m": rng.poisson(0.15, n).astype(np.int32),
        "has_open_claim": rng.random(n) < 0.05,
        "has_open_complaint": rng.random(n) < 0.02,
        "has_pending_recording_review": rng.random(n) < 0.03,
        "consent_app_push": rng.random(n) < 0.6,
        "consent_sms": rng.random(n) < 0.7,
        "consent_wechat": rng.random(n) < 0.5,
        "custom_tags": tags[np.vectorize(tag_index.get)(engagement)].astype(object),
        "refreshed_at": np.full(n, np.datetime64(dt.datetime.combine(AS_OF, dt.time(3)), "us")),
    }
    arrays = []
    for c in table.columns:
        kind = ARROW_TYPES[c.type]
        values = columns[c.name]
        if kind == pa.timestamp("us", tz="UTC"):
            arrays.append(pa.array(values, pa.timestamp("us")).cast(kind))
        elif kind == pa.int32() and values.dtype == object:
            arrays.append(pa.array(values, pa.int64()).cast(kind))
        else:
            arrays.append(pa.array(values, kind))
    return pa.RecordBatch.from_arrays(arrays, names=table.column_names)


def event_batch(start: int, n: int, seed: int, per_customer: float) -> pa.RecordBatch:
    """Daily event counts of customers ``start .. start+n-1`` in the retained window: 40% inactive, the rest
    with a geometric number of (type, day) rows averaging ``per_customer`` per customer overall."""
    rng = np.random.default_rng(seed)
    active = rng.random(n) >= 0.4
    rows_per = np.where(active, rng.geometric(1 / (per_customer / 0.6), n), 0)
    customer = np.repeat(np.arange(start, start + n, dtype=np.int64), rows_per)
    kind = rng.choice(len(EVENT_TYPES), size=len(customer), p=EVENT_WEIGHTS)
    day = rng.integers(0, RETENTION_DAYS, len(customer))
    key = customer * 4096 + kind * 256 + day
    key = np.unique(key)  # one row per (customer, type, day): the table's primary key
    customer, kind, day = key // 4096, (key % 4096) // 256, key % 256
    return pa.RecordBatch.from_arrays(
        [
            pa.array(customer, pa.int64()),
            pa.array(np.asarray(EVENT_TYPES, dtype=object)[kind], pa.string()),
            pa.array(np.datetime64(AS_OF) - day.astype("timedelta64[D]"), pa.date32()),
            pa.array(rng.integers(1, 4, len(customer)).astype(np.int32), pa.int32()),
        ],
        names=["customer_id", "event_type", "event_date", "event_count"],
    )


def _batches(n: int, make: Callable[[int, int, int], pa.RecordBatch], seed: int) -> Iterator[pa.RecordBatch]:
    for i, start in enumerate(range(1, n + 1, BATCH)):
        yield make(start, min(BATCH, n + 1 - start), seed * 100_000 + i)


def _time(fn: Callable[[], Any], runs: int, budget_s: float) -> tuple[list[float], Any]:
    for _ in range(WARMUP):
        result = fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < runs and (len(times) < 5 or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def _counter(conn: Any, query: str, params: dict[str, Any]) -> Callable[[], Any]:
    return lambda: conn.execute(text(query), params).scalar()


def _p(times: list[float], q: float) -> float:
    if len(times) == 1:
        return times[0]
    return statistics.quantiles(times, n=100, method="inclusive")[int(q) - 1]


def _plan_summary(conn: Any, query: str, params: dict[str, Any]) -> str:
    rows = conn.execute(text("EXPLAIN " + query), params).all()
    nodes = []
    for (line,) in rows:
        step = line.strip().lstrip("-> ").split("  (")[0]
        if any(k in step for k in ("Scan", "Join", "Hash")) and step not in nodes:
            nodes.append(step)
    return "; ".join(nodes)


def _bench_contract() -> ServingContract:
    """The serving contract with the profile indexes limited to the rules' predicate columns: the other
    indexes of the contract cannot serve these rules and would only lengthen the load."""
    contract = load_serving_contract()
    profile = contract.tables["customer_profile"]
    used = {"age_band", "province", "total_premium", "next_renewal_date", "days_to_renewal"}
    indexes = tuple(ix for ix in profile.indexes if ix[0] in used)
    tables = {**contract.tables, "customer_profile": replace(profile, indexes=indexes)}
    return replace(contract, tables=tables)


def _measure_size(n: int, url: str, runs: int, per_customer: float, lines: list[str], notes: list[str]) -> None:
    contract = _bench_contract()
    schema = f"bench_preview_{uuid.uuid4().hex[:8]}"
    store = SqlServingStore(url, schema=schema, contract=contract)
    pg_budget_s = 45 if n <= 1_000_000 else 25
    profile_spec = contract.tables["customer_profile"]
    with tempfile.TemporaryDirectory(prefix="mo-bench-preview-") as home:
        directory = columnar_directory(store, Path(home))
        try:
            t0 = time.perf_counter()
            result = publish_batches(
                store,
                as_of=AS_OF,
                tables={
                    "customer_profile": _batches(n, lambda s, k, seed: profile_batch(s, k, seed, profile_spec), 1),
                    "customer_event_daily": _batches(n, lambda s, k, seed: event_batch(s, k, seed, per_customer), 2),
                },
                published_by="bench_preview",
            )
            publish_s = time.perf_counter() - t0
            # The publish hook, timed on its own (publish_batches(columnar_dir=...) calls exactly this).
            t0 = time.perf_counter()
            write_refresh(store, result.refresh_id, directory)
            columnar_s = time.perf_counter() - t0
            file_mb = sum(p.stat().st_size for p in directory.glob("*.duckdb")) / 2**20
            events = result.row_counts["customer_event_daily"]
            indexes = ", ".join("(" + ", ".join(ix) + ")" for ix in contract.tables["customer_profile"].indexes)
            notes.append(
                f"{n:,} profiles, {events:,} event-day rows: generated and published to PostgreSQL in {publish_s:.0f}s "
                f"(COPY, primary keys, profile indexes on {indexes}, events on (event_type, event_date), ANALYZE); "
                f"columnar copy read back from PostgreSQL and written in {columnar_s:.0f}s, DuckDB file "
                f"{file_mb:,.0f} MB."
            )
            columnar = ColumnarPreviewStore(store, directory, fallback=False)
            profile = store.physical("customer_profile", result.refresh_id)
            events_table = store.physical("customer_event_daily", result.refresh_id)
            for name, rule in RULES.items():
                compiled = compile_rule(rule, dialect="postgresql", as_of=AS_OF, profile=profile, events=events_table)
                params = compiled.params
                # As compiled (what the SQL store's preview runs), and the same predicates without the
                # COALESCE(leaf, FALSE) wrappers, so PostgreSQL can match them to its indexes.
                as_compiled = f"SELECT count(*) FROM {profile} p WHERE {compiled.where_sql}"
                plain = f"SELECT count(*) FROM {profile} p WHERE {filter_sql(compiled)}"
                with store.engine.connect() as conn:
                    plan = _plan_summary(conn, as_compiled, params)
                    compiled_times, pg_count = _time(_counter(conn, as_compiled, params), runs, pg_budget_s)
                    plain_plan = _plan_summary(conn, plain, params)
                    plain_times, plain_count = _time(_counter(conn, plain, params), runs, pg_budget_s)
                    conn.execute(text("SET enable_seqscan = off"))
                    forced_plan = _plan_summary(conn, plain, params)
                    forced_times, forced_count = _time(
                        _counter(conn, plain, params), max(5, runs // 3), pg_budget_s / 3
                    )
                    conn.execute(text("RESET enable_seqscan"))
                    conn.rollback()
                col_times, col_count = _time(lambda: columnar.count(rule), runs, 60)  # noqa: B023
                # The same count query alone (compiled once, as the PostgreSQL rows are), on the refresh's file.
                duck_compiled = ColumnarPreviewStore._compile(rule, AS_OF)
                duck_query = f"SELECT count(*) FROM customer_profile p WHERE {filter_sql(duck_compiled)}"
                with duckdb.connect(str(refresh_path(directory, result.refresh_id)), read_only=True) as duck:
                    query_times, query_count = _time(
                        lambda: duck.execute(duck_query, duck_compiled.params).fetchone()[0],  # noqa: B023
                        runs,
                        60,
                    )
                full_times, full = _time(
                    lambda: columnar.preview(rule, as_of=None, sample_size=20),  # noqa: B023
                    runs,
                    60,
                )
                if not (pg_count == plain_count == forced_count == col_count == query_count == full.count):
                    raise AssertionError(f"{name}: counts differ: {pg_count} {plain_count} {col_count} {full.count}")
                # The baseline is the faster of PostgreSQL's two own plans (the stronger one to beat).
                baseline = min((compiled_times, plain_times), key=lambda t: _p(t, 50))
                base50, base95 = _p(baseline, 50), _p(baseline, 95)
                for label, times in (
                    ("PostgreSQL count(*), rule as compiled (COALESCE-wrapped leaves)", compiled_times),
                    ("PostgreSQL count(*), same predicates index-usable", plain_times),
                    ("PostgreSQL count(*), index-usable, enable_seqscan=off", forced_times),
                    ("columnar count, end to end (resolve refresh, validate + compile, count)", col_times),
                    ("columnar count query alone (DuckDB, compiled once like the PostgreSQL rows)", query_times),
                    ("columnar preview: count + 20 ids + 6 distributions", full_times),
                ):
                    p50, p95 = _p(times, 50), _p(times, 95)
                    note = "baseline" if times is baseline else f"{base50 / p50:.1f}x (p50), {base95 / p95:.1f}x (p95)"
                    lines.append(
                        f"| {n:,} | {name} | {label} | {len(times)} | {p50:,.1f} | {p95:,.1f} | {pg_count:,} | {note} |"
                    )
                notes.append(
                    f"{n:,} / {name}: PostgreSQL plans: as compiled: {plan}. Index-usable: {plain_plan}. "
                    f"With enable_seqscan=off: {forced_plan}."
                )
                _targets.append((n, name, _p(col_times, 95), base95 / _p(col_times, 95), base50 / _p(col_times, 50)))
                _query_ratios.append((n, name, base50 / _p(query_times, 50), base95 / _p(query_times, 95)))
            columnar.close()
        finally:
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            engine.dispose()
            store.dispose()


_targets: list[tuple[int, str, float, float, float]] = []
_query_ratios: list[tuple[int, str, float, float]] = []


def run() -> str:
    url = os.environ.get("MO_BENCH_PREVIEW_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    sizes = [int(s) for s in os.environ.get("MO_BENCH_PREVIEW_SIZES", "1000000,5000000").split(",") if s.strip()]
    runs = int(os.environ.get("MO_BENCH_PREVIEW_RUNS", "30"))
    per_customer = float(os.environ.get("MO_BENCH_PREVIEW_EVENTS_PER_CUSTOMER", "3"))
    _targets.clear()
    _query_ratios.clear()
    load_before = os.getloadavg()
    lines = [
        "## Segment preview (count) over the published store",
        "",
        f"Synthetic profiles (every contract column) and daily event counts over the 180 retained days, published "
        f"with `publish_batches` to PostgreSQL and the columnar copy (DuckDB {duckdb.__version__}, one file per "
        f"refresh). Milliseconds over {runs} runs after {WARMUP} warm-up runs (fewer where a series hit its time "
        "budget: column n). The baseline is `SELECT count(*)` with the same rule compiled for PostgreSQL, on the "
        "same data, on tables with the serving contract's indexes, in the same run: the faster of the rule as "
        "compiled (each leaf wrapped in `COALESCE(leaf, FALSE)`, which no index matches) and the same predicates "
        "without the wrappers outside NOTs (equivalent in a WHERE clause; what `filter_sql` emits), where "
        "PostgreSQL may use bitmap index scans. The end-to-end columnar rows include resolving the current "
        "refresh in PostgreSQL and validating and compiling the rule; the query-alone row times the DuckDB count "
        "like the PostgreSQL rows time theirs.",
        "",
        "Rule (5 clauses): `age_band in (25-34, 35-44)`, `province in (4 provinces)`, `total_premium >= 3000`, "
        "`has_auto = true`, and either `app_page_view count >= 2 in last 30 days` (with event condition) or "
        "`next_renewal_date between as_of and as_of+60d` (profile only).",
        "",
        "| profiles | rule | query | n | p50 ms | p95 ms | customers | vs baseline |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    notes: list[str] = []
    for n in sizes:
        _measure_size(n, url, runs, per_customer, lines, notes)
    load_after = os.getloadavg()
    lines.append("")
    for n, name, p95, ratio95, ratio50 in _targets:
        if n == 1_000_000:
            met = "met" if p95 < 300 else "NOT met"
            lines.append(f"- Target p95 < 300 ms at 1M ({name}): {p95:.1f} ms ({met}).")
        met = "met" if min(ratio50, ratio95) >= 10 else "NOT met"
        query50, query95 = next((q50, q95) for qn, qname, q50, q95 in _query_ratios if (qn, qname) == (n, name))
        lines.append(
            f"- Target >= 10x the indexed PostgreSQL count(*) at {n:,} ({name}), columnar end to end: "
            f"{ratio50:.1f}x at p50, {ratio95:.1f}x at p95 ({met}); count query against count query: "
            f"{query50:.1f}x at p50, {query95:.1f}x at p95."
        )
    lines += ["", *[f"- {note}" for note in notes]]
    lines.append(
        f"- Load average (1/5/15 min) before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (2 cores shared with other work)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
