"""Exactly once to the provider: a channel worker killed with SIGKILL in the middle of a run, then run again,
leaves the sandbox's log with every intended message exactly once, and contact_deliveries agreeing with it (one
``sent`` per message carrying the provider's message id). Real broker, real sandbox, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import select

from mo.channels.messages import produce_sends, send_producer
from mo.config import REPO_ROOT, get_settings
from mo.oltp.campaign_tables import Delivery
from tests.channels.helpers import (
    add_customers,
    env_for_subprocess,
    point_channels_at,
    running_sandbox,
    sandbox_log,
    send_message,
)
from tests.mo.outbox_helpers import migrated_engine

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
DELIVERIES = Delivery.__table__
MESSAGES = 80


def _worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mo", "channels", "worker", "--once"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mariadb", marks=pytest.mark.mariadb)])  # fmt: skip
def test_worker_killed_mid_run_then_rerun_sends_every_message_once(kind, kafka_settings, tmp_path, monkeypatch):
    for engine in migrated_engine(kind, tmp_path):
        add_customers(engine, range(1, MESSAGES + 1))
        with running_sandbox(tmp_path / "sandbox", latency_ms=40) as sandbox:
            point_channels_at(monkeypatch, sandbox.url)
            settings = get_settings()
            channels = ["sms", "wechat", "push", "coupon"]
            messages = [send_message(cid, channels[cid % 4]) for cid in range(1, MESSAGES + 1)]
            producer = send_producer(settings)
            try:
                produce_sends(producer, messages, settings)
            finally:
                producer.close(timeout=5)
            env = env_for_subprocess(MO_SOURCE_URL=engine.url.render_as_string(hide_password=False))

            first = _worker(env)
            deadline = time.monotonic() + 120
            while len(sandbox_log(sandbox)) < MESSAGES // 4:  # mid-run: a quarter accepted
                assert first.poll() is None, first.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the worker sent nothing in time"
                time.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            at_kill = len(sandbox_log(sandbox))
            assert at_kill < MESSAGES, "the worker finished before it was killed: the test proves nothing"

            second = _worker(env)
            out, _ = second.communicate(timeout=300)
            assert second.returncode == 0, out.decode()[-3000:]

            received = sandbox_log(sandbox)
            counts = Counter(r["client_msg_id"] for r in received)
            assert sorted(counts) == sorted(m["message_id"] for m in messages)  # every intended message ...
            assert set(counts.values()) == {1}  # ... exactly once
            sends = [r for r in sandbox_log(sandbox, "requests") if r["endpoint"] != "token" and r["client_msg_id"]]
            assert not [r for r in sends if r["duplicate"]], "a message was sent to the provider twice"
            with engine.connect() as conn:
                rows = conn.execute(select(DELIVERIES.c.message_id, DELIVERIES.c.state,
                                           DELIVERIES.c.provider_message_id)).all()  # fmt: skip
            sent = {r.message_id: r.provider_message_id for r in rows if r.state == "sent"}
            assert sent == {r["client_msg_id"]: r["provider_msg_id"] for r in received}  # the ledger agrees
            assert Counter(r.state for r in rows) == {"queued": MESSAGES, "sent": MESSAGES}
