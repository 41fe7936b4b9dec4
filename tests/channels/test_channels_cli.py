"""`mo channels`: the sandbox starts detached, answers as the providers do, reports its status and stops; the
worker refuses the sandbox's well-known secrets outside development."""

from __future__ import annotations

import json
import uuid

import psutil

from mo.channels.adapters import SENT, make_adapter
from mo.config import get_settings
from tests.channels.helpers import PAYLOADS, phone
from tests.conftest import free_port
from tests.mo.test_cli import _one_error_line, run_mo


def test_sandbox_start_status_stop(tmp_path, monkeypatch) -> None:
    port = str(free_port())
    env = {"MO_CHANNEL_SANDBOX_PORT": port}
    started = run_mo("channels", "sandbox", "start", env=env, home=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"http://127.0.0.1:{port}"
        status = json.loads(run_mo("channels", "sandbox", "status", env=env, home=tmp_path).stdout)
        assert status["running"] and status["pid"]
        assert listening(status["pid"]) == {("127.0.0.1", int(port))}  # loopback only by default
        monkeypatch.setenv("MO_HOME", str(tmp_path))
        monkeypatch.setenv("MO_CHANNEL_SANDBOX_PORT", port)  # no base URL set: the adapters use the sandbox
        result = make_adapter("sms", get_settings()).send(str(uuid.uuid4()), phone(1), PAYLOADS["sms"])
        assert result.status == SENT
        assert (tmp_path / "sandbox" / "sandbox.db").exists()
    finally:
        stopped = run_mo("channels", "sandbox", "stop", env=env, home=tmp_path)
    assert stopped.stdout.strip() == "stopped"
    assert not psutil.pid_exists(status["pid"])
    assert not json.loads(run_mo("channels", "sandbox", "status", env=env, home=tmp_path).stdout)["running"]


def listening(pid: int) -> set[tuple[str, int]]:
    sockets = psutil.Process(pid).net_connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in sockets if c.status == psutil.CONN_LISTEN}


def test_sandbox_binds_the_configured_host(tmp_path) -> None:
    """MO_CHANNEL_SANDBOX_HOST=0.0.0.0 (docker-compose.yml: the channel worker is another container) binds every
    address; this machine still reaches it on loopback."""
    port = str(free_port())
    env = {"MO_CHANNEL_SANDBOX_PORT": port, "MO_CHANNEL_SANDBOX_HOST": "0.0.0.0"}
    started = run_mo("channels", "sandbox", "start", env=env, home=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"http://127.0.0.1:{port}"
        status = json.loads(run_mo("channels", "sandbox", "status", env=env, home=tmp_path).stdout)
        assert status["host"] == "0.0.0.0" and listening(status["pid"]) == {("0.0.0.0", int(port))}
    finally:
        assert run_mo("channels", "sandbox", "stop", env=env, home=tmp_path).stdout.strip() == "stopped"


def test_worker_refuses_sandbox_secrets_outside_development(tmp_path) -> None:
    result = run_mo("channels", "worker", "--once", env={"MO_ENV": "production"}, home=tmp_path)
    line = _one_error_line(result)
    assert "MO_CHANNEL_WECHAT_SECRET" in line and "MO_CHANNEL_WEBHOOK_SECRET" in line and "sandbox default" in line
