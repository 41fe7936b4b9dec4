"""Sync: initial load and one incremental day, against a plain Spark JDBC export of the same tables.

Source: ``MO_BENCH_SYNC_SOURCE_URL`` (default: a SQLite file in a temporary MO_HOME). The world is
generated into it with ``mo.generator`` (``MO_BENCH_SYNC_CUSTOMERS`` customers, default 20,000;
``MO_BENCH_SYNC_SEED``, default 42) unless ``MO_BENCH_SYNC_GENERATE=0`` says the source is already
populated (e.g. a 1M-customer MariaDB world made with ``mo generate``).

Measured in one run, one SparkSession, the lake in a temporary directory:

- baseline: every contract table read with Spark JDBC (same URL, driver, partitioning and casts as the
  sync) and written as Parquet: what moving the bytes alone costs;
- the initial sync, step by step (extract to bronze with PII tokens, MERGE on audit branches, quality
  gate, publish);
- one ``advance_day`` of the world, then the incremental sync of that day's changes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def _row(name: str, rows: int, seconds: float, note: str = "") -> str:
    rate = f"{rows / seconds:,.0f}" if seconds > 0 else "-"
    return f"| {name} | {rows:,} | {seconds:.1f} | {rate} | {note} |"


def _baseline_export(spark, settings, out_dir: Path) -> tuple[int, float]:
    """Plain bulk export: each table read over JDBC and written to Parquet, nothing else."""
    from mo.contracts import load_source_contracts
    from mo.oltp.db import make_engine
    from spark_jobs.extract import jdbc_source, plan_window, read_window

    source = jdbc_source(settings.resolved_source_url)
    engine = make_engine(settings.resolved_source_url)
    rows = 0
    started = time.perf_counter()
    for name, contract in load_source_contracts().items():
        window = plan_window(engine, contract, None)
        read_window(spark, settings, source, contract, window).write.mode("overwrite").parquet(str(out_dir / name))
        rows += window.rows
    engine.dispose()
    return rows, time.perf_counter() - started


def _sync_steps(spark, settings) -> tuple[dict, dict[str, float]]:
    from spark_jobs.sync import check_gate, extract_to_bronze, merge_to_audit, publish

    times: dict[str, float] = {}
    manifest, times["extract to bronze"] = _timed(extract_to_bronze, spark, settings)
    manifest, times["merge on audit branches"] = _timed(merge_to_audit, spark, settings, manifest)
    manifest, times["quality gate"] = _timed(check_gate, spark, settings, manifest)
    manifest, times["publish"] = _timed(publish, spark, settings, manifest)
    return manifest, times


def run() -> str:
    from mo.config import Settings
    from mo.oltp.db import make_engine, migrate
    from spark_jobs.session import get_spark

    customers = int(os.environ.get("MO_BENCH_SYNC_CUSTOMERS", "20000"))
    seed = int(os.environ.get("MO_BENCH_SYNC_SEED", "42"))
    generate = os.environ.get("MO_BENCH_SYNC_GENERATE", "1") != "0"
    with tempfile.TemporaryDirectory(prefix="mo-bench-sync-") as tmp:
        home = Path(tmp)
        settings = Settings(
            home=home,
            source_url=os.environ.get("MO_BENCH_SYNC_SOURCE_URL"),
            catalog_name="bench_sync",
            pii_key=os.environ.get("MO_PII_KEY", "bench-key"),
        )
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)
        generate_s = 0.0
        if generate:
            from mo.generator.world import generate_world

            _, generate_s = _timed(generate_world, engine, customers=customers, seed=seed)
        spark, session_s = _timed(get_spark, settings, "bench-sync")

        baseline_rows, baseline_s = _baseline_export(spark, settings, home / "export")
        initial, initial_times = _sync_steps(spark, settings)
        initial_s = sum(initial_times.values())
        initial_rows = sum(t["rows_extracted"] for t in initial["tables"].values())

        from mo.generator.advance import advance_day

        _, advance_s = _timed(advance_day, engine)
        incremental, incremental_times = _sync_steps(spark, settings)
        incremental_s = sum(incremental_times.values())
        changed = sum(t["rows_bronze"] for t in incremental["tables"].values())
        engine.dispose()
        spark.stop()

    source_label = initial["source"]
    lines = [
        "## Sync: source tables into bronze and silver",
        "",
        f"Source {source_label}"
        + (f", world of {customers:,} customers (seed {seed})" if generate else "")
        + f"; Spark local mode ({os.cpu_count()} cores); SparkSession start {session_s:.1f}s excluded"
        + (f"; generating the world took {generate_s:.0f}s." if generate else "."),
        "Baseline: the same tables read with Spark JDBC (same partitioning and casts) and written as Parquet.",
        "",
        "| step | rows | seconds | rows/s | note |",
        "| --- | ---: | ---: | ---: | --- |",
        _row("baseline: JDBC -> Parquet export", baseline_rows, baseline_s, "1.0x"),
        _row("initial sync, total", initial_rows, initial_s, f"{initial_s / baseline_s:.1f}x the baseline time"),
    ]
    lines += [_row(f"  initial: {step}", initial_rows, s) for step, s in initial_times.items()]
    lines += [
        _row(
            "incremental day, total",
            changed,
            incremental_s,
            f"rows new or changed in one advance_day ({advance_s:.0f}s to generate)",
        )
    ]
    lines += [_row(f"  incremental: {step}", changed, s) for step, s in incremental_times.items()]
    ratio = (initial_rows / initial_s) / (baseline_rows / baseline_s)
    lines += [
        "",
        f"- Target: initial sync throughput at least half the export's: {ratio:.2f} of the export's rows/s "
        f"({'met' if ratio >= 0.5 else 'NOT met'}).",
        f"- Target: incremental day under 2 minutes: {incremental_s:.0f}s "
        f"({'met' if incremental_s < 120 else 'NOT met'}).",
    ]
    return "\n".join(lines)


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
