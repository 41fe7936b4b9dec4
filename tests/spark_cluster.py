"""A Spark standalone master and one worker on 127.0.0.1, started from pyspark's own launcher classes.

Used through the session fixture ``spark_cluster`` (tests/conftest.py): one cluster per test run, shared by
every test that submits to a cluster. The worker is small (1 core, 1 GB), so a test's executors must ask
for at most that much (``cluster_spark_conf``).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# What a driver submitting to the test cluster asks for: one core of the 1-core/1g worker, executors that
# fit in it, and the driver reachable on loopback (executors connect back to it).
CLUSTER_SPARK_CONF = {
    "spark.cores.max": "1",
    "spark.executor.memory": "768m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # executors run this interpreter (the project's environment), as the driver does
    "spark.pyspark.python": sys.executable,
}


def cluster_spark_conf() -> str:
    """``CLUSTER_SPARK_CONF`` in the ``MO_SPARK_EXTRA_CONF`` form (``k=v,k=v``)."""
    return ",".join(f"{key}={value}" for key, value in CLUSTER_SPARK_CONF.items())


@dataclass
class SparkCluster:
    master_url: str
    ui_port: int
    work_dir: Path
    logs: tuple[Path, ...]

    def executor_logs(self) -> list[Path]:
        """The stderr of every executor the worker has run (one folder per application and executor)."""
        return list(self.work_dir.glob("app-*/*/stderr"))


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _log_tail(*logs: Path, lines: int = 30) -> str:
    """The end of each launcher log, so a timeout says why the master or worker did not come up."""
    parts = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
        parts.append(f"--- {log.name} ---\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


def _wait_for(check: Callable[[], bool], what: str, timeout: float, logs: tuple[Path, ...]) -> None:
    """Poll ``check`` until it holds; a busy 2-core machine can take minutes to start two JVMs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError):  # not listening yet, or a half-written status page
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{_log_tail(*logs)}")


def _free_port() -> int:
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


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the launcher's own process group (start_new_session)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_cluster(base: Path, timeout: float = 300) -> tuple[SparkCluster, list[subprocess.Popen]]:
    """Start a master and a 1-core/1g worker under ``base``; returns the cluster and the processes to stop."""
    master_port, master_ui, worker_ui = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    env = {**os.environ, "SPARK_HOME": str(_spark_home()), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(_spark_home() / "bin" / "spark-class")
    master_log, worker_log = base / "master.log", base / "worker.log"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            _start(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(master_port),
                    "--webui-port",
                    str(master_ui),
                ],
                env,
                master_log,
            )  # fmt: skip
        )
        _wait_for(lambda: _port_open(master_port) and _port_open(master_ui), "the Spark master", timeout, (master_log,))
        processes.append(
            _start(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    str(worker_ui),
                    "--work-dir",
                    str(base / "work"),
                ],
                env,
                worker_log,
            )  # fmt: skip
        )
        _wait_for(lambda: _alive_workers(master_ui) >= 1, "the worker to register", timeout, (master_log, worker_log))
    except BaseException:
        for proc in reversed(processes):
            stop(proc)
        raise
    return SparkCluster(master_url, master_ui, base / "work", (master_log, worker_log)), processes
