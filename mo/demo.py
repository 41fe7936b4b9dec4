"""`make demo`: the main job end to end on the embedded defaults.

Creates (or reuses) the synthetic world under MO_HOME, starts the local broker, moves the world
forward a day (changes and events), then runs the `source_sync`, `events_ingest` and `build_profiles`
DAGs through Airflow (sync, events, dbt marts and tags, segments, the marts gate, the serving store
publish), prints the segment sizes and the platform status. Rerunning advances the world again, syncs
incrementally and rebuilds the profiles for the world's new day.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import click

from mo.config import get_settings
from mo.errors import MoError
from mo.progress import Progress, log_path_for


def _segment_sizes(settings) -> dict[str, int]:
    """Segment sizes of the serving store's current refresh."""
    from sqlalchemy import text

    from mo.serving_store import open_store

    store = open_store(settings)
    with store.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT segment_id, size FROM {store.qualified('segments')} ORDER BY segment_id"))
        return {r[0]: int(r[1] or 0) for r in rows}


def run_demo(customers: int, seed: int, days: int, progress: Progress, airflow_home: Path | None = None) -> dict:
    """The demo's steps, one progress line each (a line per task for the DAG runs), then the summary.

    Call it inside ``progress.capture()`` so that the tools' own output goes to the log file.
    ``airflow_home``: where Airflow keeps its metadata (default ``MO_HOME/airflow``).
    """
    from sqlalchemy import select

    from mo.airflow_local import configure, load_dags, run_dag
    from mo.events.broker import ensure_broker
    from mo.events.producer import EventPublisher
    from mo.generator.advance import advance_day
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.oltp.models import WorldClock
    from mo.status import collect_status, format_status

    settings = get_settings()
    timings: dict[str, float] = {}

    with progress.step("source database: migrate"):
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)

    with engine.connect() as conn:
        exists = conn.execute(select(WorldClock.current_date)).scalar_one_or_none()
    if exists is None:
        t = time.perf_counter()
        with progress.step(f"generate a world of {customers:,} customers (seed {seed})") as result:
            report = generate_world(engine, customers=customers, seed=seed)
            result["detail"] = f"{sum(report.get('rows', {}).values()):,} rows"
        timings["generate_s"] = time.perf_counter() - t
    else:
        progress.line(f"world exists (day {exists}): advancing it")

    with progress.step("local Kafka-protocol broker") as result:
        result["detail"] = ensure_broker(settings)

    t = time.perf_counter()
    with progress.step(f"advance the world {days} day(s): changes in the source, events to Kafka") as result:
        publisher = EventPublisher(settings)
        try:
            for _ in range(days):
                day = advance_day(engine, emit=publisher.publish)
                result["detail"] = f"now {day['date']}, {day['events_total']:,} events"
                click.echo(f"{day['date']}: {day['events']}")  # the counts per event type, in the log
        finally:
            publisher.close()
    timings["advance_s"] = time.perf_counter() - t

    with engine.connect() as conn:
        world_day = conn.execute(select(WorldClock.current_date)).scalar_one()
    with progress.step("Airflow: metadata database, DAGs"):
        configure(airflow_home or settings.home / "airflow")
        load_dags()
    # the profiles' reference date is the simulated world's day, not the calendar's
    runs = {
        "source_sync": None,
        "events_ingest": None,
        "build_profiles": {"as_of": str(world_day), "force": True},
    }
    for dag_id, conf in runs.items():
        t = time.perf_counter()
        run = run_dag(dag_id, run_conf=conf, progress=progress)
        timings[f"{dag_id}_s"] = time.perf_counter() - t
        if run["state"] != "success":
            failed = [task for task, state in run["tasks"].items() if state == "failed"]
            raise MoError(f"DAG {dag_id} ended {run['state']} (failed: {', '.join(failed) or 'none'})")

    sizes = _segment_sizes(settings)
    status = collect_status(settings)
    progress.line("")
    progress.line("segments published to the serving store:")
    for segment_id, size in sizes.items():
        progress.line(f"  {segment_id:<32}{size:>10,} customers")
    progress.line("")
    progress.line(format_status(status))
    out_of_sync = [name for name, row in status["tables"].items() if not row["in_sync"]]
    if out_of_sync:
        raise MoError(f"source and silver disagree after the sync for: {', '.join(out_of_sync)}")
    if not status["serving"].get("refresh"):
        raise MoError("build_profiles ran but the serving store has no current refresh")
    progress.line("")
    progress.line("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    progress.line(
        click.style(
            "Demo finished: source and silver agree for every table; profiles and segments are published.",
            fg="green",
            bold=True,
        )
    )
    return status


@click.command()
@click.option("--customers", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
def main(customers: int, seed: int, days: int) -> None:
    """Run the demo end to end: progress lines here, the tools' output (Spark, dbt, Airflow) in a log file."""
    try:
        settings = get_settings()
    except MoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    progress = Progress(log_path_for(settings.home, "demo"))
    click.echo(f"MO_HOME={settings.home}")
    click.echo(f"tool logs (Spark, dbt, Airflow): {progress.log_path}")
    failure: str | None = None
    with progress.capture():
        try:
            run_demo(customers, seed, days, progress)
        except MoError as exc:
            failure = str(exc)
        except Exception as exc:  # an unexpected error: its traceback goes to the log, its message here
            traceback.print_exc()
            failure = f"{type(exc).__name__}: {exc}"
    click.echo(f"log: {progress.log_path}")
    if failure is not None:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
