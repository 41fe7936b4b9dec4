"""build_profiles at scale: dbt marts, model training, segment refresh (the examples and 50 segments),
the marts gate and the serving store publish, against a plain copy of silver measured in the same run.

Source: ``MO_BENCH_PROFILES_SOURCE_URL`` (e.g. the 1M-customer MariaDB world made with ``mo generate``),
synced into a temporary lake first (not timed here: see the sync section); without it a SQLite world of
``MO_BENCH_PROFILES_CUSTOMERS`` customers (default 20,000) is generated. ``MO_BENCH_PROFILES_SIZES`` (e.g.
``50000,200000``) additionally generates SQLite worlds of those sizes (seed 42) and builds each in its own
lake in the same run, so the page shows how the wall time grows with N. Behaviour events are not loaded
(the behaviour tags take their defaults); every silver-derived mart, tag and segment is computed in full.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Attribute conditions the 50 generated segments combine (each segment: three of them, AND/OR mixed).
_CONDITIONS: list[dict[str, Any]] = [
    {"attr": "customer_tier", "op": "in", "value": ["gold", "platinum"]},
    {"attr": "has_auto", "op": "eq", "value": True},
    {"attr": "has_health", "op": "eq", "value": False},
    {"attr": "days_to_renewal", "op": "between", "value": [0, 60]},
    {"attr": "age_band", "op": "in", "value": ["25-34", "35-44"]},
    {"attr": "city_tier", "op": "in", "value": ["tier1", "new_tier1"]},
    {"attr": "consent_app_push", "op": "eq", "value": True},
    {"attr": "claims_12m", "op": "gte", "value": 1},
    {"attr": "total_premium", "op": "gte", "value": 5000},
    {"attr": "gender", "op": "eq", "value": "F"},
    {"attr": "acquisition_channel", "op": "in", "value": ["app", "wechat"]},
    {"attr": "policy_count", "op": "gte", "value": 2},
]


def fifty_definitions() -> list:
    from mo.segments.definitions import parse_definition

    definitions = []
    for i, (a, b, c) in enumerate(itertools.islice(itertools.combinations(_CONDITIONS, 3), 50)):
        rule = {"all": [a, {"any": [b, c]}]} if i % 2 else {"all": [a, b, {"not": c}]}
        definitions.append(
            parse_definition(
                {
                    "id": f"bench-{i:02d}",
                    "name": f"bench segment {i}",
                    "description": "generated for the benchmark",
                    "owner": "bench",
                    "kind": "dynamic",
                    "rule": rule,
                }
            )
        )
    return definitions


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    elapsed = time.perf_counter() - started
    # Each step is reported as it ends, so a run that fails late (say, out of memory in publish) still
    # leaves the figures of the steps before it.
    print(f"bench profiles: {getattr(fn, '__name__', fn)} {elapsed:.1f}s", file=sys.stderr, flush=True)
    return result, elapsed


def _baseline_copy(spark, settings, out: Path) -> float:
    """A plain copy of every silver table to Parquet: what reading and writing the inputs alone costs."""
    from mo.contracts import load_source_contracts
    from spark_jobs.lake import silver_table

    started = time.perf_counter()
    for name in load_source_contracts():
        spark.table(silver_table(settings, name)).write.mode("overwrite").parquet(str(out / name))
    return time.perf_counter() - started


def _build(settings, as_of: dt.date) -> tuple[dict[str, float], dict[str, str]]:
    from mo.profiles import build_marts, gate_marts, publish_serving, train_models
    from mo.segments.definitions import EXAMPLES_DIR, load_definitions
    from mo.segments.membership import refresh_segments
    from spark_jobs.session import get_spark

    spark = get_spark(settings)
    times: dict[str, float] = {}
    _, times["dbt build (marts, tags, profile)"] = _timed(build_marts, settings, as_of)
    _, times["propensity model: train + score"] = _timed(train_models, settings, as_of)
    examples = load_definitions(EXAMPLES_DIR)
    _, times[f"segment refresh: {len(examples)} examples"] = _timed(
        refresh_segments, spark, settings, examples, as_of=as_of, run_id=f"bench-examples-{as_of}"
    )
    _, times["segment refresh: 50 segments"] = _timed(
        refresh_segments, spark, settings, fifty_definitions(), as_of=as_of, run_id=f"bench-50-{as_of}"
    )
    _, times["marts gate"] = _timed(gate_marts, settings)
    report, times["publish to the serving store"] = _timed(publish_serving, settings, as_of, "bench")
    # The publish report's own split (database load includes reading the marts from Spark).
    split = ", ".join(f"{step} {s:.0f}s" for step, s in report["seconds"].items())
    print(f"bench profiles: publish steps: {split}", file=sys.stderr, flush=True)
    return times, {"publish to the serving store": split}


def _world(source_url: str | None, customers: int, label: str) -> dict[str, Any]:
    """Sync one world into a fresh temporary lake, copy silver (the baseline) and build the profiles."""
    from mo.config import Settings
    from mo.contracts import load_source_contracts
    from mo.generator.storage import read_clock
    from mo.oltp.db import make_engine, migrate
    from spark_jobs.lake import silver_table
    from spark_jobs.session import get_spark
    from spark_jobs.sync import run_sync

    with tempfile.TemporaryDirectory(prefix="mo-bench-profiles-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home, source_url=source_url, catalog_name=f"bench_{label}", pii_key="bench-key")
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)
        if source_url is None:
            from mo.generator.world import generate_world

            generate_world(engine, customers=customers, seed=42)
        with engine.connect() as conn:
            as_of = read_clock(conn).current_date  # type: ignore[union-attr]
        engine.dispose()
        spark = get_spark(settings, "bench-profiles")
        _, sync_s = _timed(run_sync, spark, settings)
        live = spark.table(silver_table(settings, "customers")).count()
        rows = sum(spark.table(silver_table(settings, t)).count() for t in load_source_contracts())
        baseline_s = _baseline_copy(spark, settings, home / "copy")
        times, notes = _build(settings, as_of)
        spark.stop()  # the next world registers its own catalog in a new session
    return {
        "live": live,
        "rows": rows,
        "as_of": as_of,
        "sync_s": sync_s,
        "baseline_s": baseline_s,
        "times": times,
        "notes": notes,
        "total": sum(times.values()),
    }


def run() -> str:
    source_url = os.environ.get("MO_BENCH_PROFILES_SOURCE_URL")
    customers = int(os.environ.get("MO_BENCH_PROFILES_CUSTOMERS", "20000"))
    # Smaller worlds generated (SQLite, seed 42) and built in the same run, to show growth with N.
    sizes = [int(n) for n in os.environ.get("MO_BENCH_PROFILES_SIZES", "").split(",") if n.strip()]
    main = _world(source_url, customers, "main")
    growth = [(n, _world(None, n, f"n{n}")) for n in sizes]

    lines = [
        "## build_profiles: marts, tags, segments, gate, publish",
        "",
        f"World: {main['live']:,} live customers, {main['rows']:,} silver rows, as of {main['as_of']}; Spark "
        f"local mode ({os.cpu_count()} cores); the initial sync into the lake ({main['sync_s']:.0f}s) is not "
        "counted. Baseline: every silver table read and written as Parquet.",
        "",
        "| step | seconds | note |",
        "| --- | ---: | --- |",
        f"| baseline: copy silver to Parquet | {main['baseline_s']:.1f} | 1.0x |",
    ]
    lines += [f"| {step} | {s:.1f} | {main['notes'].get(step, '')} |" for step, s in main["times"].items()]
    lines += [
        f"| build_profiles, total | {main['total']:.1f} | {main['total'] / main['baseline_s']:.1f}x the baseline time |"
    ]
    if growth:
        points = sorted([(w["live"], w) for _, w in growth] + [(main["live"], main)], key=lambda p: p[0])
        lines += [
            "",
            "Growth with N (each world synced into its own lake and built in this run; smaller worlds generated "
            "into SQLite with seed 42):",
            "",
            "| live customers | silver rows | baseline s | build_profiles s | x baseline | ms per customer |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {n:,} | {w['rows']:,} | {w['baseline_s']:.1f} | {w['total']:.1f} | "
            f"{w['total'] / w['baseline_s']:.1f} | {1000 * w['total'] / n:.3f} |"
            for n, w in points
        ]
        (n0, w0), (n1, w1) = points[0], points[-1]
        lines += [
            "",
            f"- From {n0:,} to {n1:,} customers ({n1 / n0:.1f}x) build_profiles took {w1['total'] / w0['total']:.1f}x "
            f"as long and the silver copy {w1['baseline_s'] / w0['baseline_s']:.1f}x.",
        ]
    return "\n".join(lines)


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
