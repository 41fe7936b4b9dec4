"""`mo`: the one command line for every job. Airflow tasks call the same functions.

Each command imports its job lazily so `mo --help` stays fast and a missing optional piece
(Java, a broker) only matters to the commands that need it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import math
import sys
from pathlib import Path

import click

from mo.campaigns import lease_limits
from mo.config import get_settings
from mo.errors import MoError


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# A row id as every engine stores it (a signed 64-bit integer): larger ones are refused by click, not by the driver.
ROW_ID = click.IntRange(min=1, max=2**63 - 1)


class FiniteRange(click.FloatRange):
    """A float range that refuses NaN too: NaN compares false with both bounds, so click's FloatRange lets it in."""

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not in the range {self._describe_range()}.", param, ctx)
        return number


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


@cli.group()
def outbox() -> None:
    """The transactional outbox: business events the API wrote with its changes, published to Kafka."""


@outbox.command("relay")
@click.option("--once", is_flag=True, help="One pass (up to --batch-size events), then exit")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True, help="Events per pass")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="Seconds between passes when nothing waits; the first backoff step while the broker is down",
)
@click.option(
    "--max-backoff", type=click.FloatRange(min=0.01), default=30.0, show_default=True, help="Longest wait in an outage"
)
def outbox_relay_cmd(once: bool, batch_size: int, poll_interval: float, max_backoff: float) -> None:
    """Publish the outbox to Kafka, at least once, in id order per customer; until stopped (SIGTERM, Ctrl-C)."""
    import logging
    import signal
    import threading

    from mo.events.broker import ensure_broker
    from mo.events.relay import relay_once, require_outbox, run_relay
    from mo.oltp.db import check_connection, make_engine
    from mo.oltp.outbox import outbox_status

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    require_outbox(engine)
    if once:
        if settings.uses_embedded_kafka:
            ensure_broker(settings)
        result = relay_once(engine, settings, batch_size)
        _echo_json({**result.__dict__, "outbox": outbox_status(engine).as_dict()})
        if result.failed:
            raise MoError(f"{result.failed} events not acknowledged by the broker: {result.error}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.uses_embedded_kafka:
        try:
            ensure_broker(settings)
        except MoError as exc:  # the loop waits for it like for any outage
            click.echo(f"warning: {exc}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    source = engine.url.render_as_string(hide_password=True)
    click.echo(f"outbox relay: {source} -> {settings.resolved_kafka_bootstrap}")
    stats = run_relay(
        engine, settings, batch_size=batch_size, poll_interval_s=poll_interval, max_backoff_s=max_backoff, stop=stop
    )
    click.echo(f"outbox relay stopped: {stats.published} events published in {stats.passes} passes")


@outbox.command("status")
def outbox_status_cmd() -> None:
    """Events waiting in the outbox and the relay lag (age of the oldest waiting event), as JSON."""
    from mo.events.relay import require_outbox
    from mo.oltp.db import check_connection, make_engine
    from mo.oltp.outbox import outbox_status

    engine = make_engine(get_settings().resolved_source_url)
    check_connection(engine)
    require_outbox(engine)
    _echo_json(outbox_status(engine).as_dict())


@cli.group()
def hot() -> None:
    """Hot contact records in Redis: consent, complaints, quiet hours, erasure, as campaign dispatch checks them."""


@hot.command("refresh")
def hot_refresh_cmd() -> None:
    """Remake the hot records of customers whose consents, complaints or preferences changed in the source since
    the last refresh (changes made outside the API); the first refresh remakes them all."""
    from mo.hot_record import refresh_changed
    from mo.oltp.db import check_connection, make_engine
    from mo.serving_store.redis_store import close_redis, connect_redis

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    import redis

    client = connect_redis(settings)
    try:
        with engine.connect() as conn:
            written = refresh_changed(conn, client, settings.redis_prefix)
    except redis.RedisError as exc:
        raise MoError(f"Redis unreachable for the hot records ({settings.redis_url or 'embedded'}): {exc}") from None
    finally:
        close_redis(client)
    click.echo(f"hot records refreshed: {written}")


@hot.command("rebuild")
@click.option("--customer", "customers", type=ROW_ID, multiple=True, help="Only these customers")
def hot_rebuild_cmd(customers: tuple[int, ...]) -> None:
    """Remake hot records from the source database (after Redis lost its data, or changes made outside the API)."""
    from mo.hot_record import rebuild
    from mo.oltp.db import check_connection, make_engine
    from mo.serving_store.redis_store import close_redis, connect_redis

    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    import redis

    client = connect_redis(settings)
    try:
        with engine.connect() as conn:
            written = rebuild(conn, client, settings.redis_prefix, customers or None)
    except redis.RedisError as exc:
        raise MoError(f"Redis unreachable for the hot records ({settings.redis_url or 'embedded'}): {exc}") from None
    finally:
        close_redis(client)
        engine.dispose()
    click.echo(f"{written} hot record{'s' if written != 1 else ''} rebuilt under '{settings.redis_prefix}:hot:'")


@cli.group()
def campaigns() -> None:
    """Campaign dispatch, the contact ledger (decisions about every touch), funnels and the evidence a regulator
    asks for."""


@campaigns.command("dispatch")
@click.option("--once", is_flag=True, help="One round, then exit (the round's report as JSON)")
@click.option(
    "--interval", type=FiniteRange(min=lease_limits.INTERVAL_MIN_S, max=lease_limits.INTERVAL_MAX_S),
    default=15.0, show_default=True, help="Seconds between rounds (the lease lasts at least three of them)",
)  # fmt: skip
@click.option(
    "--lease", "lease_s", type=FiniteRange(min=lease_limits.LEASE_MIN_S, max=lease_limits.LEASE_MAX_S),
    default=60.0, show_default=True,
    help="Seconds a dispatcher's lease lasts unrenewed: a second dispatcher waits, and takes over this long after "
    "the first stops",
)  # fmt: skip
def campaigns_dispatch_cmd(once: bool, interval: float, lease_s: float) -> None:
    """The dispatcher: due campaigns' audiences frozen, every touch decided once, sends produced to Kafka; until
    stopped (SIGTERM, Ctrl-C). One decides at a time (a lease in the source database): a second one started
    beside it waits, as a standby."""
    import logging
    import signal
    import threading

    from mo.campaigns.dispatch import DispatchLease, require_campaign_tables, run_forever, run_round
    from mo.campaigns.lease_limits import lease_ttl
    from mo.channels.messages import send_producer
    from mo.oltp.db import check_connection, make_engine
    from mo.serving_store import open_store
    from mo.serving_store.redis_store import close_redis, connect_redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    require_campaign_tables(engine)
    store = open_store(settings)
    client = connect_redis(settings)
    producer = send_producer(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    lease = DispatchLease(engine, ttl_s=lease_ttl(lease_s, interval))

    def one_round():  # type: ignore[no-untyped-def]
        return run_round(engine, client, store, settings, producer=producer, lease=lease)

    try:
        if once:
            _echo_json(one_round().as_dict())
        else:
            run_forever(one_round, interval_s=interval, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        if lease.held:
            lease.release()
        producer.close(timeout=5)
        close_redis(client)
        store.dispose()
        engine.dispose()


@campaigns.command("funnel")
@click.argument("campaign_id", type=ROW_ID)
@click.option("--attribution-days", type=click.IntRange(min=1, max=365), default=30, show_default=True)
def campaigns_funnel_cmd(campaign_id: int, attribution_days: int) -> None:
    """A campaign's live funnel from the contact ledger: audience, suppressed by reason, delivery states,
    conversions and the uplift over the holdout with its 95% interval."""
    from mo.campaigns.dispatch import require_campaign_tables
    from mo.campaigns.results import campaign_funnel
    from mo.oltp.db import check_connection, make_engine

    engine = make_engine(get_settings().resolved_source_url)
    check_connection(engine)
    require_campaign_tables(engine)
    try:
        with engine.connect() as conn:
            funnel = campaign_funnel(conn, campaign_id, attribution_days=attribution_days)
    finally:
        engine.dispose()
    if funnel is None:
        raise MoError(f"campaign {campaign_id} not found")
    _echo_json(funnel.as_dict())


@campaigns.command("evidence")
@click.option("--customer", "customer_id", type=ROW_ID, required=True)
@click.option(
    "--from",
    "since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    required=True,
    help="Start of the period (UTC, inclusive)",
)
@click.option(
    "--to",
    "until",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    required=True,
    help="End of the period (UTC, exclusive)",
)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
def campaigns_evidence_cmd(customer_id: int, since, until, fmt: str) -> None:  # fmt: skip
    """Every touch to a customer decided in a period, with the consent evidence and the rule results at decision
    time (audited as an export: actor cli:<user>)."""
    import getpass
    import uuid

    from mo.campaigns import ledger
    from mo.oltp.db import check_connection, make_engine

    if until <= since:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    settings = get_settings()
    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    try:
        with engine.begin() as conn:
            rows = ledger.evidence(conn, customer_id, since, until)
            ledger.record_export(
                conn,
                actor=f"cli:{getpass.getuser()}",
                role=None,
                request_id=f"cli-{uuid.uuid4()}",
                customer_id=customer_id,
                resource="mo campaigns evidence",
                detail=f"format={fmt} from={since.isoformat()} to={until.isoformat()} rows={len(rows)}",
            )
    finally:
        engine.dispose()
    click.echo(ledger.to_csv(rows) if fmt == "csv" else ledger.to_json(rows), nl=fmt == "json")


@cli.command()
@click.option("--table", "tables", multiple=True, help="Sync only these tables (default: all contracts)")
@click.option(
    "--full-gate",
    is_flag=True,
    help="Validate every table whole (default: only the rows this run changed, whole tables once a day)",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Read the tables whole, not from their watermark: reconciles silver with rows deleted in the source "
    "without a soft delete or changed without a new updated_at (default: all tables; limit with --table)",
)
def sync(tables: tuple[str, ...], full_gate: bool, full_refresh: bool) -> None:
    """Sync source tables into bronze and silver (incremental, gated, idempotent)."""
    from mo.contracts import load_source_contracts
    from spark_jobs.session import get_spark
    from spark_jobs.sync import check_sync_config, run_sync

    settings = get_settings()
    refresh = (list(tables) or list(load_source_contracts())) if full_refresh else []
    check_sync_config(settings, list(tables) or None, full_refresh=refresh)  # one line, before a JVM starts
    spark = get_spark(settings)
    report = run_sync(spark, settings, tables=list(tables) or None, full_gate=full_gate, full_refresh=refresh)
    _echo_json(report)


@cli.command()
@click.option("--table", "tables", multiple=True, help="Reconcile only these tables (default: all contracts)")
@click.option(
    "--repair",
    is_flag=True,
    help="Re-sync the differing ids through the gated full-refresh path (bronze, merge, gate, publish)",
)
def reconcile(tables: tuple[str, ...], repair: bool) -> None:
    """Compare silver with the source by content (row hashes over id ranges); list or repair what differs."""
    from spark_jobs.reconcile import reconcile as run_reconcile
    from spark_jobs.session import get_spark
    from spark_jobs.sync import _contracts

    settings = get_settings()
    _contracts(list(tables) or None, None)  # an unknown table is one line, before Spark starts
    if repair:
        settings.require_pii_key()
    _echo_json(run_reconcile(get_spark(settings), settings, list(tables) or None, repair=repair))


@cli.command()
@click.option("--table", "tables", multiple=True, help="Maintain only these tables (default: all contracts)")
@click.option("--force", is_flag=True, help="Run even if the last maintenance is recent")
def maintain(tables: tuple[str, ...], force: bool) -> None:
    """Compact lake tables, apply merge-on-read deletes and expire old snapshots (when due)."""
    from spark_jobs.maintenance import maintain_lake
    from spark_jobs.session import get_spark

    settings = get_settings()
    _echo_json(maintain_lake(get_spark(settings), settings, list(tables) or None, force=force))


@cli.command("build-profiles")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Reference date (default today)")
@click.option("--run-id", default=None, help="Segment run id (default build-<as-of>)")
def build_profiles_cmd(as_of, run_id: str | None) -> None:
    """dbt marts, tags and segments, the marts gate, and an atomic publish to the serving store."""
    from mo.profiles import build_profiles

    _echo_json(build_profiles(get_settings(), as_of.date() if as_of else None, run_id))


@cli.command("publish")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Reference date (default today)")
def publish_cmd(as_of) -> None:
    """Publish the current marts and memberships to the serving store (atomic swap)."""
    from mo.profiles import publish_serving

    _echo_json(publish_serving(get_settings(), as_of.date() if as_of else None, published_by=getpass.getuser()))


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
@click.option(
    "--check",
    is_flag=True,
    help="Exit with status 1 when the report lists problems (for monitoring): the source unreachable, stale "
    "silver, a sync run that stopped on a table or died, broker or serving store down, events waiting beyond "
    "MO_EVENTS_MAX_WAITING.",
)
def status(as_json: bool, check: bool) -> None:
    """Health of the platform: live row counts per table in source, bronze and silver, last sync, problems."""
    from mo.status import collect_status, format_status

    report = collect_status(get_settings())
    if as_json:
        _echo_json(report)
    else:
        click.echo(format_status(report))
    if check and report["problems"]:
        raise SystemExit(1)


@cli.command("airflow")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API server and UI listen on")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def airflow_cmd(host: str, port: int) -> None:
    """Run Airflow with the project's DAGs (UI, scheduler, DAG processor, triggerer) until Ctrl-C.

    Login: MO_AIRFLOW_USER (default admin) and MO_AIRFLOW_PASSWORD (required).
    """
    from mo.airflow_local import serve

    raise SystemExit(serve(get_settings(), host=host, port=port, echo=click.echo))


@cli.group()
def segments() -> None:
    """Segment definitions, membership per run and explanations."""


@segments.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def segments_validate(path: Path) -> None:
    """Check a segment definition file, a folder of them, or a bare rule file; list every problem."""
    from mo.segments.definitions import check_path

    for line in check_path(path):
        click.echo(line)


@segments.command("compile")
@click.argument("rule_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dialect", type=click.Choice(["spark", "postgresql", "sqlite"]), default="spark", show_default=True)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Reference date (default today)")
def segments_compile(rule_file: Path, dialect: str, as_of) -> None:
    """Print the SQL and bound parameters a rule (or a dynamic definition's rule) compiles to."""
    from mo.segments.compiler import compile_rule
    from mo.segments.rules import load_rule_file

    document = load_rule_file(rule_file)
    rule = document["rule"] if isinstance(document, dict) and "kind" in document else document
    day = as_of.date() if as_of else dt.datetime.now(dt.UTC).date()
    compiled = compile_rule(rule, dialect=dialect, as_of=day)  # type: ignore[arg-type]
    _echo_json(
        {"where_sql": compiled.where_sql, "params": compiled.params, "clauses": [c.reason for c in compiled.clauses]}
    )


@segments.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
def segments_import(folder: Path | None) -> None:
    """Import definition files (default: schemas/segments/examples) into the definition store (core database).

    A new version where a file changed; a segment edited through the API since keeps the API's versions."""
    from mo.oltp.db import make_engine
    from mo.segments.store import import_folder

    engine = make_engine(get_settings().resolved_source_url)
    try:
        report = import_folder(engine, folder, imported_by=f"file:{getpass.getuser()}"[:80])
    finally:
        engine.dispose()
    for line in report.lines():
        click.echo(line)


@segments.command("refresh")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Definitions folder imported into the store first (default: schemas/segments/examples)",
)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Reference date (default today)")
@click.option("--run-id", default=None, help="Run id (default manual-<as-of>); re-running it replaces its rows")
def segments_refresh(folder: Path | None, as_of, run_id: str | None) -> None:
    """Evaluate every active segment of the definition store (static, dynamic, smart) on the marts and write
    the run's membership; the folder's files are imported into the store first."""
    from mo.segments.membership import refresh_from_folder

    report = refresh_from_folder(
        get_settings(), folder, as_of=as_of.date() if as_of else None, run_id=run_id, created_by=getpass.getuser()
    )
    for s in report.segments:
        size = "skipped" if s.members is None else f"{s.members} customers"
        click.echo(f"{s.segment_id} v{s.version} ({s.kind}): {size}{' - ' + s.note if s.note else ''}")


@segments.command("train")
@click.argument("model", default="renewal")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Reference date (default today)")
@click.option("--max-age-days", type=int, default=None, help="Reuse a version trained within N days before as-of")
def segments_train(model: str, as_of, max_age_days: int | None) -> None:
    """Train (or reuse) a propensity model, record its holdout AUC, and score every customer."""
    from mo.segments.smart import train_and_score

    record, scores = train_and_score(
        get_settings(),
        model,
        as_of=as_of.date() if as_of else None,
        max_age_days=max_age_days,
        trained_by=getpass.getuser(),
    )
    auc = f"{record.auc:.3f}" if record.auc is not None else "n/a"
    click.echo(
        f"{record.label}: AUC {auc} on {record.rows_holdout} holdout rows ({record.rows_train} train); "
        f"{scores.customers} customers scored for {scores.as_of}"
    )


@segments.command("upload-static")
@click.argument("segment_id")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def segments_upload_static(segment_id: str, csv_path: Path) -> None:
    """Freeze a CSV of customer ids (header customer_id) as a static segment's new snapshot."""
    from mo.segments.membership import upload_static
    from spark_jobs.session import get_spark

    settings = get_settings()
    upload = upload_static(get_spark(settings), settings, segment_id, csv_path, uploaded_by=getpass.getuser())
    click.echo(
        f"{segment_id}: snapshot {upload.snapshot_id} with {upload.members} customers "
        f"({upload.duplicates} repeated ids dropped)"
    )
    if upload.unknown_ids:
        shown = ", ".join(map(str, upload.unknown_ids[:20]))
        click.echo(f"{len(upload.unknown_ids)} ids not in customer_profile, left out: {shown}", err=True)


@segments.command("members")
@click.argument("segment_id")
@click.option("--at", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Date (default today)")
def segments_members(segment_id: str, at) -> None:
    """Customer ids of the latest run on or before a date."""
    from mo.segments.membership import members_at
    from spark_jobs.session import get_spark

    settings = get_settings()
    day = at.date() if at else dt.datetime.now(dt.UTC).date()
    members = members_at(get_spark(settings), settings, segment_id, day)
    click.echo(
        f"# {segment_id} v{members.segment_version}, run {members.run_id}, as of {members.as_of_date}: "
        f"{len(members.customer_ids)} customers"
    )
    for customer_id in members.customer_ids:
        click.echo(customer_id)


@segments.command("explain")
@click.argument("segment_id")
@click.argument("customer_id", type=int)
@click.option("--at", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Date (default: latest run)")
def segments_explain(segment_id: str, customer_id: int, at) -> None:
    """Why a customer is (or is not) in a segment: the rule clauses that held in that run."""
    from mo.segments.membership import explain
    from spark_jobs.session import get_spark

    settings = get_settings()
    click.echo(str(explain(get_spark(settings), settings, segment_id, customer_id, at.date() if at else None)))


@segments.command("history")
@click.argument("segment_id")
def segments_history(segment_id: str) -> None:
    """Every stored version of a segment definition."""
    from mo.segments.definitions import definition_history
    from spark_jobs.session import get_spark

    settings = get_settings()
    for stored in definition_history(get_spark(settings), settings, segment_id):
        click.echo(
            f"v{stored.version} {stored.created_at:%Y-%m-%d %H:%M} {stored.created_by}: "
            f"{stored.definition.canonical_json()}"
        )


@cli.group()
def channels() -> None:
    """Channel delivery: the provider sandbox and the channel workers."""


@channels.group("sandbox")
def channels_sandbox() -> None:
    """The provider sandbox (WeChat, Aliyun SMS, JPush, WeChat Pay coupons) for development and tests."""


@channels_sandbox.command("start")
def channels_sandbox_start() -> None:
    from mo.channels.sandbox import start_detached

    click.echo(start_detached(get_settings()))


@channels_sandbox.command("stop")
def channels_sandbox_stop() -> None:
    from mo.channels.sandbox import stop_detached

    click.echo("stopped" if stop_detached(get_settings()) else "not running")


@channels_sandbox.command("status")
def channels_sandbox_status() -> None:
    from mo.channels.sandbox import status

    _echo_json(status(get_settings()))


@channels.command("worker")
@click.option("--channel", type=click.Choice(["sms", "wechat", "push", "coupon"]), default=None,
              help="Deliver only this channel (its own consumer group); all channels without.")  # fmt: skip
@click.option("--once", is_flag=True, help="Stop when the sends topic has nothing more for this group.")
def channels_worker(channel: str | None, once: bool) -> None:
    import logging
    import signal
    import threading

    from mo.channels.worker import ChannelWorker
    from mo.oltp.db import make_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    settings.require_channel_secrets()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = ChannelWorker(settings, make_engine(settings.resolved_source_url), channel=channel)
    try:
        stats = worker.run(once=once, stop=stop)
    except KeyboardInterrupt:
        stats = worker.stats
    _echo_json(stats.as_dict())


@cli.group()
def dashboards() -> None:
    """Superset dashboards: analytics marts, the bundle in dashboards/bundles, the server (make dashboards)."""


def _has_lake(settings) -> bool:
    from mo.lake_sql import has_lake

    return has_lake(settings)


@dashboards.command("publish")
@click.option(
    "--lake/--no-lake", default=None, help="Read the lake for the platform health figures (default: if one exists)"
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The refresh's date (default: today; the claims SLA date is the build's, `mo build-profiles --as-of`)",
)
def dashboards_publish(lake: bool | None, as_of) -> None:
    """Compute the analytics marts and publish them atomically (schema `analytics`)."""
    from mo.analytics import publish_analytics

    settings = get_settings()
    with_lake = _has_lake(settings) if lake is None else lake
    result = publish_analytics(
        settings, with_lake=with_lake, as_of=as_of.date() if as_of else None, published_by=getpass.getuser()
    )
    _echo_json({"refresh_id": result.refresh_id, "as_of": result.as_of, "rows": result.row_counts})


@dashboards.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=8088, show_default=True)
@click.option("--publish/--no-publish", default=True, help="Publish the analytics marts first")
@click.option(
    "--users-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Accounts to create, JSON lines {username, role, org, password} (org: that organisation's subtree only)",
)
@click.option(
    "--lake-sql/--no-lake-sql",
    default=None,
    help="Start the lake's SQL endpoint for SQL Lab (a JVM, MO_LAKE_SQL_MEMORY heap; default MO_LAKE_SQL_SERVER, "
    "when a lake exists)",
)
def dashboards_up(port: int, publish: bool, users_file: Path | None, lake_sql: bool | None) -> None:
    """Publish the marts, set Superset up (metadata DB, admin, roles, bundle, grants) and serve it in the background."""
    from mo.analytics import publish_analytics
    from mo.dashboards import login_hint, setup_superset, start_superset

    settings = get_settings()
    if publish:
        if (settings.home / "source.db").exists() or settings.source_url:
            result = publish_analytics(settings, with_lake=_has_lake(settings), published_by=getpass.getuser())
            click.echo(f"analytics marts published (refresh {result.refresh_id}, as of {result.as_of})")
        else:
            click.echo("no source database yet (`make demo` builds one): the dashboards start empty")
    users = None
    if users_file is not None:
        users = [json.loads(line) for line in users_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    setup_superset(settings, users=users)
    _start_lake_sql(settings, lake_sql)
    url = start_superset(settings, port=port)
    click.echo(f"Superset: {url}/dashboard/list/  ({login_hint(settings)}; `make dashboards-stop` stops it)")


def _start_lake_sql(settings, wanted: bool | None) -> None:
    from mo.lake_sql import bring_up

    ok, line = bring_up(settings, wanted)
    click.echo(line, err=not ok)


@dashboards.command("down")
def dashboards_down() -> None:
    """Stop the Superset `mo dashboards up` started (and the lake's SQL endpoint it started)."""
    from mo.dashboards import stop_superset
    from mo.lake_sql import stop

    settings = get_settings()
    click.echo("Superset stopped" if stop_superset(settings) else "no Superset started by `make dashboards` is running")
    if stop(settings):
        click.echo("lake SQL server stopped")


def _superset(url: str):
    from mo.dashboards import Superset, admin_login

    user, password = admin_login()
    return Superset(url, user, password)


@dashboards.command("import")
@click.option("--url", default="http://127.0.0.1:8088", show_default=True, help="Superset's address")
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None)
def dashboards_import(url: str, bundle: Path | None) -> None:
    """Check the bundle and import it into a running Superset (idempotent: objects are matched by uuid)."""
    from mo.dashboards import BUNDLE_DIR, import_dashboards, reader_url
    from mo.lake_sql import lake_url

    settings = get_settings()
    _echo_json(import_dashboards(_superset(url), reader_url(settings), bundle or BUNDLE_DIR, lake_url(settings)))


@dashboards.command("export")
@click.option("--url", default="http://127.0.0.1:8088", show_default=True, help="Superset's address")
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False), default=None)
def dashboards_export(url: str, bundle: Path | None) -> None:
    """Write every dashboard back into the bundle (canonical YAML): a change made in the UI becomes a diff."""
    from mo.dashboards import BUNDLE_DIR, export_dashboards

    changed = export_dashboards(_superset(url), bundle or BUNDLE_DIR)
    click.echo("\n".join(changed) if changed else "the bundle is up to date")


@dashboards.command("add-user")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["analyst", "marketer", "admin"]), required=True)
@click.option("--org", type=int, default=None, help="Organisation id: the user sees that organisation's subtree only")
def dashboards_add_user(username: str, role: str, org: int | None) -> None:
    """Create or update a Superset user with the product role (password: MO_SUPERSET_USER_PASSWORD or a prompt)."""
    import os

    from mo.dashboards import setup_superset

    password = os.environ.get("MO_SUPERSET_USER_PASSWORD") or click.prompt("password", hide_input=True)
    setup_superset(get_settings(), users=[{"username": username, "role": role, "org": org, "password": password}])
    click.echo(f"user {username} ({role}{f', organisation {org}' if org else ''}) ready")


@dashboards.command("audit-sync")
@click.option(
    "--every", type=click.IntRange(5, 3600), default=None, help="Repeat every N seconds until stopped (as `sync`)"
)
def dashboards_audit_sync(every: int | None) -> None:
    """Copy Superset's dashboard views, SQL Lab queries and exports into the platform's audit log (idempotent)."""
    from mo.dashboards_audit import sync_audit_for

    if every is None:
        _echo_json(sync_audit_for(get_settings()).as_dict())
        return
    _run_dashboards_sync(audit_every=every, users_every=None)


@dashboards.command("sync-users")
def dashboards_sync_users() -> None:
    """Create, update and deactivate Superset users from the serving API's accounts (audited; no password copied)."""
    from mo.dashboards_users import sync_users

    changes = sync_users(get_settings())
    click.echo(
        "\n".join(json.dumps(c, ensure_ascii=False) for c in changes) if changes else "Superset's users are up to date"
    )


@dashboards.command("sync")
@click.option(
    "--audit-every",
    type=click.IntRange(0, 86400),
    default=60,
    show_default=True,
    help="Seconds between audit copies (0: off)",
)
@click.option(
    "--users-every",
    type=click.IntRange(0, 86400),
    default=300,
    show_default=True,
    help="Seconds between user syncs (0: off)",
)
def dashboards_sync(audit_every: int, users_every: int) -> None:
    """Keep the audit copy and Superset's users in step until stopped (SIGTERM, Ctrl-C); a failed round is
    logged and retried at its next turn (the compose service dashboards-sync)."""
    _run_dashboards_sync(audit_every=audit_every or None, users_every=users_every or None)


def _run_dashboards_sync(*, audit_every: int | None, users_every: int | None) -> None:
    """The periodic jobs of mo.dashboards_sync until SIGTERM or Ctrl-C; a failed round is logged and retried."""
    import logging
    import signal
    import threading

    from mo.dashboards_sync import run_loop, sync_jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        jobs = sync_jobs(get_settings(), audit_every=audit_every, users_every=users_every)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_loop(jobs, stop)


@cli.group()
def lake() -> None:
    """The lake's SQL endpoint for SQL Lab (mo.lake_sql)."""


@lake.group("sql-server")
def lake_sql_server() -> None:
    """Spark's Thrift server in local mode over the jobs' Iceberg catalog, on 127.0.0.1:MO_LAKE_SQL_PORT."""


@lake_sql_server.command("start")
def lake_sql_server_start() -> None:
    """Start it in the background (idempotent); prints its status once it listens."""
    from mo.lake_sql import start, status_dict

    settings = get_settings()
    start(settings)
    _echo_json(status_dict(settings))


@lake_sql_server.command("stop")
def lake_sql_server_stop() -> None:
    from mo.lake_sql import stop

    click.echo("lake SQL server stopped" if stop(get_settings()) else "no lake SQL server is running")


@lake_sql_server.command("status")
def lake_sql_server_status() -> None:
    from mo.lake_sql import status_dict

    _echo_json(status_dict(get_settings()))


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
