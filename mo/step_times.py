"""The build's step times, for the Data platform health dashboard (analytics table ``platform_steps``).

Two pipelines record when their steps end, in the lake's ops namespace:

- the sync writes a row per table and step into ``ops.sync_runs`` (spark_jobs/watermarks.py): started,
  extracted, merged, gated, published (or the end that stopped it). A step's time is from the run's previous
  record to this one;
- ``build_profiles`` run in one process (``mo build-profiles``) writes one row per step into ``ops.build_steps``
  (:func:`record_build_steps`): marts, models, segments, insights, campaign results, analytics marts, gate,
  publish, publish to the dashboards. The Airflow DAG's tasks are timed by Airflow itself.

:func:`step_rows` reads both for the latest runs. Timestamps are naive UTC and cross from Spark as text (see
spark_jobs/watermarks.py for why).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mo.config import Settings
from spark_jobs.lake import ops_table
from spark_jobs.watermarks import _frame

BUILD_STEPS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("step_no", "int"),
    ("step", "string"),
    ("as_of", "date"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("status", "string"),  # ok | failed
    ("detail", "string"),  # the error's first line for a failed step
)
# The sync statuses a run reaches, as step names (the ends that stop a run keep their own names).
SYNC_STEPS = {"extracted": "extract", "merged": "merge", "gated": "gate", "published": "publish"}
LATEST_RUNS = 10
_TS = "yyyy-MM-dd HH:mm:ss.SSSSSS"


def record_build_steps(spark, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append build step records (one commit); creates ``ops.build_steps`` when missing."""
    if not rows:
        return
    name = ops_table(settings, "build_steps")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.ops")
    columns = ", ".join(f"`{n}` {t}" for n, t in BUILD_STEPS_COLUMNS)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg TBLPROPERTIES ('format-version'='2')")
    _frame(spark, BUILD_STEPS_COLUMNS, rows).writeTo(name).append()


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def sync_step_rows(spark, settings: Settings, runs: int = LATEST_RUNS) -> list[dict[str, Any]]:
    """Each step of the latest ``runs`` sync runs: from the run's previous record to the step's."""
    name = ops_table(settings, "sync_runs")
    if not spark.catalog.tableExists(name):
        return []
    rows = spark.sql(
        f"""
        WITH steps AS (
            SELECT run_id, status, MIN(started_at) AS run_started_at, MAX(finished_at) AS finished_at
            FROM {name} GROUP BY run_id, status
        ),
        latest AS (
            SELECT run_id FROM steps GROUP BY run_id ORDER BY MAX(finished_at) DESC, run_id DESC LIMIT {int(runs)}
        ),
        ordered AS (
            SELECT steps.*,
                   LAG(finished_at) OVER (PARTITION BY run_id ORDER BY finished_at, status) AS previous_at,
                   ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY finished_at, status) AS record_no
            FROM steps JOIN latest USING (run_id)
        )
        SELECT run_id, status, record_no,
               date_format(COALESCE(previous_at, run_started_at), '{_TS}') AS started_at,
               date_format(finished_at, '{_TS}') AS finished_at
        FROM ordered WHERE status <> 'started'
        """
    ).collect()
    made = (_step_row("sync", r, SYNC_STEPS.get(r["status"], r["status"]), int(r["record_no"]) - 1) for r in rows)
    return [row for row in made if row is not None]


def _step_row(pipeline: str, r: Any, step: str, step_no: int) -> dict[str, Any] | None:
    """One platform_steps row from a query row with run_id, status, started_at, finished_at (None: no times)."""
    started, finished = _ts(r["started_at"]), _ts(r["finished_at"])
    if started is None or finished is None:
        return None
    return {
        "pipeline": pipeline,
        "run_id": r["run_id"],
        "step": step,
        "step_no": step_no,
        "started_at": started,
        "finished_at": finished,
        "seconds": round(max((finished - started).total_seconds(), 0.0), 3),
        "status": r["status"],
    }


def build_step_rows(spark, settings: Settings, runs: int = LATEST_RUNS) -> list[dict[str, Any]]:
    """Each step of the latest ``runs`` build_profiles runs (the last record of a step run twice)."""
    name = ops_table(settings, "build_steps")
    if not spark.catalog.tableExists(name):
        return []
    rows = spark.sql(
        f"""
        WITH ranked AS (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY run_id, step ORDER BY finished_at DESC) AS _rank FROM {name}
        ),
        latest AS (
            SELECT run_id FROM ranked GROUP BY run_id ORDER BY MAX(finished_at) DESC, run_id DESC LIMIT {int(runs)}
        )
        SELECT run_id, step, step_no, status, date_format(started_at, '{_TS}') AS started_at,
               date_format(finished_at, '{_TS}') AS finished_at
        FROM ranked JOIN latest USING (run_id) WHERE _rank = 1
        """
    ).collect()
    made = (_step_row("build_profiles", r, r["step"], int(r["step_no"])) for r in rows)
    return [row for row in made if row is not None]


def step_rows(spark, settings: Settings, runs: int = LATEST_RUNS) -> list[dict[str, Any]]:
    """``platform_steps`` rows: the latest sync runs' steps, then the latest build_profiles runs'."""
    rows = sync_step_rows(spark, settings, runs) + build_step_rows(spark, settings, runs)
    return sorted(rows, key=lambda r: (r["pipeline"], r["started_at"], r["run_id"], r["step_no"]))
