"""`make demo`: the main job end to end on the embedded defaults.

Creates (or reuses) the synthetic world under MO_HOME, starts the local broker, moves the world
forward a day (changes and events), then runs the `source_sync` and `events_ingest` DAGs through
Airflow and prints the platform status. Rerunning advances the world again and syncs incrementally.
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

    configure(settings.home / "airflow")
    for dag_id in ("source_sync", "events_ingest"):
        t = _step(f"Airflow: {dag_id}")
        result = run_dag(dag_id)
        timings[f"{dag_id}_s"] = time.perf_counter() - t
        _done(t, f"state={result['state']} tasks={result['tasks']}")
        if result["state"] != "success":
            raise MoError(f"DAG {dag_id} ended {result['state']}: {result['tasks']}")

    t = _step("platform status (mo status)")
    status = collect_status(settings)
    click.echo(format_status(status))
    out_of_sync = [name for name, row in status["tables"].items() if not row["in_sync"]]
    if out_of_sync:
        raise MoError(f"source and silver disagree after the sync for: {', '.join(out_of_sync)}")
    click.secho("\nDemo finished: source and silver agree for every table.", fg="green", bold=True)
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
