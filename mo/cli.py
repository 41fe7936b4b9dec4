"""`mo`: the one command line for every job. Airflow tasks call the same functions.

Each command imports its job lazily so `mo --help` stays fast and a missing optional piece
(Java, a broker) only matters to the commands that need it.
"""

from __future__ import annotations

import json
import sys

import click

from mo.config import get_settings
from mo.errors import MoError


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Marketing and analytics middle office: data platform jobs."""


@cli.group()
def db() -> None:
    """The source (OLTP) database."""


@db.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the source tables (Alembic)."""
    from mo.oltp.db import make_engine, migrate

    settings = get_settings()
    migrate(make_engine(settings.resolved_source_url))
    click.echo(f"source schema at head: {settings.resolved_source_url.split('@')[-1]}")


@cli.command()
@click.option("--customers", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--start-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="World's first day")
@click.option("--batch-size", type=click.IntRange(min=100), default=10_000, show_default=True)
def generate(customers: int, seed: int, start_date, batch_size: int) -> None:
    """Write a deterministic synthetic insurer book into the source database."""
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    report = generate_world(
        engine,
        customers=customers,
        seed=seed,
        start_date=start_date.date() if start_date else None,
        batch_size=batch_size,
    )
    _echo_json(report)


@cli.command("advance-day")
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--events/--no-events", default=True, show_default=True, help="Emit behaviour and business events")
def advance_day_cmd(days: int, events: bool) -> None:
    """Move the world forward: new business, renewals, lapses, claims, updates, deletes, events."""
    from mo.generator.advance import advance_day
    from mo.oltp.db import make_engine

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    publisher = None
    if events:
        from mo.events.broker import ensure_broker
        from mo.events.producer import EventPublisher

        ensure_broker(settings)
        publisher = EventPublisher(settings)
    try:
        reports = [advance_day(engine, emit=publisher.publish if publisher else None) for _ in range(days)]
    finally:
        if publisher:
            publisher.close()
    _echo_json(reports)


@cli.group()
def broker() -> None:
    """The embedded Kafka-protocol broker (used when MO_KAFKA_BOOTSTRAP is not set)."""


@broker.command("start")
def broker_start() -> None:
    from mo.events.broker import ensure_broker

    click.echo(ensure_broker(get_settings()))


@broker.command("stop")
def broker_stop() -> None:
    from mo.events.broker import stop_broker

    stop_broker(get_settings())


@broker.command("status")
def broker_status_cmd() -> None:
    from mo.events.broker import broker_status

    _echo_json(broker_status(get_settings()))


@cli.command()
@click.option("--table", "tables", multiple=True, help="Sync only these tables (default: all contracts)")
def sync(tables: tuple[str, ...]) -> None:
    """Sync source tables into bronze and silver (incremental, gated, idempotent)."""
    from spark_jobs.session import get_spark
    from spark_jobs.sync import run_sync

    settings = get_settings()
    report = run_sync(get_spark(settings), settings, tables=list(tables) or None)
    _echo_json(report)


@cli.command("ingest-events")
@click.option("--max-messages", type=click.IntRange(min=1), default=None, help="Stop after this many messages")
@click.option("--batch-size", type=click.IntRange(min=1), default=50_000, show_default=True, help="Messages per commit")
def ingest_events_cmd(max_messages: int | None, batch_size: int) -> None:
    """Ingest behaviour and business events from Kafka into bronze (dead-letters malformed ones)."""
    from spark_jobs.events_ingest import ingest_events
    from spark_jobs.session import get_spark

    settings = get_settings()
    _echo_json(ingest_events(get_spark(settings), settings, max_messages=max_messages, batch_size=batch_size))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
def status(as_json: bool) -> None:
    """Health of the platform: live row counts per table in source, bronze and silver, last sync."""
    from mo.status import collect_status, format_status

    report = collect_status(get_settings())
    if as_json:
        _echo_json(report)
    else:
        click.echo(format_status(report))


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, standalone_mode=False)
    except MoError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
