"""Accounts and set-up of the serving API from the command line: ``python -m app.cli COMMAND``.

- ``migrate``: bring the core systems' database (the source) to the schema the API needs (idempotent);
- ``create-user USERNAME --role R``: a staff user; the password from ``SERVING_USER_PASSWORD``;
- ``create-client CLIENT_ID --role R``: an app client; the secret from ``SERVING_CLIENT_SECRET``;
- ``bootstrap-admin``: the first admin, from ``SERVING_ADMIN_USER`` and ``SERVING_ADMIN_PASSWORD``
  (does nothing when that user exists);
- ``grant-logins --api-user U --relay-user R --dispatch-user D --channels-user C``: after ``migrate``, as the
  source's owner: the API's login may insert and update exactly the tables the API writes (API_WRITES; it reads
  everything, granted when the login was created), the outbox relay's login may read and mark the outbox, the
  campaign dispatcher's and the channel workers' logins may read and write exactly their tables
  (DISPATCH_WRITES, CHANNEL_WRITES: they are created with no table access at all); ``--dashboards-user D``: the
  dashboards-sync service's login, the audit log and the staff accounts' roles (DASHBOARDS_SYNC_WRITES);
- ``bootstrap-demo``: development only: a demo admin and a demo app client with fresh random secrets,
  written to a file under MO_HOME readable by its owner only (``make serve`` and ``make demo``).

Secrets come only from the environment, never from arguments (which other users of the machine can read
in the process list) and never from code. A missing one, like any refusal, is one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

import click
from pydantic import ValidationError
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.core.config import Settings, get_settings
from app.core.errors import ApiError
from app.core.roles import Role
from app.core.security import hash_secret, verify_secret
from app.core.stores import source_engine
from app.services import accounts
from app.services.audit import utcnow

DEMO_ADMIN = "demo-admin"
DEMO_CLIENT = "demo-app"
DEMO_CREDENTIALS = "serving-demo-credentials.json"
ROLES = click.Choice([r.value for r in Role])

# What the API's own login may change in the source, table by table; everything else it may only read.
# A route that writes a new table adds it here, or its writes are refused in production (the compose
# stack's serving-init grants these after each migration). No DELETE anywhere: the API never deletes.
API_WRITES: dict[str, tuple[str, ...]] = {
    "audit_log": ("INSERT",),  # append-only: triggers refuse UPDATE and DELETE even to the owner
    "idempotency_keys": ("INSERT", "UPDATE"),
    "staff_users": ("INSERT", "UPDATE"),  # the accounts API (admins), failed logins and lockout
    "api_clients": ("INSERT", "UPDATE"),  # the accounts API: clients created, disabled, secrets rotated
    "outbox": ("INSERT",),
    "claims": ("INSERT", "UPDATE"),
    "claim_documents": ("INSERT",),
    "claim_status_history": ("INSERT",),
    "consents": ("INSERT", "UPDATE"),
    "consent_evidence": ("INSERT",),
    "contact_preferences": ("INSERT", "UPDATE"),
    "complaints": ("INSERT", "UPDATE"),
    "complaint_handling": ("INSERT", "UPDATE"),
    "erasure_requests": ("INSERT", "UPDATE"),
    # segments for marketers (versions are appended, the segment row keeps the latest and the archive flag)
    "segments": ("INSERT", "UPDATE"),
    "segment_definitions": ("INSERT",),
    "segment_static_members": ("INSERT",),
    # campaigns: drafts, edits and lifecycle moves; the events are append-only
    "campaigns": ("INSERT", "UPDATE"),
    "campaign_events": ("INSERT",),
    # provider receipts (webhooks) and tracked clicks: append-only delivery states
    "contact_deliveries": ("INSERT",),
    "early_receipts": ("INSERT",),  # receipts that overtook the worker's sent write, applied when it lands
}
# The relay reads waiting events (SELECT ... FOR UPDATE SKIP LOCKED) and marks them published.
RELAY_WRITES: dict[str, tuple[str, ...]] = {"outbox": ("SELECT", "UPDATE")}

# The campaign dispatcher (`mo campaigns dispatch`, mo/campaigns/dispatch.py): everything it may touch, reads
# included (its login starts with none). Of the customers it reads only what the send decision needs: the risk
# rating, whether an app user or a WeChat openid exists, the erasure mark; never the name, ID number or phone.
# Claiming due campaigns is SELECT ... FOR UPDATE SKIP LOCKED, which locks rows: SELECT and UPDATE on campaigns.
DISPATCH_WRITES: dict[str, tuple[str, ...]] = {
    "campaigns": ("SELECT", "UPDATE"),  # the claim, next_run_at, start and complete
    "campaign_events": ("INSERT",),  # start and complete, like a person's move (append-only)
    "campaign_occurrences": ("SELECT", "INSERT", "UPDATE"),
    "campaign_audience": ("SELECT", "INSERT"),  # the frozen audience, insert-missing only
    "contact_ledger": ("SELECT", "INSERT"),  # one final decision per touch (append-only)
    "holdout_assignments": ("SELECT", "INSERT", "UPDATE"),  # INSERT ... ON DUPLICATE KEY UPDATE needs UPDATE
    "contact_deliveries": ("INSERT",),  # a send whose template cannot be rendered is recorded failed
    "short_links": ("SELECT", "INSERT"),  # the short codes of SMS tracked links (insert-missing)
    "dispatch_leases": ("SELECT", "INSERT", "UPDATE"),  # one dispatcher decides at a time
    "audit_log": ("INSERT",),
    "outbox": ("INSERT",),  # campaign_status_changed
    # what a send decision rests on (hot records are refreshed from the same tables)
    "customers": ("SELECT (id, risk_rating, app_user_id, wechat_openid, deleted_at)",),
    "consents": ("SELECT",),
    "consent_evidence": ("SELECT",),
    "contact_preferences": ("SELECT",),
    "erasure_requests": ("SELECT",),
    "complaints": ("SELECT",),
    "claims": ("SELECT",),
    "policies": ("SELECT",),  # the renewal cycle of a holdout
    "products": ("SELECT",),  # the offer's facts and risk level
    # the segment a campaign pinned (the definition store)
    "segments": ("SELECT",),
    "segment_definitions": ("SELECT",),
    "segment_static_members": ("SELECT",),
}
# Channel workers (`mo channels worker`, mo/channels/worker.py): a message's delivery states, and the recipient's
# address read at send time. Clear PII: the phone number (SMS), the WeChat openid, the app user id; of the PII
# tables only these columns of customers, never the name or ID number.
CHANNEL_WRITES: dict[str, tuple[str, ...]] = {
    "contact_deliveries": ("SELECT", "INSERT"),  # queued, sent, failed, dead_letter (append-only)
    "early_receipts": ("SELECT",),  # receipts that overtook its sent write, applied once it is recorded
    "customers": ("SELECT (id, phone, wechat_openid, app_user_id, deleted_at)",),
}
# The dashboards-sync service (`mo dashboards sync`, mo/dashboards_sync.py): the audit copy reads its watermark in
# the audit log and appends Superset's entries (append-only: no UPDATE, no DELETE); the user sync reads the staff
# accounts' names, roles, organisations and disabled flags (never a password hash) and audits its changes.
DASHBOARDS_SYNC_WRITES: dict[str, tuple[str, ...]] = {
    "audit_log": ("SELECT", "INSERT"),
    "staff_users": ("SELECT (username, display_name, role, org_id, disabled)",),
}


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def secret_from_env(name: str, what: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        fail(f"{name} is not set: {what} comes from the environment only")
    return value


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        fail("; ".join(str(e.get("msg", e)).removeprefix("Value error, ") for e in exc.errors()))


def open_source(settings: Settings) -> Engine:
    return source_engine(settings)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return exc.detail + "".join(f" ({e.field.rsplit('/', 1)[-1]}: {e.message})" for e in exc.errors)
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return str(orig or exc).splitlines()[0]
    return str(exc)


@click.group()
def cli() -> None:
    """Accounts and set-up of the serving API."""


@cli.command()
def migrate() -> None:
    """Bring the source database's schema to the latest revision (nothing to do when it is there)."""
    from mo.oltp.db import migrate as migrate_source

    settings = load_settings()
    engine = open_source(settings)
    try:
        migrate_source(engine)
    except Exception as exc:  # the platform's errors name the database and the cause
        fail(f"could not migrate {engine.url.render_as_string(hide_password=True)}: {_describe(exc)}")
    finally:
        engine.dispose()
    click.echo(f"source schema up to date: {engine.url.render_as_string(hide_password=True)}")


def _create_user(settings: Settings, username: str, password: str, role: str, **scope: int | None) -> None:
    engine = open_source(settings)
    try:
        with engine.begin() as conn:
            accounts.create_user(conn, username=username, password=password, role=role, **scope)
    except IntegrityError:
        fail(f"user '{username}' exists")
    except (ApiError, SQLAlchemyError) as exc:
        fail(f"user '{username}' not created: {_describe(exc)}")
    finally:
        engine.dispose()


@cli.command("create-user")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@click.option("--org-id", type=int, help="Organisation subtree the user sees (default: the whole company)")
@click.option("--agent-id", type=int, help="Only this agent's customers")
def create_user_cmd(username: str, role: str, org_id: int | None, agent_id: int | None) -> None:
    """A staff user; the password comes from SERVING_USER_PASSWORD (at least 12 characters)."""
    password = secret_from_env("SERVING_USER_PASSWORD", "the new user's password")
    _create_user(load_settings(), username, password, role, org_id=org_id, agent_id=agent_id)
    click.echo(f"user '{username}' created with role {role}")


@cli.command("create-client")
@click.argument("client_id")
@click.option("--role", type=ROLES, default=Role.APP.value, show_default=True)
@click.option("--org-id", type=int)
@click.option("--agent-id", type=int, help="An agent app: only this agent's customers")
@click.option("--rate-limit", type=click.IntRange(min=1), help="Requests per minute (default: the service's)")
def create_client_cmd(
    client_id: str, role: str, org_id: int | None, agent_id: int | None, rate_limit: int | None
) -> None:
    """An app client (OAuth2 client credentials); the secret comes from SERVING_CLIENT_SECRET."""
    secret = secret_from_env("SERVING_CLIENT_SECRET", "the client's secret")
    if len(secret) < 24:
        fail("SERVING_CLIENT_SECRET is shorter than 24 characters")
    settings = load_settings()
    engine = open_source(settings)
    try:
        with engine.begin() as conn:
            accounts.create_client(
                conn,
                client_id=client_id,
                role=role,
                secret=secret,
                org_id=org_id,
                agent_id=agent_id,
                rate_limit_per_minute=rate_limit,
            )
    except IntegrityError:
        fail(f"client '{client_id}' exists")
    except (ApiError, SQLAlchemyError) as exc:
        fail(f"client '{client_id}' not created: {_describe(exc)}")
    finally:
        engine.dispose()
    click.echo(f"client '{client_id}' created with role {role}")


@cli.command("bootstrap-admin")
def bootstrap_admin() -> None:
    """The first admin from SERVING_ADMIN_USER and SERVING_ADMIN_PASSWORD; an existing user is left as it is."""
    username = secret_from_env("SERVING_ADMIN_USER", "the admin's user name")
    password = secret_from_env("SERVING_ADMIN_PASSWORD", "the admin's password")
    settings = load_settings()
    engine = open_source(settings)
    try:
        with engine.connect() as conn:
            exists = conn.execute(select(accounts.USERS.c.role).where(accounts.USERS.c.username == username)).first()
    finally:
        engine.dispose()
    if exists is not None:
        click.echo(f"user '{username}' exists (role {exists.role}): unchanged")
        return
    _create_user(settings, username, password, Role.ADMIN.value)
    click.echo(f"admin '{username}' created")


def grant_statements(
    engine: Engine,
    api_user: str,
    relay_user: str | None,
    *,
    dispatch_user: str | None = None,
    channels_user: str | None = None,
    dashboards_user: str | None = None,
) -> tuple[list[str], list[str]]:
    """GRANT statements for the tables that exist, and the listed tables that do not (yet)."""
    from sqlalchemy import inspect

    dialect = engine.dialect.name
    if dialect not in ("mysql", "mariadb", "postgresql"):
        raise ValueError(f"logins and grants need MariaDB or PostgreSQL, not {dialect}")
    existing = set(inspect(engine).get_table_names())
    preparer = engine.dialect.identifier_preparer

    def grantee(user: str) -> str:
        if not user.replace("_", "").isalnum():
            raise ValueError(f"login name {user!r}: letters, digits and _ only")
        return f"'{user}'@'%'" if dialect != "postgresql" else preparer.quote(user)

    statements, missing = [], []
    grants = [(api_user, API_WRITES)]
    for user, tables in (
        (relay_user, RELAY_WRITES),
        (dispatch_user, DISPATCH_WRITES),
        (channels_user, CHANNEL_WRITES),
        (dashboards_user, DASHBOARDS_SYNC_WRITES),
    ):
        if user:
            grants.append((user, tables))
    for user, tables in grants:
        for table, privileges in tables.items():
            if table not in existing:
                missing.append(table)
                continue
            statements.append(f"GRANT {', '.join(privileges)} ON {preparer.quote(table)} TO {grantee(user)}")
    return statements, sorted(set(missing))


@cli.command("grant-logins")
@click.option("--api-user", required=True, help="The API's login (created, with read access, by the database's init)")
@click.option("--relay-user", help="The outbox relay's login")
@click.option("--dispatch-user", help="The campaign dispatcher's login")
@click.option("--channels-user", help="The channel workers' login")
@click.option("--dashboards-user", help="The dashboards-sync service's login")
def grant_logins(
    api_user: str,
    relay_user: str | None,
    dispatch_user: str | None,
    channels_user: str | None,
    dashboards_user: str | None,
) -> None:
    """Let each login touch exactly the tables its service does (run after migrate, as the source's owner)."""
    settings = load_settings()
    engine = open_source(settings)
    try:
        statements, missing = grant_statements(
            engine,
            api_user,
            relay_user,
            dispatch_user=dispatch_user,
            channels_user=channels_user,
            dashboards_user=dashboards_user,
        )
        with engine.begin() as conn:
            # the DBAPI cursor without parameters: the driver must not read the '%' host as a placeholder
            cursor = conn.connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"grants not applied: {_describe(exc)}")
    finally:
        engine.dispose()
    absent = f"; tables not in this schema: {', '.join(missing)}" if missing else ""
    click.echo(f"{len(statements)} grants applied{absent}")


def _demo_accounts_valid(engine: Engine, saved: dict) -> bool:
    users, clients = accounts.USERS, accounts.CLIENTS
    with engine.connect() as conn:
        user = conn.execute(select(users.c.password_hash).where(users.c.username == DEMO_ADMIN)).first()
        client = conn.execute(select(clients.c.secret_hash).where(clients.c.client_id == DEMO_CLIENT)).first()
    return (
        user is not None
        and client is not None
        and verify_secret(user.password_hash, saved.get("admin", {}).get("password", ""))
        and verify_secret(client.secret_hash, saved.get("app_client", {}).get("client_secret", ""))
    )


def _set_demo_accounts(engine: Engine, password: str, client_secret: str) -> None:
    """Create the demo admin and app client, or give existing ones the new secrets (and unlock them)."""
    users, clients = accounts.USERS, accounts.CLIENTS
    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.username == DEMO_ADMIN)).first() is None:
            accounts.create_user(conn, username=DEMO_ADMIN, password=password, role=Role.ADMIN.value)
        else:
            conn.execute(
                update(users)
                .where(users.c.username == DEMO_ADMIN)
                .values(password_hash=hash_secret(password), failed_logins=0, locked_until=None, updated_at=utcnow())
            )
        if conn.execute(select(clients.c.id).where(clients.c.client_id == DEMO_CLIENT)).first() is None:
            accounts.create_client(
                conn, client_id=DEMO_CLIENT, name="Demo customer app", role=Role.APP.value, secret=client_secret
            )
        else:
            conn.execute(
                update(clients)
                .where(clients.c.client_id == DEMO_CLIENT)
                .values(secret_hash=hash_secret(client_secret), updated_at=utcnow())
            )


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


@cli.command("bootstrap-demo")
@click.option("--quiet", is_flag=True, help="Print only the credentials file's path")
def bootstrap_demo(quiet: bool) -> None:
    """Development only: a demo admin and a demo app client; credentials in MO_HOME, mode 0600.

    Reuses the accounts while the file's secrets still work, otherwise gives them new random ones."""
    settings = load_settings()
    if settings.environment != "development":
        fail(f"bootstrap-demo is for development only (SERVING_ENVIRONMENT={settings.environment})")
    path = settings.platform.home / DEMO_CREDENTIALS
    engine = open_source(settings)
    try:
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if not (saved and _demo_accounts_valid(engine, saved)):
            password, client_secret = secrets.token_urlsafe(18), secrets.token_urlsafe(32)
            _set_demo_accounts(engine, password, client_secret)
            saved = {
                "admin": {"username": DEMO_ADMIN, "password": password, "role": Role.ADMIN.value},
                "app_client": {"client_id": DEMO_CLIENT, "client_secret": client_secret, "role": Role.APP.value},
            }
            write_private(path, json.dumps(saved, indent=2) + "\n")
    except (ApiError, SQLAlchemyError, ValueError) as exc:
        fail(f"demo accounts not set up: {_describe(exc)}")
    finally:
        engine.dispose()
    if quiet:
        click.echo(str(path))
    else:
        click.echo(f"demo accounts ({DEMO_ADMIN}, app client {DEMO_CLIENT}): credentials in {path} (mode 0600)")


if __name__ == "__main__":
    cli()
