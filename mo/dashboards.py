"""Dashboards as code: the Superset bundle in dashboards/bundles/ imported into and exported from Superset.

The bundle is Superset's own import format (metadata.yaml, databases/, datasets/, charts/, dashboards/) kept
in a canonical form, so `mo dashboards export` after a change made in the UI is a reviewable diff:

- the analytics database's URI is the placeholder ``${MO_ANALYTICS_URL}`` (filled in at import from the
  configured analytics store, its password passed beside the bundle, never written into a file); the lake's SQL
  endpoint (database ``Lake``, SQL Lab only) is ``${MO_LAKE_URL}`` the same way (mo.lake_sql.lake_url);
- datasets name schema ``analytics`` (on the SQLite default, where a schema is the file itself, Superset
  reads them from ``main``);
- what Superset numbers per install (chart ids in the layout, ``datasource`` ids in chart parameters, the
  export's timestamp) is renumbered or dropped, and every file is written with sorted keys.

Import checks the bundle first (every chart's dataset, every column a chart or a filter names, every dataset
column against schemas/serving/analytics.yaml) and sends nothing when one is wrong: a clear error naming the
chart. Superset imports a bundle in one transaction and matches objects by uuid, so importing twice changes
nothing. Talks to Superset's REST API (login, CSRF token, /api/v1/dashboard/import/ and /export/).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy.engine import make_url

from mo.errors import MoError

# Not from mo.config (pydantic-settings): Superset's environment imports this module too, to render the bundle
# in the compose stack's superset container (dashboards/bootstrap.py setup --render).
REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_DIR = REPO_ROOT / "dashboards" / "bundles"
URI_PLACEHOLDER = "${MO_ANALYTICS_URL}"
LAKE_URI_PLACEHOLDER = "${MO_LAKE_URL}"
# database name -> the placeholder its URI is exported as
URI_PLACEHOLDERS = {"Analytics": URI_PLACEHOLDER, "Lake": LAKE_URI_PLACEHOLDER}
SCHEMA = "analytics"
DEFAULT_URL = "http://127.0.0.1:8088"
TIMESTAMP = "2026-01-01T00:00:00+00:00"  # metadata.yaml: a fixed stamp keeps exports diff-free


class DashboardError(MoError):
    """The bundle is wrong or Superset refused it."""


# --- the bundle on disk -------------------------------------------------------------------------------------


def read_bundle(bundle_dir: Path = BUNDLE_DIR) -> dict[str, Any]:
    """Relative path -> parsed YAML of every file in the bundle."""
    files = {
        str(p.relative_to(bundle_dir)): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(bundle_dir.rglob("*.yaml"))
    }
    if "metadata.yaml" not in files:
        raise DashboardError(f"{bundle_dir} is not a bundle: it has no metadata.yaml")
    return files


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=True, width=120)


def write_bundle(files: dict[str, Any], bundle_dir: Path) -> list[str]:
    """Write the canonical files and delete those no longer in the bundle; returns the paths that changed."""
    changed = []
    for rel, data in files.items():
        path = bundle_dir / rel
        text = dump_yaml(data)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    for path in sorted(bundle_dir.rglob("*.yaml")):
        rel = str(path.relative_to(bundle_dir))
        if rel not in files:
            path.unlink()
            changed.append(rel)
    return changed


def _referenced_columns(params: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for key in ("groupby", "all_columns", "columns"):
        for item in params.get(key) or []:
            if isinstance(item, str):
                names.add(item)
    for key in ("x_axis", "granularity_sqla", "series", "entity"):
        if isinstance(params.get(key), str):
            names.add(params[key])
    for f in params.get("adhoc_filters") or []:
        if f.get("expressionType") == "SIMPLE" and isinstance(f.get("subject"), str):
            names.add(f["subject"])
    return names


def check_bundle(files: dict[str, Any], contract_columns: dict[str, list[str]] | None = None) -> None:
    """Refuse a bundle whose charts or filters name a missing dataset or column (one error listing every
    problem, each naming its chart, filter or dataset)."""
    if contract_columns is None:
        from mo.serving_store.contract import load_analytics_contract

        contract_columns = {t: s.column_names for t, s in load_analytics_contract().tables.items()}
    problems: list[str] = []
    databases = {d["uuid"] for rel, d in files.items() if rel.startswith("databases/")}
    datasets: dict[str, dict[str, Any]] = {}
    for rel, d in files.items():
        if not rel.startswith("datasets/"):
            continue
        datasets[d["uuid"]] = d
        if d.get("database_uuid") not in databases:
            problems.append(
                f"dataset {d['table_name']} ({rel}): its database {d.get('database_uuid')} is not in the bundle"
            )
        if d.get("sql"):
            continue
        published = contract_columns.get(d["table_name"])
        if published is None:
            problems.append(f"dataset {d['table_name']} ({rel}): no such table in schemas/serving/analytics.yaml")
            continue
        for c in d.get("columns") or []:
            if not c.get("expression") and c["column_name"] not in published:
                problems.append(
                    f"dataset {d['table_name']} ({rel}): column {c['column_name']} is not in the analytics contract"
                )
    columns = {u: {c["column_name"] for c in d.get("columns") or []} for u, d in datasets.items()}
    for rel, chart in files.items():
        if not rel.startswith("charts/"):
            continue
        name = f"chart {chart.get('slice_name')!r} ({rel})"
        dataset = chart.get("dataset_uuid")
        if dataset not in datasets:
            problems.append(f"{name}: its dataset {dataset} is not in the bundle")
            continue
        for col in sorted(_referenced_columns(chart.get("params") or {}) - columns[dataset]):
            problems.append(f"{name}: column {col} is not a column of dataset {datasets[dataset]['table_name']}")
    for rel, dash in files.items():
        if not rel.startswith("dashboards/"):
            continue
        for f in (dash.get("metadata") or {}).get("native_filter_configuration") or []:
            for target in f.get("targets") or []:
                dataset_uuid = target.get("datasetUuid")
                column_name = (target.get("column") or {}).get("name")
                if dataset_uuid is None:
                    continue
                if dataset_uuid not in datasets:
                    problems.append(
                        f"dashboard {dash['dashboard_title']!r} filter {f['name']!r}: "
                        f"dataset {dataset_uuid} is not in the bundle"
                    )
                elif column_name not in columns[dataset_uuid]:
                    problems.append(
                        f"dashboard {dash['dashboard_title']!r} filter {f['name']!r}: column {column_name} "
                        f"is not a column of dataset {datasets[dataset_uuid]['table_name']}"
                    )
        for node in (dash.get("position") or {}).values():
            if isinstance(node, dict) and node.get("type") == "CHART" and "chartId" not in (node.get("meta") or {}):
                problems.append(f"dashboard {dash['dashboard_title']!r}: layout entry {node['id']} has no chartId")
    if problems:
        raise DashboardError("the dashboard bundle is not importable:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Connection:
    """The analytics database as Superset sees it: URI without the password, and the password aside."""

    uri: str
    password: str | None
    schema: str


def lake_connection(url: str) -> Connection:
    """The lake's SQL endpoint as Superset sees it (hive:// Thrift server, trino://): the password aside."""
    parsed = make_url(url)
    password = parsed.password
    uri = parsed.set(password="XXXXXXXXXX" if password else None).render_as_string(hide_password=False)
    return Connection(uri=uri, password=password, schema=parsed.database or "")


def analytics_connection(url: str) -> Connection:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # Superset's environment has psycopg2 (the platform may name another driver).
        parsed = parsed.set(drivername="postgresql+psycopg2")
        schema = SCHEMA
    elif backend == "sqlite":
        schema = "main"
    else:
        raise DashboardError(f"the analytics store {backend!r} is not supported by the dashboards (postgresql, sqlite)")
    password = parsed.password
    uri = parsed.set(password="XXXXXXXXXX" if password else None).render_as_string(hide_password=False)
    return Connection(uri=uri, password=password, schema=schema)


# Superset's importers only overwrite the kind of object they are for (a dashboard import keeps the charts and
# datasets it finds), so an import sends the bundle once per kind, each with what that kind depends on.
IMPORT_STEPS = (
    ("database", "Database", ("databases/",)),
    ("dataset", "SqlaTable", ("databases/", "datasets/")),
    ("chart", "Slice", ("databases/", "datasets/", "charts/")),
    ("dashboard", "Dashboard", ("databases/", "datasets/", "charts/", "dashboards/")),
)


def render_bundle(
    files: dict[str, Any],
    connection: Connection,
    kind: str = "Dashboard",
    folders: tuple[str, ...] | None = None,
    lake: Connection | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The import zip of one kind (``metadata.yaml`` type) for this install, and the ``passwords`` form field.

    Without ``lake`` the Lake database is left out (the import then keeps the one Superset has)."""
    buffer = io.BytesIO()
    passwords: dict[str, str] = {}
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel, data in files.items():
            if rel == "metadata.yaml":
                data = {**data, "type": kind}
            elif folders is not None and not rel.startswith(folders):
                continue
            data = json.loads(json.dumps(data))
            if rel.startswith("databases/") and data.get("sqlalchemy_uri") == URI_PLACEHOLDER:
                data["sqlalchemy_uri"] = connection.uri
                if connection.password:
                    passwords[f"bundle/{rel}"] = connection.password
            if rel.startswith("databases/") and data.get("sqlalchemy_uri") == LAKE_URI_PLACEHOLDER:
                if lake is None:
                    continue
                data["sqlalchemy_uri"] = lake.uri
                if lake.password:
                    passwords[f"bundle/{rel}"] = lake.password
            if rel.startswith("datasets/") and data.get("schema") == SCHEMA:
                data["schema"] = connection.schema
            zf.writestr(f"bundle/{rel}", dump_yaml(data))
    return buffer.getvalue(), passwords


def render_steps(
    files: dict[str, Any], connection: Connection, lake: Connection | None = None
) -> list[tuple[str, bytes, dict[str, str]]]:
    """(API resource, zip, passwords) per import step, in dependency order."""
    return [
        (resource, *render_bundle(files, connection, kind, folders, lake)) for resource, kind, folders in IMPORT_STEPS
    ]


def write_import_zips(
    files: dict[str, Any], connection: Connection, folder: Path, lake: Connection | None = None
) -> dict[str, str]:
    """Write the import zips dashboards/bootstrap.py reads (``<n>-<kind>.zip``, in dependency order), no password
    in any; returns the databases' passwords (``{"databases/<name>.yaml": password}``, MO_BUNDLE_PASSWORDS)."""
    passwords: dict[str, str] = {}
    for n, (resource, archive, step_passwords) in enumerate(render_steps(files, connection, lake), start=1):
        (folder / f"{n}-{resource}.zip").write_bytes(archive)
        passwords.update({name.removeprefix("bundle/"): pw for name, pw in step_passwords.items()})
    return passwords


def canonical(files: dict[str, Any], connection_uri: str | None = None) -> dict[str, Any]:
    """An export made canonical: placeholders back in, per-install ids renumbered or dropped."""
    out: dict[str, Any] = {}
    chart_numbers = {
        d["uuid"]: n
        for n, d in enumerate(
            sorted((d for r, d in files.items() if r.startswith("charts/")), key=lambda d: d["uuid"]), 1
        )
    }
    for rel, data in files.items():
        data = json.loads(json.dumps(data))
        if rel == "metadata.yaml":
            data["timestamp"] = TIMESTAMP
        elif rel.startswith("databases/"):
            data["sqlalchemy_uri"] = URI_PLACEHOLDERS.get(data.get("database_name"), URI_PLACEHOLDER)
        elif rel.startswith("datasets/"):
            if data.get("schema") in ("main", SCHEMA, None) and not data.get("sql"):
                data["schema"] = SCHEMA
            for children in ("columns", "metrics"):
                if data.get(children):
                    data[children] = sorted(data[children], key=_export_order)
        elif rel.startswith("charts/"):
            params = data.get("params") or {}
            params.pop("dashboards", None)
            params["datasource"] = "1__table"
            params.pop("slice_id", None)
            data["query_context"] = None
        elif rel.startswith("dashboards/"):
            for node in (data.get("position") or {}).values():
                if isinstance(node, dict) and node.get("type") == "CHART":
                    node["meta"]["chartId"] = chart_numbers.get(node["meta"].get("uuid"), 0)
            metadata = data.get("metadata") or {}
            for f in metadata.get("native_filter_configuration") or []:
                f.pop("chartsInScope", None)
                f.pop("tabsInScope", None)
            metadata.pop("positions", None)
            for key in ("map_label_colors", "shared_label_colors", "color_scheme_domain"):
                if key in metadata:
                    metadata[key] = [] if key != "map_label_colors" else {}
        out[_canonical_path(rel, data, out)] = data
    return out


def _export_order(child: dict[str, Any]) -> list[str]:
    """Superset's export lists a dataset's columns and metrics in this order (ImportExportMixin.export_to_dict
    sorts them by the sorted characters of their items), so a hand-written dataset is written the same way."""
    return sorted(str(child.items()))


def _slug(text: str) -> str:
    ascii_words = re.findall(r"[A-Za-z0-9]+", text)
    return "_".join(ascii_words)[:80] or "unnamed"


def _canonical_path(rel: str, data: dict[str, Any], taken: dict[str, Any]) -> str:
    """Stable file names (Superset's export appends per-install ids): the table name, or the title's ASCII words."""
    folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
    if rel.startswith("datasets/"):
        name = data["table_name"]
    elif rel.startswith("databases/"):
        name = _slug(data["database_name"])
    elif rel.startswith("charts/"):
        name = _slug(data["slice_name"])
    elif rel.startswith("dashboards/"):
        name = _slug(data["dashboard_title"])
    else:
        return rel
    path = f"{folder}/{name}.yaml"
    return path if path not in taken else f"{folder}/{name}_{data['uuid'][:8]}.yaml"


# --- Superset's REST API ------------------------------------------------------------------------------------


class Superset:
    """A logged-in session on Superset's REST API."""

    def __init__(self, url: str, username: str, password: str, *, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Referer"] = self.url
        try:
            answer = self.http.post(
                f"{self.url}/api/v1/security/login",
                json={"username": username, "password": password, "provider": "db", "refresh": False},
                timeout=timeout,
            )
        except requests.ConnectionError:
            raise DashboardError(f"Superset does not answer at {self.url} (is `make dashboards` running?)") from None
        if answer.status_code != 200:
            raise DashboardError(f"Superset refused the login of {username!r} at {self.url} ({answer.status_code})")
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        csrf = self.get("/api/v1/security/csrf_token/")["result"]
        self.http.headers["X-CSRFToken"] = csrf

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(f"{self.url}{path}", params=params or None, timeout=self.timeout)
        self._check(answer, path)
        return answer.json()

    def get_bytes(self, path: str, **params: Any) -> bytes:
        answer = self.http.get(f"{self.url}{path}", params=params or None, timeout=self.timeout)
        self._check(answer, path)
        return answer.content

    def _check(self, answer: requests.Response, path: str) -> None:
        if answer.status_code >= 400:
            raise DashboardError(f"Superset answered {answer.status_code} to {path}: {answer.text[:2000]}")

    def list_all(self, resource: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            q = f"(page:{page},page_size:100)"
            result = self.get(f"/api/v1/{resource}/", q=q)["result"]
            rows += result
            if len(result) < 100:
                return rows
            page += 1

    def import_bundle(self, resource: str, archive: bytes, passwords: dict[str, str]) -> None:
        path = f"/api/v1/{resource}/import/"
        answer = self.http.post(
            f"{self.url}{path}",
            files={"formData": ("bundle.zip", archive, "application/zip")},
            data={"overwrite": "true", "passwords": json.dumps(passwords)},
            timeout=self.timeout * 5,
        )
        self._check(answer, path)

    def export_dashboards(self, ids: list[int], resource: str = "dashboard") -> dict[str, Any]:
        q = "!(" + ",".join(str(i) for i in ids) + ")"
        content = self.get_bytes(f"/api/v1/{resource}/export/", q=q)
        files: dict[str, Any] = {}
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            for name in zf.namelist():
                if name.endswith(".yaml"):
                    rel = name.split("/", 1)[1]
                    files[rel] = yaml.safe_load(zf.read(name))
        return files


def admin_login() -> tuple[str, str]:
    """The Superset admin from the environment (SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD), else the
    development credentials file `make dashboards` wrote (MO_HOME/superset-demo-credentials.json)."""
    user = os.environ.get("SUPERSET_ADMIN_USER", "admin")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD")
    if password:
        return user, password
    from mo.config import get_settings

    path = Path(get_settings().home) / "superset-demo-credentials.json"
    if path.exists():
        creds = json.loads(path.read_text(encoding="utf-8"))["admin"]
        return creds["username"], creds["password"]
    raise DashboardError("SUPERSET_ADMIN_PASSWORD is not set (and no development credentials under MO_HOME)")


def login_hint(settings: Any) -> str:
    """Where the Superset login is: the development credentials file's path (never the password), else the
    environment variables it came from."""
    creds = Path(settings.home) / "superset-demo-credentials.json"
    if creds.exists() and not os.environ.get("SUPERSET_ADMIN_PASSWORD"):
        user = json.loads(creds.read_text(encoding="utf-8"))["admin"]["username"]
        return f"login: {user}, password in {creds}"
    return "login: SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD"


def reader_url(settings: Any) -> str:
    """The analytics store as Superset should read it: SUPERSET_ANALYTICS_URL (a read-only login, e.g. the stack's
    analytics_reader), else the store the marts are published to."""
    from mo.analytics import analytics_url

    return os.environ.get("SUPERSET_ANALYTICS_URL") or analytics_url(settings)


def import_dashboards(
    client: Superset, analytics_url: str, bundle_dir: Path = BUNDLE_DIR, lake_url: str | None = None
) -> dict[str, int]:
    """Check and import the bundle (idempotent); returns how many of each object Superset then holds.

    Without ``lake_url`` the Lake database is left as Superset has it."""
    files = read_bundle(bundle_dir)
    check_bundle(files)
    lake = lake_connection(lake_url) if lake_url else None
    for resource, archive, passwords in render_steps(files, analytics_connection(analytics_url), lake):
        client.import_bundle(resource, archive, passwords)
    return inventory(client)


def inventory(client: Superset) -> dict[str, int]:
    return {r: len(client.list_all(r)) for r in ("database", "dataset", "chart", "dashboard")}


def export_dashboards(client: Superset, bundle_dir: Path = BUNDLE_DIR) -> list[str]:
    """Export every dashboard into the bundle directory (canonical form); returns the files that changed."""
    ids = [d["id"] for d in client.list_all("dashboard")]
    if not ids:
        raise DashboardError("Superset holds no dashboard to export")
    exported = client.export_dashboards(ids)
    # A database no dashboard uses (the Lake, for SQL Lab) is not in a dashboard export: add it from its own.
    known = {d["database_name"] for r, d in exported.items() if r.startswith("databases/")}
    spare = [d["id"] for d in client.list_all("database") if d["database_name"] not in known]
    if spare:
        for rel, data in client.export_dashboards(spare, resource="database").items():
            if rel.startswith("databases/"):
                exported[rel] = data
    files = canonical(exported)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    return write_bundle(files, bundle_dir)


# --- running Superset (`make dashboards`) -------------------------------------------------------------------

SUPERSET_VENV = REPO_ROOT / "dashboards" / ".venv"
SUPERSET_CONFIG = REPO_ROOT / "dashboards" / "superset_config.py"
START_TIMEOUT_S = 180


def superset_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment Superset's processes run in: its config, MO_HOME, and the caller's SUPERSET_* variables."""
    env = dict(os.environ)
    env.update({"MO_HOME": str(home), "SUPERSET_CONFIG_PATH": str(SUPERSET_CONFIG), "FLASK_APP": "superset", **extra})
    return env


def _pidfile(home: Path) -> Path:
    return home / "superset" / "superset.pid"


def setup_superset(
    settings: Any, *, users: list[dict[str, Any]] | None = None, analytics_url: str | None = None
) -> None:
    """Migrate Superset's metadata database, create the admin and roles, import the bundle and grant it, and add
    ``users`` (dicts: username, role, org, password), all in one Superset process (dashboards/bootstrap.py)."""
    import subprocess
    import tempfile

    python = SUPERSET_VENV / "bin" / "python"
    if not python.exists():
        raise DashboardError("Superset's environment is missing: run `make dashboards-env`")
    home = Path(settings.home)
    (home / "superset").mkdir(parents=True, exist_ok=True)
    files = read_bundle()
    check_bundle(files)
    connection = analytics_connection(analytics_url or reader_url(settings))
    from mo.lake_sql import lake_url

    passwords: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        passwords = write_import_zips(files, connection, path, lake_connection(lake_url(settings)))
        # the databases' passwords travel in the environment of the one process that imports, never in a file
        extra = {"MO_BUNDLE_PASSWORDS": json.dumps(passwords)} if passwords else {}
        extra["MO_LAKE_CATALOG"] = settings.catalog_name
        args = [str(python), str(REPO_ROOT / "dashboards" / "bootstrap.py"), "setup", "--bundle", str(path)]
        if users:
            args.append("--users")
        result = subprocess.run(
            args,
            input="".join(json.dumps(u) + "\n" for u in users or []),
            capture_output=True,
            text=True,
            env=superset_env(home, **extra),
            timeout=900,
        )
    log_path = home / "logs" / "superset-setup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error")]
        tail = errors[-1] if errors else (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DashboardError(f"Superset set-up failed: {tail} (log: {log_path})")


def start_superset(settings: Any, *, port: int = 8088, host: str = "127.0.0.1") -> str:
    """Serve Superset in the background (gunicorn in its own session); returns its URL once /health answers."""
    import socket
    import subprocess
    import time

    home = Path(settings.home)
    url = f"http://{host}:{port}"
    pidfile = _pidfile(home)
    if pidfile.exists():
        raise DashboardError(f"Superset already runs from this MO_HOME (pid file {pidfile}); `make dashboards-stop`")
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise DashboardError(f"{host}:{port} is already in use; choose another port with DASHBOARDS_PORT")
    log_path = home / "logs" / "superset.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [
                str(SUPERSET_VENV / "bin" / "gunicorn"),
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(settings.dashboards_workers),
                "--threads",
                str(settings.dashboards_threads),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--limit-request-line",
                "0",
                "superset.app:create_app()",
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=superset_env(home),
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pidfile.unlink(missing_ok=True)
            raise DashboardError(f"Superset stopped while starting (exit {proc.returncode}); log: {log_path}")
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return url
        except requests.RequestException:
            pass
        time.sleep(0.5)  # polling the health endpoint: the server offers no other readiness signal
    stop_superset(settings)
    raise DashboardError(f"Superset did not answer within {START_TIMEOUT_S} s; log: {log_path}")


def stop_superset(settings: Any) -> bool:
    """Stop the Superset `start_superset` left running (its whole process group); False when none runs."""
    import signal
    import time

    pidfile = _pidfile(Path(settings.home))
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return True
