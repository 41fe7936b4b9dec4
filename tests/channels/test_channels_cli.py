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


def test_worker_refuses_sandbox_secrets_outside_development(tmp_path) -> None:
    result = run_mo("channels", "worker", "--once", env={"MO_ENV": "production"}, home=tmp_path)
    line = _one_error_line(result)
    assert "MO_CHANNEL_WECHAT_SECRET" in line and "MO_CHANNEL_WEBHOOK_SECRET" in line and "sandbox default" in line
