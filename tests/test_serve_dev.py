"""`make serve`'s process handling (serving/serve-dev.sh): the API, the provider sandbox, one campaign dispatcher and
one channel worker over the same MO_HOME, receipts pointed at the API's webhooks, logs under MO_HOME/logs; Ctrl-C
and `make serve-stop` stop all four."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port, unique

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "serving" / "serve-dev.sh"
SERVING_PYTHON = REPO / "serving" / ".venv" / "bin" / "python"
MO = Path(sys.executable).with_name("mo")

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def serve_env(mo_home: Path, kafka_broker) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert SERVING_PYTHON.exists(), "serving/.venv is missing: run `make serving-env`"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MO_", "SERVING_"))}
    env.update(
        MO_HOME=str(mo_home),
        MO_PII_KEY="serve-tests-pii-key-0123456789abcdef",
        MO_KAFKA_BOOTSTRAP=kafka_broker.bootstrap,
        MO_KAFKA_TOPIC_PREFIX=unique("serve"),
        MO_REDIS_URL="redis://127.0.0.1:6379/13",
        MO_REDIS_PREFIX=unique("serve"),
        MO_CHANNEL_SANDBOX_PORT=str(free_port()),
        SERVING_PORT=str(free_port()),
        MO=str(MO),
        SERVING_PYTHON=str(SERVING_PYTHON),
    )
    # what `make serve` does before the script: the source migrated (the dispatcher refuses an unmigrated one)
    done = subprocess.run([str(MO), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return env


def wait_until(check, what: str, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    """Poll an observable condition (a port answering, a file written) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def environ_of(pid: int) -> dict[str, str]:
    return psutil.Process(pid).environ()


def start(env: dict[str, str]) -> tuple[subprocess.Popen, dict[str, int]]:
    """The script in its own process group (as make runs it in a terminal's), and the pids of the four processes."""
    home = Path(env["MO_HOME"])
    log = (home / "serve.out").open("wb")
    script = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        api = f"http://127.0.0.1:{env['SERVING_PORT']}/health"
        wait_until(lambda: answers(api) or script.poll() is not None, "the API")
        assert script.poll() is None, (home / "serve.out").read_text()[-3000:]
        assert answers(f"http://127.0.0.1:{env['MO_CHANNEL_SANDBOX_PORT']}/_sandbox/health")
        dispatcher, worker = (int(p) for p in (home / "serving" / "workers.pid").read_text().split())
        pids = {
            "api": int((home / "serving" / "api.pid").read_text()),
            "sandbox": int((home / "sandbox" / "sandbox.pid").read_text()),
            "dispatcher": dispatcher,
            "worker": worker,
        }
        assert int((home / "serving" / "serve.pid").read_text()) == script.pid
        return script, pids
    except BaseException:
        os.killpg(script.pid, signal.SIGKILL)
        raise


def check_running(env: dict[str, str], pids: dict[str, int]) -> None:
    home = Path(env["MO_HOME"])
    webhooks = f"http://127.0.0.1:{env['SERVING_PORT']}/v1/webhooks"
    for name in ("dispatcher", "worker"):
        process = psutil.Process(pids[name])
        assert process.is_running() and process.status() != psutil.STATUS_ZOMBIE, name
    assert "campaigns dispatch" in " ".join(psutil.Process(pids["dispatcher"]).cmdline())
    assert "channels worker" in " ".join(psutil.Process(pids["worker"]).cmdline())
    for name in ("dispatcher", "worker", "sandbox"):
        found = environ_of(pids[name])
        assert found["MO_CHANNEL_WEBHOOK_URL"] == webhooks, name
        assert found["MO_HOME"] == str(home), name
    assert environ_of(pids["dispatcher"])["MO_CHANNEL_LINK_BASE_URL"] == f"http://127.0.0.1:{env['SERVING_PORT']}"
    # the workers log under MO_HOME/logs, and neither has failed at its start (stores, broker, tables)
    logs = home / "logs"
    for log in ("campaign-dispatcher.log", "channel-worker.log"):
        text = (logs / log).read_text()
        assert "Traceback" not in text and "error:" not in text, text[-3000:]


def check_all_stopped(script: subprocess.Popen, pids: dict[str, int], home: Path) -> None:
    assert script.wait(timeout=90) in (130, 143, 0), (home / "serve.out").read_text()[-3000:]
    for name, pid in pids.items():
        # each was waited for by the script or its own supervisor: gone, not even a zombie of ours
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, name
    assert not (home / "serving" / "serve.pid").exists()
    assert not (home / "serving" / "api.pid").exists()
    assert "stopped" in (home / "serve.out").read_text()


def test_ctrl_c_stops_the_api_the_sandbox_and_both_workers(serve_env: dict[str, str]) -> None:
    script, pids = start(serve_env)
    try:
        check_running(serve_env, pids)
        os.killpg(script.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
        check_all_stopped(script, pids, Path(serve_env["MO_HOME"]))
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)


def test_make_serve_stop_stops_what_make_serve_started(serve_env: dict[str, str]) -> None:
    script, pids = start(serve_env)
    try:
        check_running(serve_env, pids)
        env = {**serve_env, "PATH": os.environ["PATH"]}
        stopped = subprocess.run(["make", "-s", "serve-stop"], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=300)  # fmt: skip
        assert stopped.returncode == 0, stopped.stderr
        assert "make serve stopped" in stopped.stdout
        check_all_stopped(script, pids, Path(serve_env["MO_HOME"]))
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
