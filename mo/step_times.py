"""The build's step times, for the Data platform health dashboard (analytics table ``platform_steps``).

Two pipelines record when their steps end, in the lake's ops namespace:

- the sync writes a row per table and step into ``ops.sync_runs`` (spark_jobs/watermarks.py): started,
  extracted, merged, gated, published (or the end that stopped it). A step's time is from the run's previous
  record to this one;
- ``build_profiles`` writes one row per step into ``ops.build_steps`` (:class:`BuildSteps`): marts, models,
  segments, insights, campaign results, analytics marts, gate, publish, publish to the dashboards. Run in one
  process (``mo build-profiles``) the steps are recorded in two commits; run by the Airflow DAG each task records
  its own steps as it ends, under the DAG run's id (a retried task's last attempt is the one shown).

:func:`step_rows` reads both for the latest runs. Timestamps are naive UTC and cross from Spark as text (see
spark_jobs/watermarks.py for why).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
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
# build_profiles' steps in the order they run; a step's number is its place here, whichever process runs it.
BUILD_STEPS = ("marts", "models", "segments", "insights", "campaign_results", "analytics_marts", "gate", "publish",
               "publish_dashboards")  # fmt: skip
# The sync statuses a run reaches, as step names (the ends that stop a run keep their own names).
SYNC_STEPS = {"extracted": "extract", "merged": "merge", "gated": "gate", "published": "publish"}
LATEST_RUNS = 10
_TS = "yyyy-MM-dd HH:mm:ss.SSSSSS"

log = logging.getLogger(__name__)


def record_build_steps(spark, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append build step records (one commit); creates ``ops.build_steps`` when missing."""
    if not rows:
        return
    name = ops_table(settings, "build_steps")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.ops")
    columns = ", ".join(f"`{n}` {t}" for n, t in BUILD_STEPS_COLUMNS)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg TBLPROPERTIES ('format-version'='2')")
    _frame(spark, BUILD_STEPS_COLUMNS, rows).writeTo(name).append()


class BuildSteps:
    """The steps of one build_profiles run, timed into ``ops.build_steps``: each step's start, end and outcome
    (a failed step's error in ``detail``). ``deferred``: kept until :meth:`flush` (one commit for several steps);
    otherwise each step is recorded as it ends. A record that cannot be written is logged, never raised: the
    step's own outcome is what the caller sees."""

    def __init__(self, settings: Settings, run_id: str, as_of: date, *, deferred: bool = False) -> None:
        self.settings, self.run_id, self.as_of, self.deferred = settings, run_id, as_of, deferred
        self.pending: list[dict[str, Any]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "step_no": BUILD_STEPS.index(name) + 1,
            "step": name,
            "as_of": self.as_of,
            "started_at": _now(),
            "status": "failed",
            "detail": None,
        }
        self.pending.append(record)
        try:
            yield
            record["status"] = "ok"
        except BaseException as exc:
            record["detail"] = (str(exc).splitlines() or [type(exc).__name__])[0][:500]
            raise
        finally:
            record["finished_at"] = _now()
            if not self.deferred:
                self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            from spark_jobs.session import get_spark

            record_build_steps(get_spark(self.settings), self.settings, pending)
        except Exception:  # noqa: BLE001 - step times are for the dashboard; the build's outcome stands
            log.exception("build_profiles %s: the step times could not be recorded", self.run_id)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
