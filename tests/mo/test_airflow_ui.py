"""`mo airflow`: the Airflow UI with the project's DAGs, driven through the machine's Chromium.

One `mo airflow` (API server and UI, scheduler, DAG processor, triggerer) serves every test here, in a
private MO_HOME on a free port, with a few events on the test broker for `events_ingest` to land.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port, unique

START_TIMEOUT_S = 300  # Airflow's four components and the metadata database on a busy 2-core machine
RUN_TIMEOUT_S = 600  # one events_ingest run: queued, then a task process starting its own Spark JVM

pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.browser, pytest.mark.slow]


def _mo_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MO_", "AIRFLOW"))}
    env.update({"MO_HOME": str(home), "MO_PII_KEY": "test-key", **extra})
    return env


def _mo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mo", *args], capture_output=True, text=True, env=env, timeout=120)


def test_refuses_to_start_without_a_password(tmp_path):
    result = _mo("airflow", "--port", str(free_port()), env=_mo_env(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert lines == [lines[0]] and lines[0].startswith("error: MO_AIRFLOW_PASSWORD is not set")
    assert not (tmp_path / "airflow").exists()  # nothing started, nothing written


def test_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _mo("airflow", "--port", str(port), env=_mo_env(tmp_path, MO_AIRFLOW_PASSWORD="x"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: 127.0.0.1:{port} is already in use; choose another port with --port"


class AirflowUnderTest:
    """`mo airflow` as a user starts it: its own session, stopped with SIGTERM."""

    def __init__(self, home: Path, port: int, env: dict[str, str]) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.user = "engineer"
        self.password = env["MO_AIRFLOW_PASSWORD"]
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mo", "airflow", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if line.startswith("ready in "):
                self._ready.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready.wait(1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("mo airflow did not become ready:\n" + "\n".join(self.output))

    def descendants(self) -> list:
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory, kafka_broker):
    """One `mo airflow` for the session, with five events waiting on the test broker."""
    from mo.config import Settings
    from mo.events.producer import EventPublisher

    home = tmp_path_factory.mktemp("airflow_ui_home")
    prefix = unique("ui")
    env = _mo_env(
        home,
        MO_AIRFLOW_USER="engineer",
        MO_AIRFLOW_PASSWORD=secrets.token_urlsafe(16),
        MO_KAFKA_BOOTSTRAP=kafka_broker.bootstrap,
        MO_KAFKA_TOPIC_PREFIX=prefix,
    )
    publisher = EventPublisher(Settings(home=home, kafka_bootstrap=kafka_broker.bootstrap, kafka_topic_prefix=prefix))
    for i in range(1, 6):
        publisher.publish(
            {
                "event_id": str(uuid.UUID(int=i, version=4)),
                "event_type": "message_open",
                "schema_version": 1,
                "occurred_at": "2026-01-02T08:00:00.000000Z",
                "customer_id": i,
                "source": "app",
                "payload": {"message_id": f"m{i}", "channel": "app_push"},
            }
        )
    publisher.close()
    server = AirflowUnderTest(home, free_port(), env)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ui_page(airflow_ui, browser):
    """A page logged in through the UI's own login form."""
    context = browser.new_context(base_url=airflow_ui.url)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto("/auth/login", timeout=60_000)
    page.get_by_role("textbox", name="username").fill(airflow_ui.user)
    page.get_by_label("password").fill(airflow_ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    yield page
    context.close()
    assert not page_errors, page_errors


def test_the_ui_lists_the_three_dags(ui_page):
    from playwright.sync_api import expect

    ui_page.goto("/dags", timeout=60_000)
    dag_ids = ui_page.locator('[data-testid="dag-id"]')
    expect(dag_ids.first).to_be_visible(timeout=120_000)  # the DAG processor parses dags/ after the start
    for dag_id in ("build_profiles", "events_ingest", "source_sync"):
        expect(ui_page.locator('[data-testid="dag-id"]', has_text=dag_id)).to_be_visible(timeout=120_000)


def test_a_run_triggered_in_the_ui_succeeds_and_its_task_log_is_shown(airflow_ui, ui_page):
    from playwright.sync_api import expect

    ui_page.goto("/dags/events_ingest", timeout=60_000)
    ui_page.get_by_role("button", name="Trigger Dag").click(timeout=60_000)
    dialog = ui_page.get_by_role("dialog")
    expect(dialog.get_by_text("Unpause events_ingest on trigger")).to_be_visible(timeout=30_000)
    with ui_page.expect_response(lambda r: r.request.method == "POST" and "/dagRuns" in r.url) as posted:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert posted.value.ok, posted.value.text()
    run_id = posted.value.json()["dag_run_id"]

    ui_page.goto(f"/dags/events_ingest/runs/{run_id}", timeout=60_000)
    expect(ui_page.get_by_text(run_id).first).to_be_visible(timeout=60_000)
    states = ui_page.get_by_text(re.compile(r"^(Success|Failed)$"))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not states.count() and time.monotonic() < deadline:
        ui_page.wait_for_timeout(10_000)
        ui_page.reload(timeout=60_000)
        expect(ui_page.get_by_text(run_id).first).to_be_visible(timeout=60_000)
    assert set(states.all_inner_texts()) == {"Success"}, states.all_inner_texts()

    # the task's own log, as the UI shows it, ends with what the ingest did (the events published for the
    # test may have gone to the scheduled run that unpausing the DAG starts beside this one)
    ui_page.goto(f"/dags/events_ingest/runs/{run_id}/tasks/ingest", timeout=60_000)
    summary = re.compile(r"Done\. Returned value was: \{'consumed': \d+, 'ingested': \d+")
    expect(ui_page.get_by_text(summary).first).to_be_visible(timeout=60_000)


def test_stopping_mo_airflow_stops_every_process_it_started(airflow_ui):
    import psutil

    started = airflow_ui.descendants()
    assert len(started) >= 4  # the four components, and whatever they started

    assert airflow_ui.stop() == 0

    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [p.cmdline() for p in alive]
    assert airflow_ui.output[-1] == "Airflow stopped"
