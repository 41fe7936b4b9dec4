"""Superset's side of `make dashboards`: run with Superset's own Python (dashboards/.venv), inside its app.

    python dashboards/bootstrap.py setup [--bundle DIR | --render BUNDLE] [--users]  # everything below, one process
    python dashboards/bootstrap.py render --bundle-source BUNDLE --out DIR   # the import zips (compose stack)
    python dashboards/bootstrap.py init        # metadata DB migrations, permissions, the admin, the roles
    python dashboards/bootstrap.py security    # after an import: grants on the Analytics database
    python dashboards/bootstrap.py add-user --username U --role analyst [--org N]   # password: stdin
    python dashboards/bootstrap.py sync-users   # the serving API's accounts as JSON lines on stdin
    python dashboards/bootstrap.py grant-sync --login L   # the dashboards-sync login's grants (setup does it too)

`setup` runs the migrations, init, the import of a bundle rendered by `mo dashboards render` (the databases'
passwords, if any, in MO_BUNDLE_PASSWORDS: JSON {"databases/<name>.yaml": password}), security, and with --users
the accounts given as JSON lines on stdin ({"username", "role", "org", "password"}): one Superset start instead of five.

`--render BUNDLE` (the compose stack's superset container, which has no platform environment) renders
dashboards/bundles here with the platform's own renderer (mo/dashboards.py, importable with Superset's
packages; the image carries it on PYTHONPATH): the analytics database from SUPERSET_ANALYTICS_URL, its password
kept in memory for the import, never written into a zip.

The product's roles (serving/app/core/roles.py) as Superset roles:
- admin     -> Superset's Admin;
- analyst   -> mo_analyst: Gamma (read dashboards and charts) + sql_lab + access to the Analytics database,
               whose allow_dml is off: SQL Lab can read, never write;
- marketer  -> mo_marketer: Gamma + the customer and campaign datasets only (dashboards, no SQL Lab).
An analyst of one organisation also gets mo_org_<id>, whose row-level security filter keeps the org-keyed
analytics datasets to that organisation's subtree (``org_path LIKE '%/<id>/%'``); an analyst without it (head
office) sees the whole company, and also gets mo_lake: SQL Lab on the Lake database's silver, marts and segments
namespaces only (schema access, not the database: a query naming bronze, silver_restricted or ops is refused,
naming the table). Row-level security cannot follow an analyst into the lake's tables (they have no org_path),
so an organisation's analyst does not get the lake.

With SUPERSET_SYNC_DB_USER set (the compose stack: superset_sync, created with no table by
docker/postgres/20-superset.sh), `setup` then grants that login exactly what the dashboards-sync service needs
(SYNC_GRANTS): Superset creates its tables at its own start, so the grant follows each migration.

The admin comes from SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD. Only in development, without a password,
a random one is made once and kept in MO_HOME/superset-demo-credentials.json (mode 0600), like the serving
API's demo accounts. Idempotent: every step may be run again.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

ANALYST, MARKETER, LAKE_READER = "mo_analyst", "mo_marketer", "mo_lake"
DATABASE = "Analytics"
LAKE = "Lake"
# The lake's namespaces analysts read: not bronze (raw history), silver_restricted (clear PII), ops (sync state),
# staging or intermediate (dbt's views on the way to the marts).
LAKE_SCHEMAS = ("silver", "marts", "segments")
ORG_DATASETS = ("claims_open", "claims_sla_daily", "recordings_review")
MARKETER_DATASETS = (
    "customer_consent",
    "customer_lines",
    "campaign_funnel",
    "campaign_uplift",
    "campaign_contact_pressure",
    "customer_tag_distribution",
    "customer_event_volume",
)
DEMO_CREDENTIALS = "superset-demo-credentials.json"


def _environment() -> str:
    return os.environ.get("SUPERSET_ENVIRONMENT") or os.environ.get("MO_ENVIRONMENT") or "development"


def _home() -> Path:
    return Path(os.environ.get("MO_HOME") or Path.home() / ".mo")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def admin_credentials() -> tuple[str, str]:
    user = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD")
    if password:
        return user, password
    if _environment() != "development":
        raise SystemExit(
            "error: SUPERSET_ADMIN_PASSWORD is not set; outside development the admin comes from the environment"
        )
    path = _home() / DEMO_CREDENTIALS
    if path.exists():
        creds = json.loads(path.read_text(encoding="utf-8"))["admin"]
        if creds["username"] == user:
            return user, creds["password"]
    password = secrets.token_urlsafe(18)
    _write_private(path, json.dumps({"admin": {"username": user, "password": password}}, indent=2) + "\n")
    return user, password


def _app():
    from superset.app import create_app

    app = create_app()
    return app


def _pvm(sm, permission: str, view: str):
    pvm = sm.find_permission_view_menu(permission, view)
    return pvm or sm.add_permission_view_menu(permission, view)


def _role_from(sm, name: str, base: str, extra: list) -> None:
    role = sm.find_role(name) or sm.add_role(name)
    wanted = set(sm.find_role(base).permissions) | set(extra)
    for pvm in wanted - set(role.permissions):
        sm.add_permission_role(role, pvm)


def init(app=None) -> None:
    user, password = admin_credentials()
    app = app or _app()
    with app.app_context():
        from flask_migrate import upgrade
        from superset import appbuilder
        from superset import security_manager as sm
        from superset.extensions import db

        upgrade()
        appbuilder.add_permissions(update_perms=True)
        sm.sync_role_definitions()
        admin_role = sm.find_role("Admin")
        existing = sm.find_user(username=user)
        if existing is None:
            sm.add_user(user, "Admin", "User", f"{user}@localhost", admin_role, password=password)
        else:
            existing.roles = [admin_role]
            sm.reset_password(existing.id, password)
        sql_lab = list(sm.find_role("sql_lab").permissions)
        _role_from(sm, ANALYST, "Gamma", sql_lab)
        _role_from(sm, MARKETER, "Gamma", [])
        sm.find_role(LAKE_READER) or sm.add_role(LAKE_READER)
        db.session.commit()
    print(f"superset: admin {user!r} ready; roles {ANALYST}, {MARKETER}, {LAKE_READER}")


def _database(db):
    from superset.models.core import Database

    database = db.session.query(Database).filter_by(database_name=DATABASE).one_or_none()
    if database is None:
        raise SystemExit(f"error: no database {DATABASE!r} in Superset: run `mo dashboards import` first")
    return database


def _database_id(db) -> int:
    """The Analytics database's id, reading nothing else of it (the sync's login may read only id and name)."""
    from superset.models.core import Database

    found = db.session.query(Database.id).filter_by(database_name=DATABASE).scalar()
    if found is None:
        raise SystemExit(f"error: no database {DATABASE!r} in Superset: run `mo dashboards import` first")
    return found


def import_bundle(app, folder: Path) -> None:
    """Import the zips `mo dashboards` rendered (<n>-<kind>.zip: databases, datasets, charts, dashboards, each
    overwriting its kind by uuid) as the admin, like the REST API's import endpoints."""
    import zipfile

    from flask import g

    user, _ = admin_credentials()
    with app.test_request_context():
        from superset import security_manager as sm
        from superset.commands.chart.importers.dispatcher import ImportChartsCommand
        from superset.commands.dashboard.importers.dispatcher import ImportDashboardsCommand
        from superset.commands.database.importers.dispatcher import ImportDatabasesCommand
        from superset.commands.dataset.importers.dispatcher import ImportDatasetsCommand
        from superset.commands.importers.v1.utils import get_contents_from_bundle

        commands = {
            "database": ImportDatabasesCommand,
            "dataset": ImportDatasetsCommand,
            "chart": ImportChartsCommand,
            "dashboard": ImportDashboardsCommand,
        }
        g.user = sm.find_user(username=user)
        bundle_passwords = json.loads(os.environ.get("MO_BUNDLE_PASSWORDS") or "{}")
        for archive in sorted(folder.glob("*.zip")):
            kind = archive.stem.split("-", 1)[1]
            with zipfile.ZipFile(archive) as zf:
                contents = get_contents_from_bundle(zf)  # paths without the bundle's root folder, as the API reads
            passwords = {n: pw for n, pw in bundle_passwords.items() if n in contents}
            commands[kind](contents, passwords=passwords, overwrite=True).run()
    print(f"superset: imported the bundle from {folder}")


def render(bundle_source: Path, out: Path) -> None:
    """Render the bundle for this install (see the module's docstring): the Analytics database from
    SUPERSET_ANALYTICS_URL, the Lake from SUPERSET_LAKE_URL when set (else left out); sets MO_BUNDLE_PASSWORDS."""
    from mo.dashboards import analytics_connection, lake_connection, read_bundle, write_import_zips

    url = os.environ.get("SUPERSET_ANALYTICS_URL")
    if not url:
        raise SystemExit("error: SUPERSET_ANALYTICS_URL is not set: the analytics database the bundle reads")
    connection = analytics_connection(url)
    out.mkdir(parents=True, exist_ok=True)
    lake_url = os.environ.get("SUPERSET_LAKE_URL")
    lake = lake_connection(lake_url) if lake_url else None
    passwords = write_import_zips(read_bundle(bundle_source), connection, out, lake)
    if passwords:
        os.environ["MO_BUNDLE_PASSWORDS"] = json.dumps(passwords)
    print(f"superset: rendered {bundle_source} for {connection.uri}")


# The dashboards-sync service's login on Superset's metadata database (`mo dashboards sync`: mo/dashboards_sync.py).
# The audit copy (mo/dashboards_audit.py) reads the event log, SQL Lab's queries and the names it reports; sync-users
# (below, run inside Superset by mo/dashboards_users.py) creates and updates users, their roles, the organisations'
# roles and their row-level security filters through Superset's security manager, so it writes exactly those
# tables: whoever holds this login can make a user an admin. It can change no dashboard, chart, dataset or query,
# delete no user, and read no database password (of `dbs` only the id and name). Superset's start reads
# alembic_version (pending migrations?) and themes (its system themes' seed, which it only reads once they exist).
SYNC_GRANTS: dict[str, str] = {
    "logs": "SELECT",
    "query": "SELECT",
    "dashboards": "SELECT (id, dashboard_title)",
    "slices": "SELECT (id, slice_name)",
    "dbs": "SELECT (id, database_name)",
    "ab_user": "SELECT, INSERT, UPDATE",
    "ab_role": "SELECT, INSERT",
    "ab_user_role": "SELECT, INSERT, DELETE",
    "tables": "SELECT (id, table_name, database_id)",
    "row_level_security_filters": "SELECT, INSERT, UPDATE",
    "rls_filter_roles": "SELECT, INSERT, DELETE",
    "rls_filter_tables": "SELECT, INSERT, DELETE",
    "alembic_version": "SELECT",
    "themes": "SELECT",
}
SYNC_SEQUENCES = ("ab_user", "ab_role", "ab_user_role", "row_level_security_filters", "rls_filter_roles",
                  "rls_filter_tables")  # fmt: skip


def grant_sync(login: str, app=None) -> None:
    """Grant the sync's login SYNC_GRANTS (PostgreSQL metadata only; idempotent), as the metadata's owner."""
    if not login.replace("_", "").isalnum():
        raise SystemExit(f"error: SUPERSET_SYNC_DB_USER {login!r}: letters, digits and _ only")
    app = app or _app()
    with app.app_context():
        from sqlalchemy import inspect, text
        from superset.extensions import db

        engine = db.engine
        if engine.dialect.name != "postgresql":
            raise SystemExit(f"error: SUPERSET_SYNC_DB_USER needs PostgreSQL metadata, not {engine.dialect.name}")
        existing = set(inspect(engine).get_table_names())
        missing = sorted(set(SYNC_GRANTS) - existing)
        if missing:
            raise SystemExit(f"error: Superset's metadata has no {', '.join(missing)}: migrate first")
        with engine.begin() as conn:
            for table, privileges in SYNC_GRANTS.items():
                conn.execute(text(f'GRANT {privileges} ON TABLE "{table}" TO "{login}"'))
            for table in SYNC_SEQUENCES:
                conn.execute(text(f'GRANT USAGE ON SEQUENCE "{table}_id_seq" TO "{login}"'))
    print(f"superset: {login} may read the audit's tables and sync users ({len(SYNC_GRANTS)} tables)")


def setup(archive: Path | None, users: bool, bundle_source: Path | None = None) -> None:
    accounts = [json.loads(line) for line in sys.stdin if line.strip()] if users else []
    if bundle_source is not None:
        import tempfile

        archive = Path(tempfile.mkdtemp(prefix="mo-bundle-"))
        render(bundle_source, archive)
    app = _app()
    init(app)
    if archive is not None:
        import_bundle(app, archive)
        security(app)
    for account in accounts:
        add_user(account["username"], account["role"], account.get("org"), account["password"], app=app)
    sync_login = os.environ.get("SUPERSET_SYNC_DB_USER")
    if sync_login:
        grant_sync(sync_login, app=app)


def security(app=None) -> None:
    app = app or _app()
    with app.app_context():
        from superset import security_manager as sm
        from superset.connectors.sqla.models import SqlaTable
        from superset.extensions import db
        from superset.models.core import Database

        database = _database(db)
        for each in db.session.query(Database).filter(Database.database_name.in_([DATABASE, LAKE])):
            if each.allow_dml:
                raise SystemExit(
                    f"error: database {each.database_name!r} allows DML; the bundle must keep allow_dml false"
                )
        analyst = sm.find_role(ANALYST)
        marketer = sm.find_role(MARKETER)
        if analyst is None or marketer is None:
            raise SystemExit("error: run `bootstrap.py init` first")
        db_perm = _pvm(sm, "database_access", database.perm)
        if db_perm not in analyst.permissions:
            sm.add_permission_role(analyst, db_perm)
        for table in db.session.query(SqlaTable).filter_by(database_id=database.id):
            if table.table_name in MARKETER_DATASETS:
                pvm = _pvm(sm, "datasource_access", table.perm)
                if pvm not in marketer.permissions:
                    sm.add_permission_role(marketer, pvm)
        for role in [r for r in sm.get_all_roles() if r.name.startswith("mo_org_")]:
            _org_filter(sm, db, role, int(role.name.removeprefix("mo_org_")), database.id)
        lake = db.session.query(Database).filter_by(database_name=LAKE).one_or_none()
        if lake is not None:
            reader = sm.find_role(LAKE_READER) or sm.add_role(LAKE_READER)
            # `silver.t`, and `<catalog>.silver.t` (the form of metadata tables: `lake.silver.t.snapshots`)
            catalogs = [None, os.environ.get("MO_LAKE_CATALOG") or "lake"]
            for schema in LAKE_SCHEMAS:
                for catalog in catalogs:
                    pvm = _pvm(sm, "schema_access", sm.get_schema_perm(lake.database_name, catalog, schema))
                    if pvm not in reader.permissions:
                        sm.add_permission_role(reader, pvm)
        db.session.commit()
    print(f"superset: {DATABASE} granted to {ANALYST}; row-level security on {', '.join(ORG_DATASETS)}")
    print(f"superset: {LAKE} namespaces {', '.join(LAKE_SCHEMAS)} granted to {LAKE_READER}")


def _org_filter(sm, db, role, org_id: int, database_id: int) -> None:
    """The row-level security filter of one organisation's subtree (idempotent)."""
    from sqlalchemy import delete, insert, select
    from superset.connectors.sqla.models import RLSFilterTables, RowLevelSecurityFilter, SqlaTable
    from superset.utils.core import RowLevelSecurityFilterType

    name = f"org {org_id} subtree"
    rls = db.session.query(RowLevelSecurityFilter).filter_by(name=name).one_or_none()
    if rls is None:
        rls = RowLevelSecurityFilter(name=name, filter_type=RowLevelSecurityFilterType.REGULAR)
        db.session.add(rls)
    rls.clause = f"org_path LIKE '%/{org_id}/%'"
    rls.group_key = "org"
    rls.description = "An organisation's analysts see its own subtree only (dashboards/bootstrap.py)."
    rls.roles = [role]
    db.session.flush()
    # The datasets through the association table, not `rls.tables`: assigning that relationship marks each dataset
    # changed (its backref), and a dataset's update hook loads its whole database row, password included.
    wanted = {
        table_id
        for (table_id,) in db.session.query(SqlaTable.id).filter(
            SqlaTable.database_id == database_id, SqlaTable.table_name.in_(ORG_DATASETS)
        )
    }
    link = RLSFilterTables
    have = {r[0] for r in db.session.execute(select(link.c.table_id).where(link.c.rls_filter_id == rls.id))}
    if wanted - have:
        db.session.execute(insert(link), [{"table_id": t, "rls_filter_id": rls.id} for t in sorted(wanted - have)])
    if have - wanted:
        db.session.execute(delete(link).where(link.c.rls_filter_id == rls.id, link.c.table_id.in_(have - wanted)))


def add_user(username: str, role_name: str, org_id: int | None, password: str, app=None) -> None:
    if len(password) < 8:
        raise SystemExit(f"error: the password of {username!r} needs 8 characters or more")
    app = app or _app()
    with app.app_context():
        from superset import security_manager as sm
        from superset.extensions import db

        roles = [sm.find_role({"admin": "Admin", "analyst": ANALYST, "marketer": MARKETER}[role_name])]
        if org_id is not None:
            if role_name == "admin":
                raise SystemExit("error: an admin is not scoped to an organisation")
            org_role = sm.find_role(f"mo_org_{org_id}") or sm.add_role(f"mo_org_{org_id}")
            _org_filter(sm, db, org_role, org_id, _database(db).id)
            roles.append(org_role)
        elif role_name == "analyst":
            roles.append(sm.find_role(LAKE_READER) or sm.add_role(LAKE_READER))
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(username, username, role_name, f"{username}@localhost", roles, password=password)
            if not user:
                raise SystemExit(f"error: Superset could not create user {username!r}")
        else:
            user.roles = roles
            sm.reset_password(user.id, password)
        db.session.commit()
    scope = f"organisation {org_id}'s subtree" if org_id is not None else "the whole company"
    print(f"superset: user {username!r} ({role_name}) sees {scope}")


SYNCED = "serving account"  # the last name that marks a Superset user as one sync-users manages


def sync_users(accounts: list[dict], app=None) -> None:
    """Make Superset's users follow the serving API's accounts (JSON lines: username, display_name, role, org,
    active): create the missing ones with a random password nobody is told (passwords are never copied: the
    person gets one with `mo dashboards add-user`), update roles and names, deactivate the users this sync made
    whose account is gone or disabled. Superset's own admin and hand-made users are never touched. Prints one
    ``mo-change {json}`` line per change; nothing when nothing changed (idempotent)."""
    admin_user = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    app = app or _app()
    with app.app_context():
        from superset import security_manager as sm
        from superset.extensions import db

        role_names = {"admin": "Admin", "analyst": ANALYST, "marketer": MARKETER}
        wanted = {a["username"]: a for a in accounts if a.get("active") and a.get("role") in role_names}
        changes = []
        database_id = None
        for username, account in sorted(wanted.items()):
            if username == admin_user:
                continue  # Superset's own admin comes from its environment, not from the serving accounts
            roles = [sm.find_role(role_names[account["role"]])]
            org = account.get("org")
            if org is not None and account["role"] != "admin":
                org_role = sm.find_role(f"mo_org_{org}") or sm.add_role(f"mo_org_{org}")
                database_id = database_id or _database_id(db)
                _org_filter(sm, db, org_role, int(org), database_id)
                roles.append(org_role)
            first = (account.get("display_name") or username)[:64]
            user = sm.find_user(username=username)
            if user is None:
                user = sm.add_user(username, first, SYNCED, f"{username}@serving.accounts", roles,
                                   password=secrets.token_urlsafe(32))  # fmt: skip
                if not user:
                    raise SystemExit(f"error: Superset could not create user {username!r}")
                changes.append({"username": username, "change": "created", "role": account["role"], "org": org})
                continue
            if user.last_name != SYNCED:
                print(f"superset: {username!r} exists and was not made by sync-users: left as it is")
                continue
            what = []
            if {r.name for r in user.roles} != {r.name for r in roles}:
                user.roles = roles
                what.append("roles")
            if not user.active:
                user.active = True
                what.append("enabled")
            if user.first_name != first:
                user.first_name = first
                what.append("name")
            if what:
                changes.append({"username": username, "change": "updated " + ", ".join(what),
                                "role": account["role"], "org": org})  # fmt: skip
        for user in sm.get_all_users() if hasattr(sm, "get_all_users") else db.session.query(sm.user_model).all():
            if user.last_name == SYNCED and user.active and user.username not in wanted:
                user.active = False
                changes.append({"username": user.username, "change": "disabled", "role": None, "org": None})
        db.session.commit()
    for change in changes:
        print("mo-change " + json.dumps(change))
    print(f"superset: {len(wanted)} serving accounts for Superset, {len(changes)} changes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    setup_parser = sub.add_parser("setup")
    setup_parser.add_argument("--bundle", type=Path, help="folder of the zips `mo dashboards` rendered")
    setup_parser.add_argument("--render", type=Path, help="a bundle folder (dashboards/bundles) to render here")
    setup_parser.add_argument("--users", action="store_true")
    render_parser = sub.add_parser("render")
    render_parser.add_argument("--bundle-source", type=Path, required=True)
    render_parser.add_argument("--out", type=Path, required=True)
    sub.add_parser("init")
    sub.add_parser("security")
    add = sub.add_parser("add-user")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=["admin", "analyst", "marketer"])
    add.add_argument("--org", type=int)
    sub.add_parser("sync-users")
    grant = sub.add_parser("grant-sync")
    grant.add_argument("--login", required=True, help="the dashboards-sync service's login (SUPERSET_SYNC_DB_USER)")
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.bundle, args.users, args.render)
    elif args.command == "render":
        render(args.bundle_source, args.out)
    elif args.command == "init":
        init()
    elif args.command == "security":
        security()
    elif args.command == "sync-users":
        sync_users([json.loads(line) for line in sys.stdin if line.strip()])
    elif args.command == "grant-sync":
        grant_sync(args.login)
    else:
        add_user(args.username, args.role, args.org, sys.stdin.readline().rstrip("\n"))


if __name__ == "__main__":
    main()
