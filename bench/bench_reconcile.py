"""Content reconciliation (`mo reconcile`) against a plain full refresh of the same tables.

Source: ``MO_BENCH_RECONCILE_SOURCE_URL`` (default: a SQLite file in a temporary MO_HOME). The world is
generated into it (``MO_BENCH_RECONCILE_CUSTOMERS`` customers, default 20,000, seed 42) unless
``MO_BENCH_RECONCILE_GENERATE=0`` says the source is already populated (e.g. the 1M-customer MariaDB world of
the sync section). The source is changed by this bench (rows changed behind the watermark, then repaired).

Measured in one run, one SparkSession, the lake in a temporary directory, after an initial sync (not
compared). ``MO_BENCH_RECONCILE_HOME`` names a lasting MO_HOME instead (catalog
``MO_BENCH_RECONCILE_CATALOG``, default ``bench_reconcile``): a lake already synced from this source there
(by an earlier run) is reused and the initial sync, an hour at 1M customers on a busy machine, is skipped.

- reconcile of every table with nothing differing (first, so that it, not the baseline, bears a cold
  JVM's warm-up when the initial sync was skipped);
- baseline: a full refresh of every table (``mo sync --full-refresh``: each read whole, compared with
  bronze, merged, gated whole, published), nothing differing;
- the source changed behind the watermark (``MO_BENCH_RECONCILE_CHANGES`` rows, default 100: updates without a
  new ``updated_at`` of customers (PII and plain columns) and policies, hard deletes and old-dated inserts of
  consents), then reconcile: the ids it finds must be exactly the ids changed;
- the repair of those ids (``--repair``: one gated sync run restricted to them), then a reconcile that must
  find nothing (a second "nothing differs" figure).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def _change_behind_the_watermark(engine, changes: int, seed: int) -> dict[str, set[int]]:
    """Change ``changes`` rows without moving their updated_at; returns the ids changed per table."""
    from sqlalchemy import inspect, text

    rng = random.Random(seed)
    quarter = max(changes // 4, 1)
    changed: dict[str, set[int]] = {}
    with engine.begin() as conn:

        def ids(table: str) -> list[int]:
            return [int(r[0]) for r in conn.execute(text(f"SELECT id FROM {table} WHERE deleted_at IS NULL"))]

        customers = rng.sample(ids("customers"), 2 * quarter)
        for i, cid in enumerate(customers):
            column = "city" if i % 2 else "phone"
            value = "拉萨" if column == "city" else f"139{rng.randint(10**7, 10**8 - 1)}"
            conn.execute(text(f"UPDATE customers SET {column} = :v WHERE id = :id"), {"v": value, "id": cid})
        changed["customers"] = set(customers)
        policies = rng.sample(ids("policies"), quarter)
        conn.execute(text(f"UPDATE policies SET premium = premium + 1 WHERE id IN ({', '.join(map(str, policies))})"))
        changed["policies"] = set(policies)
        consents = ids("consents")
        gone = rng.sample(consents, quarter // 2 or 1)
        conn.execute(text(f"DELETE FROM consents WHERE id IN ({', '.join(map(str, gone))})"))
        top = max(consents)
        copied = rng.sample(sorted(set(consents) - set(gone)), quarter - len(gone) or 1)
        columns = [c["name"] for c in inspect(engine).get_columns("consents")]
        others = ", ".join(c for c in columns if c != "id")
        conn.execute(
            text(
                f"INSERT INTO consents (id, {others}) SELECT id + {top}, {others} FROM consents "
                f"WHERE id IN ({', '.join(map(str, copied))})"
            )
        )
        changed["consents"] = set(gone) | {c + top for c in copied}
    return changed


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def _sync_steps(spark, settings, full_refresh: list[str] | None = None) -> tuple[dict, float]:
    from spark_jobs.sync import check_gate, extract_to_bronze, merge_to_audit, publish

    started = time.perf_counter()
    manifest = extract_to_bronze(spark, settings, full_refresh=full_refresh or ())
    manifest = merge_to_audit(spark, settings, manifest)
    manifest = check_gate(spark, settings, manifest)
    manifest = publish(spark, settings, manifest)
    return manifest, time.perf_counter() - started


def run() -> str:
    from mo.config import Settings
    from mo.contracts import load_source_contracts
    from mo.oltp.db import make_engine, migrate
    from spark_jobs.reconcile import reconcile
    from spark_jobs.session import get_spark, register_catalog
    from spark_jobs.watermarks import read_watermarks

    customers = int(os.environ.get("MO_BENCH_RECONCILE_CUSTOMERS", "20000"))
    changes = int(os.environ.get("MO_BENCH_RECONCILE_CHANGES", "100"))
    generate = os.environ.get("MO_BENCH_RECONCILE_GENERATE", "1") != "0"
    lasting = os.environ.get("MO_BENCH_RECONCILE_HOME")
    with tempfile.TemporaryDirectory(prefix="mo-bench-reconcile-") as tmp:
        home = Path(lasting or tmp)
        settings = Settings(
            home=home,
            source_url=os.environ.get("MO_BENCH_RECONCILE_SOURCE_URL"),
            catalog_name=os.environ.get("MO_BENCH_RECONCILE_CATALOG", "bench_reconcile"),
            pii_key=os.environ.get("MO_PII_KEY", "bench-key"),
        )
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)
        if generate:
            from mo.generator.world import generate_world

            generate_world(engine, customers=customers, seed=42)
        spark = get_spark(settings, "bench-reconcile")
        tables = list(load_source_contracts())
        register_catalog(spark, settings)
        initial_s = None
        if generate or not lasting or set(read_watermarks(spark, settings)) != set(tables):
            _, initial_s = _sync_steps(spark, settings)
            print(f"initial sync {initial_s:.1f}s", flush=True)
        clean, clean_s = _timed(reconcile, spark, settings)
        clean_found = sum(t["rows_differing"] + t["rows_pending"] for t in clean["tables"].values())
        clean_ranges = sum(t["ranges_compared"] for t in clean["tables"].values())
        loads = {"clean": load()}
        print(f"reconcile, nothing differing {clean_s:.1f}s ({clean_found} found)", flush=True)
        refresh, refresh_s = _sync_steps(spark, settings, full_refresh=tables)
        refresh_new = sum(t["rows_bronze"] for t in refresh["tables"].values())
        rows = sum(t["source_live_count"] for t in refresh["tables"].values())
        loads["refresh"] = load()
        print(f"full refresh {refresh_s:.1f}s ({refresh_new} new versions)", flush=True)
        changed = _change_behind_the_watermark(engine, changes, seed=7)
        found, found_s = _timed(reconcile, spark, settings)
        found_ids = {n: set(t["differing_ids"]) for n, t in found["tables"].items() if t["differing_ids"]}
        found_ranges = sum(t["ranges_compared"] for t in found["tables"].values())
        exact = found_ids == changed
        loads["found"] = load()
        print(f"reconcile, {sum(map(len, changed.values()))} changed: {found_s:.1f}s, exact={exact}", flush=True)
        per_table = ", ".join(f"{n} {t['seconds']}s" for n, t in found["tables"].items())
        print(f"  per table: {per_table}", flush=True)
        repaired, repair_s = _timed(reconcile, spark, settings, repair=True)
        loads["repair"] = load()
        print(f"reconcile --repair {repair_s:.1f}s", flush=True)
        after, after_s = _timed(reconcile, spark, settings)
        loads["after"] = load()
        after_found = sum(t["rows_differing"] + t["rows_pending"] for t in after["tables"].values())
        engine.dispose()
        spark.stop()

    n_changed = sum(map(len, changed.values()))
    per_table = ", ".join(f"{n} {len(ids)}" for n, ids in sorted(changed.items()))
    lines = [
        "## Content reconciliation: silver compared with the source by content",
        "",
        f"Source {refresh['source']}"
        + (f", world of {customers:,} customers (seed 42)" if generate else "")
        + f"; {rows:,} live rows in {len(tables)} tables; Spark local mode ({os.cpu_count()} cores); "
        + (f"initial sync {initial_s:.0f}s (not compared)" if initial_s else "lake reused from an earlier run")
        + ". Baseline: a full refresh of every table (`mo sync --full-refresh`) in the same run. The machine is "
        "shared: its load average (1 / 5 / 15 min) is shown as each step ended.",
        "",
        "| step | seconds | vs full refresh | load after | note |",
        "| --- | ---: | ---: | --- | --- |",
        f"| reconcile, nothing differs | {clean_s:.1f} | {clean_s / refresh_s:.2f} | {loads['clean']} | "
        f"{clean_found} rows found differing; {clean_ranges} ranges compared |",
        f"| baseline: full refresh of every table | {refresh_s:.1f} | 1.00 | {loads['refresh']} | "
        f"{refresh_new:,} versions differed |",
        f"| reconcile, {n_changed} rows changed behind the watermark | {found_s:.1f} | {found_s / refresh_s:.2f} | "
        f"{loads['found']} | changed {per_table}; found exactly those ids: {'yes' if exact else 'NO'}; "
        f"{found_ranges} ranges compared |",
        f"| reconcile --repair of those ids (gated sync run) | {repair_s:.1f} | {repair_s / refresh_s:.2f} | "
        f"{loads['repair']} | {sum(t['ids_repaired'] for t in repaired['tables'].values())} ids repaired |",
        f"| reconcile after the repair, nothing differs | {after_s:.1f} | {after_s / refresh_s:.2f} | "
        f"{loads['after']} | {after_found} rows differing |",
        "",
        f"- Target: reconcile with nothing differing at most a third of the full refresh: "
        f"{clean_s / refresh_s:.2f} ({'met' if clean_s <= refresh_s / 3 else 'NOT met'}); after the repair "
        f"{after_s / refresh_s:.2f} ({'met' if after_s <= refresh_s / 3 else 'NOT met'}).",
        f"- Target: exact when rows differ: {'met' if exact and after_found == 0 else 'NOT met'}.",
    ]
    return "\n".join(lines)


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
