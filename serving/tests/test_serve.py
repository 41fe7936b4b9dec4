"""How the API is started and set up: the accounts CLI (`python -m app.cli`) on the embedded defaults,
and several uvicorn workers whose /metrics add up (the compose service's command)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app

SERVING_DIR = Path(__file__).resolve().parent.parent
ELSEWHERE = 7


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "MO_", "PROMETHEUS_"))}
    env.update({"MO_HOME": str(home), "PYTHONPATH": f"{SERVING_DIR.parent}:{SERVING_DIR}"}, **extra)
    return env


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=SERVING_DIR,
        env=env_for(home, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MO_HOME with the source migrated by the CLI, as `make serve` does first."""
    path = tmp_path_factory.mktemp("serve-home")
    result = cli(path, "migrate")
    assert result.returncode == 0, result.stderr
    assert "source schema up to date" in result.stdout
    return path


def token(home: Path, data: dict[str, str]):  # type: ignore[no-untyped-def]
    os.environ["MO_HOME"] = str(home)
    for name in ("MO_SOURCE_URL", "MO_SERVING_DB_URL", "MO_REDIS_URL"):
        os.environ.pop(name, None)
    with TestClient(create_app(Settings())) as client:
        return client.post("/v1/auth/token", data=data)


def test_bootstrap_demo_writes_private_credentials_that_log_in_and_reuses_them(home: Path) -> None:
    first = cli(home, "bootstrap-demo")
    assert first.returncode == 0, first.stderr
    path = home / "serving-demo-credentials.json"
    assert str(path) in first.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text())
    app_client = saved["app_client"]
    assert app_client["client_secret"] not in first.stdout and saved["admin"]["password"] not in first.stdout
    answer = token(
        home,
        {
            "grant_type": "client_credentials",
            "client_id": app_client["client_id"],
            "client_secret": app_client["client_secret"],
        },
    )
    assert answer.status_code == 200, answer.text
    admin = saved["admin"]
    answer = token(home, {"grant_type": "password", "username": admin["username"], "password": admin["password"]})
    assert answer.status_code == 200 and "audit:read" in answer.json()["scope"].split()
    again = cli(home, "bootstrap-demo", "--quiet")
    assert again.returncode == 0 and again.stdout.strip() == str(path)
    assert json.loads(path.read_text()) == saved, "working credentials must be kept, not rotated"


def test_bootstrap_demo_gives_new_secrets_when_the_file_is_lost(home: Path) -> None:
    assert cli(home, "bootstrap-demo").returncode == 0
    path = home / "serving-demo-credentials.json"
    old = json.loads(path.read_text())
    path.unlink()
    assert cli(home, "bootstrap-demo").returncode == 0
    new = json.loads(path.read_text())
    assert new["app_client"]["client_secret"] != old["app_client"]["client_secret"]
    stale = token(
        home,
        {
            "grant_type": "client_credentials",
            "client_id": "demo-app",
            "client_secret": old["app_client"]["client_secret"],
        },
    )
    assert stale.status_code == 401


def test_secrets_come_from_the_environment_with_a_one_line_error(home: Path) -> None:
    missing = cli(home, "create-user", "agent.li", "--role", "service_agent")
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "error: SERVING_USER_PASSWORD is not set: the new user's password comes from the environment only\n"
    )
    short = cli(home, "create-user", "agent.li", "--role", "service_agent", SERVING_USER_PASSWORD="short")
    assert short.returncode == 1 and short.stderr.startswith("error: user 'agent.li' not created: password too short")
    made = cli(
        home, "create-user", "agent.li", "--role", "service_agent", SERVING_USER_PASSWORD="a long enough password"
    )
    assert made.returncode == 0, made.stderr
    twice = cli(
        home, "create-user", "agent.li", "--role", "service_agent", SERVING_USER_PASSWORD="a long enough password"
    )
    assert twice.returncode == 1 and twice.stderr == "error: user 'agent.li' exists\n"


def test_the_first_admin_and_an_app_client_from_the_environment(home: Path) -> None:
    no_admin = cli(home, "bootstrap-admin", SERVING_ADMIN_USER="root.admin")
    assert no_admin.returncode == 1 and "SERVING_ADMIN_PASSWORD is not set" in no_admin.stderr
    admin = cli(home, "bootstrap-admin", SERVING_ADMIN_USER="root.admin", SERVING_ADMIN_PASSWORD="x" * 16)
    assert admin.returncode == 0 and "admin 'root.admin' created" in admin.stdout
    kept = cli(home, "bootstrap-admin", SERVING_ADMIN_USER="root.admin", SERVING_ADMIN_PASSWORD="y" * 16)
    assert kept.returncode == 0 and "exists (role admin): unchanged" in kept.stdout
    secret = "s" * 32
    client = cli(home, "create-client", "wechat-mini", "--role", "app", SERVING_CLIENT_SECRET=secret)
    assert client.returncode == 0, client.stderr
    answer = token(home, {"grant_type": "client_credentials", "client_id": "wechat-mini", "client_secret": secret})
    assert answer.status_code == 200


def test_demo_accounts_are_refused_outside_development(home: Path) -> None:
    result = cli(home, "bootstrap-demo", SERVING_ENVIRONMENT="production")
    assert result.returncode == 1
    assert result.stderr.startswith("error: refusing to start in production:") and result.stderr.count("\n") == 1


def test_grants_are_refused_on_sqlite_by_name(home: Path) -> None:
    result = cli(home, "grant-logins", "--api-user", "mo_api")
    assert result.returncode == 1
    assert result.stderr == "error: grants not applied: logins and grants need MariaDB or PostgreSQL, not sqlite\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_several_workers_report_their_metrics_together(home: Path, tmp_path: Path) -> None:
    """The compose service's shape: uvicorn --workers 2 with PROMETHEUS_MULTIPROC_DIR; /metrics counts
    the requests every process served, whichever worker answers it."""
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # Another worker's share, deterministic: a process that served ELSEWHERE requests and left its file.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from app.core.middleware import REQUESTS; REQUESTS.labels('/health', 'GET', '200').inc({ELSEWHERE})",
        ],
        cwd=SERVING_DIR,
        env=env_for(home, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=SERVING_DIR,
        env=env_for(home, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                assert server.poll() is None, "uvicorn exited"
                assert time.monotonic() < deadline, "uvicorn did not answer within 60 s"
                time.sleep(0.3)
        for _ in range(9):
            _get(f"http://127.0.0.1:{port}/health")
        served = 10 + ELSEWHERE
        text = _get(f"http://127.0.0.1:{port}/metrics")
        counted = sum(
            float(m)
            for m in re.findall(
                r'^mo_api_requests_total\{method="GET",route="/health",status="200"\} (\S+)$', text, flags=re.M
            )
        )
        assert counted == served, text[:2000]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
