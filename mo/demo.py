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

import click

from mo.config import get_settings
from mo.errors import MoError


def _step(title: str) -> float:
    click.secho(f"\n==> {title}", bold=True)
    return time.perf_counter()


def _done(started: float, detail: str = "") -> None:
    click.echo(f"    done in {time.perf_counter() - started:.1f}s {detail}".rstrip())


def _segment_sizes(settings) -> dict[str, int]:
    """Segment sizes of the serving store's current refresh."""
    from sqlalchemy import text

    from mo.serving_store import open_store

    store = open_store(settings)
    with store.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT segment_id, size FROM {store.qualified('segments')} ORDER BY segment_id"))
        return {r[0]: int(r[1] or 0) for r in rows}


def run_demo(customers: int, seed: int, days: int) -> dict:
    from sqlalchemy import select

    from mo.airflow_local import configure, run_dag
    from mo.events.broker import ensure_broker
    from mo.events.producer import EventPublisher
    from mo.generator.advance import advance_day
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.oltp.models import WorldClock
    from mo.status import collect_status, format_status

    settings = get_settings()
    timings: dict[str, float] = {}
    click.echo(f"MO_HOME={settings.home}")

    t = _step("source database: migrate")
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    _done(t)

    with engine.connect() as conn:
        exists = conn.execute(select(WorldClock.current_date)).scalar_one_or_none()
    if exists is None:
        t = _step(f"generate a world of {customers:,} customers (seed {seed})")
        report = generate_world(engine, customers=customers, seed=seed)
        timings["generate_s"] = time.perf_counter() - t
        _done(t, f"({sum(report.get('rows', {}).values()):,} rows)")
    else:
        click.echo(f"    world exists (day {exists}); advancing it")

    t = _step("local Kafka-protocol broker")
    click.echo(f"    {ensure_broker(settings)}")
    _done(t)

    t = _step(f"advance the world {days} day(s): changes in the source, events to Kafka")
    publisher = EventPublisher(settings)
    try:
        for _ in range(days):
            day = advance_day(engine, emit=publisher.publish)
            click.echo(f"    {day.get('date', '')}: {day.get('events', {})}")
    finally:
        publisher.close()
    timings["advance_s"] = time.perf_counter() - t
    _done(t)

    with engine.connect() as conn:
        world_day = conn.execute(select(WorldClock.current_date)).scalar_one()
    configure(settings.home / "airflow")
    # the profiles' reference date is the simulated world's day, not the calendar's
    runs = {
        "source_sync": None,
        "events_ingest": None,
        "build_profiles": {"as_of": str(world_day), "force": True},
    }
    for dag_id, conf in runs.items():
        t = _step(f"Airflow: {dag_id}")
        result = run_dag(dag_id, run_conf=conf)
        timings[f"{dag_id}_s"] = time.perf_counter() - t
        _done(t, f"state={result['state']} tasks={result['tasks']}")
        if result["state"] != "success":
            raise MoError(f"DAG {dag_id} ended {result['state']}: {result['tasks']}")

    t = _step("segments published to the serving store")
    sizes = _segment_sizes(settings)
    for segment_id, size in sizes.items():
        click.echo(f"    {segment_id:<32}{size:>10,} customers")
    _done(t)

    t = _step("platform status (mo status)")
    status = collect_status(settings)
    click.echo(format_status(status))
    out_of_sync = [name for name, row in status["tables"].items() if not row["in_sync"]]
    if out_of_sync:
        raise MoError(f"source and silver disagree after the sync for: {', '.join(out_of_sync)}")
    if not status["serving"].get("refresh"):
        raise MoError("build_profiles ran but the serving store has no current refresh")
    click.secho(
        "\nDemo finished: source and silver agree for every table; profiles and segments are published.",
        fg="green",
        bold=True,
    )
    click.echo("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    return status


@click.command()
@click.option("--customers", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
def main(customers: int, seed: int, days: int) -> None:
    """Run the demo end to end."""
    try:
        run_demo(customers, seed, days)
    except MoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
