"""The health probes against real stores: the embedded defaults, the machine's Redis and PostgreSQL, and dead ones."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import MACHINE_POSTGRES_URL, MACHINE_REDIS_URL
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app

SERVING_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MO_HOME of its own: the embedded defaults live there."""
    monkeypatch.setenv("MO_HOME", str(tmp_path))
    for name in ("MO_SOURCE_URL", "MO_SERVING_DB_URL", "MO_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def probe(settings: Settings, path: str):
    with TestClient(create_app(settings)) as client:
        return client.get(path)


def test_liveness_answers_ok(home: Path) -> None:
    response = probe(Settings(), "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_development_runs_on_the_embedded_stores_under_mo_home(home: Path) -> None:
    response = probe(Settings(), "/ready")
    checks = response.json()["checks"]
    assert (checks["serving_store"], checks["source"], checks["redis"]) == ("ok", "ok", "ok")
    assert (home / "source.db").exists() and (home / "serving" / "redis.db").exists()


def test_embedded_redis_stops_with_the_app(home: Path) -> None:
    app = create_app(Settings())
    with TestClient(app):
        socket_file = app.state.stores.redis.socket_file
        assert os.path.exists(socket_file)
    assert not os.path.exists(socket_file)


@pytest.mark.postgres
def test_not_ready_when_redis_is_down_and_the_reason_is_named(home: Path, closed_port: int) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0", database_url=MACHINE_POSTGRES_URL)
    response = probe(settings, "/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("error: ConnectionError")
    assert body["checks"]["serving_store"] == "ok"


@pytest.mark.redis
def test_not_ready_when_a_database_or_the_broker_is_down(
    home: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MO_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    settings = Settings(
        redis_url=MACHINE_REDIS_URL,
        database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/postgres",
    )
    response = probe(settings, "/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["serving_store"].startswith("error: OperationalError")
    assert body["checks"]["broker"].startswith("error:") and str(closed_port) in body["checks"]["broker"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving_env(home: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "MO_"))}
    env.update({"MO_HOME": str(home), "PYTHONPATH": f"{SERVING_DIR.parent}:{SERVING_DIR}"}, **overrides)
    return env


def test_uvicorn_serves_the_module_app_as_the_image_runs_it(home: Path) -> None:
    """The container's command (`uvicorn app.main:app`) starts and answers the compose healthcheck's URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=SERVING_DIR,
        env=_serving_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    assert response.read() == b'{"status":"ok"}'
                    assert response.headers["x-request-id"]
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else "uvicorn exited"
                assert time.monotonic() < deadline, "uvicorn did not answer within 30 s"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_production_process_refuses_to_start_without_its_secrets(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=SERVING_DIR,
        env=_serving_env(home, SERVING_ENVIRONMENT="production"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refusing to start in production" in result.stderr
    assert "SERVING_SECRET_KEY is the placeholder" in result.stderr
    assert "MO_PII_KEY" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
