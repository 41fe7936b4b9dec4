"""The lake's SQL endpoint: Spark's Thrift server in local mode over the jobs' Iceberg catalog (SQL Lab's `Lake`).

`mo lake sql-server start|stop|status` (and `make dashboards`, when a lake exists) runs
``org.apache.spark.sql.hive.thriftserver.HiveThriftServer2`` from the platform's own pyspark wheel (its jar ships
there; the start script does not), with the Spark conf the jobs use (:func:`spark_jobs.session.session_conf`:
the same jars, extensions, time zone and catalog keys), bound to 127.0.0.1 on ``MO_LAKE_SQL_PORT``. Superset reads
it with PyHive's ``hive://`` dialect plus the fix in dashboards/lake_sql_dialect.py.

Why this and not the alternatives measured on this machine (../shared/ENVIRONMENT.md): Trino, what production
should run, cannot be installed here; DuckDB reads Iceberg only through a third-party repackaging of its extension
and cannot see the JDBC catalog (it scans one table's metadata file); pyiceberg needs SQLAlchemy 2 (Superset needs
< 2). The Thrift server is the jobs' own engine on the jobs' own catalog: every table, time travel
(``VERSION AS OF`` / ``TIMESTAMP AS OF``), metadata tables (``lake.silver.t.snapshots``), the same SQL as dbt.

Reading while the builds write is safe: an Iceberg reader sees the snapshot that was current when its query
planned; a commit swaps the table's metadata pointer in the catalog in one statement. The catalog's cache is off
here (``cache-enabled=false``), so each query sees the latest commit instead of a 30 s old one. On the embedded
SQLite catalog the server opens the file read-only (``open_mode=1``): it never takes the write lock that the
builds' commits need, and a statement that would commit fails instead of writing.

Production: point Superset at the cluster's Thrift server or Trino with ``MO_LAKE_SQL_URL`` (``hive://...`` or
``trino://...``) and nothing is started here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mo.config import Settings
from mo.errors import MoError

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
START_TIMEOUT_S = 180.0
# Namespaces analysts may read from SQL Lab; everything else (bronze's raw history, silver_restricted's clear
# PII, ops' sync state, dbt's staging and intermediate views) is refused by Superset, naming the table.
EXPOSED_NAMESPACES = ("silver", "marts", "segments")
IDLE_SESSION_TIMEOUT_MS = 30 * 60 * 1000


class LakeSqlError(MoError):
    """The lake's SQL endpoint cannot be started, or is not there."""


@dataclass(frozen=True)
class LakeSqlStatus:
    running: bool
    pid: int | None
    url: str  # what Superset connects to
    external: bool  # MO_LAKE_SQL_URL: nothing runs here
    log: str | None


def _dir(settings: Settings) -> Path:
    return settings.home / "lake-sql"


def _pidfile(settings: Settings) -> Path:
    return _dir(settings) / "thrift-server.pid"


def _log_path(settings: Settings) -> Path:
    return settings.home / "logs" / "lake-sql.log"


def has_lake(settings: Settings) -> bool:
    """A catalog is configured, or the embedded one exists (the first sync creates it)."""
    return bool(settings.catalog_uri) or (settings.lake_dir / "catalog.db").exists()


def lake_url(settings: Settings, user: str = "superset") -> str:
    """The SQLAlchemy URL Superset's `Lake` database uses: MO_LAKE_SQL_URL, else the local Thrift server.

    The path names a namespace that exists (``/default`` does not in an Iceberg catalog): silver.
    """
    if settings.lake_sql_url:
        return settings.lake_sql_url
    return f"hive://{user}@127.0.0.1:{settings.lake_sql_port}/silver"


def server_conf(settings: Settings) -> dict[str, str]:
    """The Thrift server's Spark conf: the jobs' session conf plus what a shared, long-running reader needs."""
    from spark_jobs.session import session_conf

    conf = session_conf(settings)
    name = settings.catalog_name
    uri_key = f"spark.sql.catalog.{name}.uri"
    if conf.get(uri_key, "").startswith("jdbc:sqlite:") and "?" not in conf[uri_key]:
        conf[uri_key] += "?open_mode=1"  # SQLITE_OPEN_READONLY: never the builds' write lock
    conf.update(
        {
            "spark.app.name": "mo-lake-sql",
            "spark.driver.memory": settings.lake_sql_memory,
            "spark.sql.defaultCatalog": name,
            # Readers see a commit at once (the cache would keep a table's metadata for 30 s).
            f"spark.sql.catalog.{name}.cache-enabled": "false",
            # One Spark session for every connection: otherwise each connection opens (and keeps) its own catalog
            # client. SQL Lab's statements are stateless reads; Superset refuses SET and other session changes.
            "spark.sql.hive.thriftServer.singleSession": "true",
            # No `SELECT * FROM parquet.`/path``: the lake is read through its catalog, where Superset's grants apply.
            "spark.sql.runSQLOnFiles": "false",
            "spark.driver.extraClassPath": ":".join(conf["spark.jars"].split(",")),
        }
    )
    conf.pop("spark.pyspark.python", None)  # no Python workers in a SQL server
    return conf


def server_command(settings: Settings) -> list[str]:
    import pyspark

    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    args = [str(spark_submit), "--master", settings.spark_master, "--class", THRIFT_SERVER_CLASS]
    for key, value in server_conf(settings).items():
        args += ["--conf", f"{key}={value}"]
    args.append("spark-internal")
    hive = {
        "hive.server2.thrift.bind.host": "127.0.0.1",
        "hive.server2.thrift.port": str(settings.lake_sql_port),
        "hive.server2.transport.mode": "binary",
        "hive.server2.idle.session.timeout": str(IDLE_SESSION_TIMEOUT_MS),
        "hive.server2.session.check.interval": "60000",
    }
    for key, value in hive.items():
        args += ["--hiveconf", f"{key}={value}"]
    return args


def _port_open(port: int, timeout_s: float = 0.5) -> bool:
    with socket.socket() as probe:
        probe.settimeout(timeout_s)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _running_pid(settings: Settings) -> int | None:
    """The pid in the pid file if that process is still our Thrift server (pids get reused)."""
    import psutil

    try:
        pid = int(_pidfile(settings).read_text().strip())
        proc = psutil.Process(pid)
        # spark-submit's script execs the JVM: the pid is the JVM's
        if proc.status() != psutil.STATUS_ZOMBIE and THRIFT_SERVER_CLASS in proc.cmdline():
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def status(settings: Settings) -> LakeSqlStatus:
    if settings.lake_sql_url:
        return LakeSqlStatus(running=False, pid=None, url=settings.lake_sql_url, external=True, log=None)
    pid = _running_pid(settings)
    return LakeSqlStatus(
        running=pid is not None and _port_open(settings.lake_sql_port),
        pid=pid,
        url=lake_url(settings),
        external=False,
        log=str(_log_path(settings)),
    )


def bring_up(settings: Settings, wanted: bool | None = None) -> tuple[bool, str]:
    """What `make dashboards` and `make demo` do for SQL Lab's Lake: an external endpoint when one is configured,
    else the local Thrift server when wanted (``wanted``, else MO_LAKE_SQL_SERVER) and a lake exists. Never
    raises: the dashboards come up without it. Returns (ok, a line saying what happened)."""
    if settings.lake_sql_url:
        return True, f"SQL Lab's Lake: {settings.lake_sql_url.split('@')[-1]} (MO_LAKE_SQL_URL)"
    if not (settings.lake_sql_server if wanted is None else wanted):
        return True, "SQL Lab's Lake: not started (MO_LAKE_SQL_SERVER=false or --no-lake-sql)"
    if not has_lake(settings):
        return True, "SQL Lab's Lake: no lake yet (`make demo` builds one), its SQL endpoint is not started"
    try:
        state = start(settings)
    except LakeSqlError as exc:  # SQL Lab's Lake then answers "connection refused"; the rest works
        return False, f"SQL Lab's Lake: not started: {exc}"
    return True, f"SQL Lab's Lake: Spark Thrift server on 127.0.0.1:{settings.lake_sql_port} (pid {state.pid})"


def start(settings: Settings) -> LakeSqlStatus:
    """Start the Thrift server in the background (idempotent); returns once it accepts connections."""
    from spark_jobs.session import check_java, prepare_local_dirs

    if settings.lake_sql_url:
        raise LakeSqlError(f"MO_LAKE_SQL_URL is set ({settings.lake_sql_url}): the lake's SQL endpoint runs elsewhere")
    current = status(settings)
    if current.running:
        return current
    if current.pid is not None:  # started but not listening yet (another `start` is waiting for it)
        _wait_listening(settings, current.pid, None)
        return status(settings)
    if not has_lake(settings):
        raise LakeSqlError(f"no lake under {settings.home} yet (`mo sync` or `make demo` builds one)")
    if _port_open(settings.lake_sql_port):
        raise LakeSqlError(
            f"127.0.0.1:{settings.lake_sql_port} is already in use; choose another port with MO_LAKE_SQL_PORT"
        )
    check_java()
    prepare_local_dirs(settings)  # the embedded catalog's tables, so that a read-only open finds them
    workdir = _dir(settings)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = _log_path(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("JAVA_TOOL_OPTIONS", "-Duser.timezone=UTC")
    with open(log_path, "ab") as log_file:
        # Its own session: the server outlives the `mo` command and is stopped as a group (spark-submit's JVM).
        # Its own folder: whatever Spark leaves in the working directory stays under MO_HOME/lake-sql.
        proc = subprocess.Popen(
            server_command(settings),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _pidfile(settings).write_text(str(proc.pid))
    try:
        _wait_listening(settings, proc.pid, proc)
    except BaseException:
        stop(settings)
        raise
    return status(settings)


def _wait_listening(settings: Settings, pid: int, proc: subprocess.Popen | None) -> None:
    import psutil

    log_path = _log_path(settings)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        exited = proc.poll() is not None if proc is not None else not psutil.pid_exists(pid)
        if exited:
            raise LakeSqlError(f"the lake's SQL server stopped while starting: {_log_tail(log_path)} (log: {log_path})")
        if _port_open(settings.lake_sql_port):
            return
        time.sleep(0.5)  # the server offers no readiness signal besides its port
    raise LakeSqlError(f"the lake's SQL server did not listen within {START_TIMEOUT_S:.0f} s; log: {log_path}")


def _log_tail(path: Path) -> str:
    if not path.exists():
        return "no output"
    lines = [line for line in path.read_text(errors="replace").splitlines() if "ERROR" in line or "Exception" in line]
    return " | ".join(lines[-2:]) or "no error in the log"


def stop(settings: Settings) -> bool:
    """Stop the Thrift server `start` left running (its whole process group); False when none runs."""
    path = _pidfile(settings)
    if not path.exists():
        return False
    pid = _running_pid(settings)
    path.unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
    return True


def status_dict(settings: Settings) -> dict[str, Any]:
    return asdict(status(settings))
