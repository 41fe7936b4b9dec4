"""The sync runs unchanged on a Spark standalone cluster: only MO_SPARK_MASTER differs from local mode.

A master and a 1-core/1g worker are started on 127.0.0.1 from pyspark's own launcher scripts, the sync
is submitted with spark-submit against a SQLite source in a private MO_HOME, and silver is checked from
this test's own session. Master and worker are stopped in ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sync_world import SourceWorld, expected_silver, frame_rows

from mo.oltp.db import make_engine, migrate
from spark_jobs.lake import silver_table
from spark_jobs.session import register_catalog
from spark_jobs.submit_sync import spark_home, submit_command

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TABLES = ["organizations", "agents", "customers"]


def _log_tail(*logs: Path, lines: int = 30) -> str:
    """The end of each launcher log, so a timeout says why the master or worker did not come up."""
    parts = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
        parts.append(f"--- {log.name} ---\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


def _wait_for(check, what: str, timeout: float = 180, logs: tuple[Path, ...] = ()) -> None:
    """Poll ``check`` until it holds; a busy 2-core machine can take a while to start two JVMs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError):  # not listening yet, or a half-written status page
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{_log_tail(*logs)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive_workers(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
        state = json.load(resp)
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the launcher's own process group (start_new_session)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_sync_submitted_to_a_standalone_cluster(spark, settings, tmp_path):
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=8)

    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "MO_SPARK_MASTER": master_url,
        "MO_SPARK_DRIVER_MEMORY": "1g",
        "MO_SPARK_EXTRA_CONF": "spark.cores.max=1,spark.executor.memory=768m,spark.driver.host=127.0.0.1",
    }
    spark_class = str(spark_home() / "bin" / "spark-class")
    master = worker = None
    try:
        master = _start(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
             "--webui-port", str(master_ui)],
            env,
            tmp_path / "master.log",
        )  # fmt: skip
        _wait_for(
            lambda: _port_open(master_port) and _port_open(master_ui),
            "the Spark master",
            logs=(tmp_path / "master.log",),
        )
        worker = _start(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1", "--cores", "1",
             "--memory", "1g", "--webui-port", str(worker_ui), "--work-dir", str(tmp_path / "work")],
            env,
            tmp_path / "worker.log",
        )  # fmt: skip
        _wait_for(
            lambda: _alive_workers(master_ui) >= 1,
            "the worker to register",
            logs=(tmp_path / "master.log", tmp_path / "worker.log"),
        )

        from mo.config import get_settings

        cluster_settings = get_settings().model_copy(update={"spark_master": master_url})
        submitted = subprocess.run(
            submit_command(cluster_settings, TABLES), env=env, capture_output=True, text=True, timeout=600
        )
        assert submitted.returncode == 0, submitted.stderr[-4000:]
        report = json.loads(submitted.stdout.strip().splitlines()[-1])
        assert set(report["tables"]) == set(TABLES)
        executor_logs = list((tmp_path / "work").glob("app-*/*/stderr"))
        assert executor_logs, "no executor ran on the worker"
    finally:
        _stop(worker)
        _stop(master)

    register_catalog(spark, settings)
    key = settings.require_pii_key()
    for name in TABLES:
        expected = expected_silver(world.contracts[name], world.live_rows(name), key)
        assert frame_rows(spark.table(silver_table(settings, name))) == expected, name
    engine.dispose()
