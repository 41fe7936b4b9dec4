"""Run the project's DAGs through Airflow in this process, on a private SQLite metadata database.

Used by `make demo` and the DAG tests. Airflow reads its configuration when first imported, so
`configure()` must run before anything imports airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mo.config import REPO_ROOT, Settings
from mo.errors import ConfigError, MoError

if TYPE_CHECKING:
    from mo.progress import Progress

DAGS_FOLDER = REPO_ROOT / "dags"


def airflow_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # SQLite lets one writer in at a time; the UI writes twice at once when a run is triggered with "unpause"
        # (the run and the DAG's pause flag) while the scheduler writes too. pysqlite's default wait for the lock
        # is 5 s, after which the loser answers 500 (seen on a busy machine: the DAG stayed paused and the run
        # never started); 60 s outlasts any write of the scheduler or the UI.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def configure(home: Path) -> None:
    """Point Airflow at `home` and create its metadata database once."""
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        raise MoError("airflow was imported before its home was configured")
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(home))
    if not (home / "airflow.db").exists():
        airflow = Path(sys.executable).parent / "airflow"
        result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise MoError(f"airflow db migrate failed: {tail[0] if tail else result.returncode}")


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        raise MoError(f"DAG import error in {first[0]}: {first[1].strip().splitlines()[-1]}")
    return bag.dags


def run_dag(dag_id: str, run_conf: dict | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run one whole DAG with dag.test(); returns the run state and each task's state.

    With ``progress``, each task instance gets its line as it ends (``source_sync.extract ... ok (12 s)``),
    and the tasks that never ran (skipped by a short-circuit, upstream failed) get theirs after the run.
    """
    dag = load_dags()[dag_id]
    if progress is None:
        dag_run = dag.test(run_conf=run_conf)
    else:
        from airflow.sdk.listener import get_listener_manager

        progress.reported -= {f"{dag_id}.{task_id}" for task_id in dag.task_ids}
        listener = progress.task_listener()
        manager = get_listener_manager()
        manager.add_listener(listener)
        try:
            dag_run = dag.test(run_conf=run_conf)
        finally:
            manager.pm.unregister(listener)
    instances = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    tasks = {task_id: str(ti.state) for task_id, ti in instances.items()}
    if progress is not None:
        for task_id in dag.task_ids:
            name = f"{dag_id}.{task_id}"
            if name not in progress.reported:
                progress.end(name, _NOT_RUN.get(tasks.get(task_id, "None"), f"not run ({tasks.get(task_id)})"))
    return {"dag_id": dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": tasks}


_NOT_RUN = {"skipped": "skipped", "upstream_failed": "not run (upstream failed)", "None": "not run"}


# --- `mo airflow`: the Airflow UI and scheduler on the embedded defaults --------------------------------

AIRFLOW_USER_VAR = "MO_AIRFLOW_USER"
AIRFLOW_PASSWORD_VAR = "MO_AIRFLOW_PASSWORD"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def login_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The UI login: ``MO_AIRFLOW_USER`` (default ``admin``) and ``MO_AIRFLOW_PASSWORD`` (required)."""
    environ = os.environ if environ is None else environ
    user = environ.get(AIRFLOW_USER_VAR, "").strip() or "admin"
    password = environ.get(AIRFLOW_PASSWORD_VAR, "")
    if not password:
        raise ConfigError(
            f"{AIRFLOW_PASSWORD_VAR} is not set: choose the password of the Airflow login "
            f"'{user}' (e.g. {AIRFLOW_PASSWORD_VAR}=... make airflow)"
        )
    if ":" in user or "," in user or not user.isprintable():
        raise ConfigError(f"{AIRFLOW_USER_VAR}={user!r} is not a valid user name (no ':' or ',')")
    return user, password


def server_env(home: Path, host: str, port: int, user: str, passwords_file: Path) -> dict[str, str]:
    """The environment of every Airflow component: the project's DAGs, LocalExecutor, SimpleAuthManager."""
    env = {key: value for key, value in os.environ.items() if key != AIRFLOW_PASSWORD_VAR}
    env.update(airflow_env(home))
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{host}:{port}/execution/",
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            # the servers the UI reads running tasks' logs from: free ports, so two homes can run side by side
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            # task logs at INFO, so the UI shows what each task did
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    return env


def _write_passwords_file(path: Path, user: str, password: str) -> None:
    """SimpleAuthManager reads the login's password from this file; only this user may read it."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({user: password}, out)
    os.chmod(path, 0o600)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _health(host: str, port: int) -> dict[str, Any] | None:
    """The API server's health answer, or None while it does not answer."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/v2/monitor/health", timeout=3) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _is_ready(health: dict[str, Any] | None) -> bool:
    if not health:
        return False
    return all(
        (health.get(component) or {}).get("status") == "healthy"
        for component in ("metadatabase", "scheduler", "dag_processor", "triggerer")
    )


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class AirflowServer:
    """Airflow's four components as child processes in one process group of their own.

    The group lets one signal reach every process Airflow starts (task runners, Spark JVMs); the
    children of each component are also collected before the stop, since a task runner puts itself in
    a group of its own.
    """

    def __init__(self, home: Path, logs: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.logs = logs
        self.env = dict(env)
        self.processes: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None

    def start(self) -> None:
        airflow = str(Path(sys.executable).parent / "airflow")
        self.logs.mkdir(parents=True, exist_ok=True)
        for component in COMPONENTS:
            log = open(self.logs / f"airflow-{component}.log", "ab")  # noqa: SIM115 - the child keeps it
            try:
                proc = subprocess.Popen(
                    [airflow, component],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.home,
                    process_group=0 if self.pgid is None else self.pgid,
                )
            finally:
                log.close()
            if self.pgid is None:
                self.pgid = proc.pid
            self.processes[component] = proc

    def exited(self) -> tuple[str, int] | None:
        """The first component that is no longer running, with its exit code."""
        for component, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                return component, code
        return None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the group, then SIGKILL to whatever of it (and of the components' trees) is left."""
        import signal
        import time

        import psutil

        tree: list[psutil.Process] = []
        for proc in self.processes.values():
            try:
                tree.extend(psutil.Process(proc.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        for proc in self.processes.values():
            proc.wait()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080, echo=print) -> int:
    """Run Airflow (API server and UI, scheduler, DAG processor, triggerer) until Ctrl-C or SIGTERM.

    The metadata database is ``MO_HOME/airflow`` (the one ``make demo`` records its runs in), the DAGs are
    the project's, tasks run with the LocalExecutor on this machine with the caller's ``MO_*`` settings.
    Returns the exit code: 0 after a requested stop, 1 when a component died.
    """
    import signal
    import time

    user, password = login_from_env()
    if _port_taken(host, port):
        raise ConfigError(f"{host}:{port} is already in use; choose another port with --port")
    home = settings.home / "airflow"
    if not (home / "airflow.db").exists():
        echo(f"creating the Airflow metadata database in {home} ...")
    configure(home)
    passwords_file = home / "simple_auth_manager_passwords.json"
    _write_passwords_file(passwords_file, user, password)
    logs = settings.home / "logs"
    server = AirflowServer(home, logs, server_env(home, host, port, user, passwords_file))

    def stop_requested(signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_requested)
    url = f"http://{host}:{port}"
    echo(f"Airflow on {url}: DAGs from {DAGS_FOLDER}, metadata in {home}")
    echo(f"component logs: {logs}/airflow-<component>.log; task logs: {home}/logs")
    started = time.monotonic()
    code = 0
    try:
        server.start()
        ready = False
        while True:
            dead = server.exited()
            if dead is not None:
                component, exit_code = dead
                log = logs / f"airflow-{component}.log"
                echo(f"error: airflow {component} exited with code {exit_code}: {_last_line(log)} (see {log})")
                code = 1
                break
            if not ready and _is_ready(_health(host, port)):
                ready = True
                echo(
                    f"ready in {time.monotonic() - started:.0f} s: open {url} and log in as '{user}' "
                    f"(password from {AIRFLOW_PASSWORD_VAR}); Ctrl-C stops Airflow"
                )
            time.sleep(1)
    except KeyboardInterrupt:
        echo("stopping Airflow ...")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    echo("Airflow stopped")
    return code
