"""Delivery: send messages through Kafka and a channel worker to the provider sandbox, against plain HTTP sends.

Starts a fresh embedded broker (Tansu, in memory), a private MO_HOME with a SQLite source of customers, and the
provider sandbox on a free port (no latency, no rate limit, receipts issued at once). A channel worker (all
channels, in this process) joins its consumer group first; then ``MO_BENCH_DELIVERY_MESSAGES`` send messages
(default 3,000, the four channels in turn) are produced and the clock runs until the sandbox has issued every
receipt. Figures: messages/s end to end, and the produce -> receipt latency per message (p50, p99).
Baseline: the same number of sends made directly with the adapters (HTTP to the sandbox, no broker, no ledger).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

IDLE_STOP_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run() -> str:  # noqa: PLR0915 - one linear measurement
    n = int(os.environ.get("MO_BENCH_DELIVERY_MESSAGES", "3000"))
    with tempfile.TemporaryDirectory(prefix="mo-bench-delivery-") as tmp:
        home = Path(tmp)
        broker_port, sandbox_port = _free_port(), _free_port()
        os.environ.update(
            {
                "MO_HOME": str(home),
                "MO_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
                "MO_KAFKA_TOPIC_PREFIX": "bench",
                "MO_SOURCE_URL": f"sqlite:///{home / 'source.db'}",
                "MO_CHANNEL_RATE_PER_S": "100000",
                **{
                    f"MO_CHANNEL_{c}_BASE_URL": f"http://127.0.0.1:{sandbox_port}"
                    for c in ("SMS", "WECHAT", "PUSH", "COUPON")
                },
            }
        )
        from sqlalchemy import insert, select

        from mo.channels.adapters import make_adapter
        from mo.channels.messages import new_send, produce_sends, send_producer
        from mo.channels.sandbox import Sandbox, SandboxConfig, SandboxServer
        from mo.channels.worker import ChannelWorker
        from mo.config import get_settings
        from mo.events.broker import start_embedded
        from mo.oltp.db import make_engine, migrate
        from mo.oltp.models import Customer

        payloads = {
            "sms": {
                "sign_name": "中安保险",
                "template_code": "SMS_SERVICE_01",
                "template_param": {"name": "张", "notice": "理赔已受理"},
            },
            "wechat": {"template_id": "TM_RENEWAL_REMINDER", "data": {"thing1": {"value": "车险续保"}}},
            "push": {"title": "续保提醒", "body": "您的车险即将到期"},
            "coupon": {"stock_id": "STOCK_AUTO_50"},
        }
        channels = list(payloads)
        customers = 500
        broker = start_embedded(port=broker_port, log_dir=home / "broker")
        settings = get_settings()
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)
        now = datetime(2026, 12, 1, 9)
        with engine.begin() as conn:
            conn.execute(
                insert(Customer.__table__),
                [
                    {
                        "id": c,
                        "name": "T*",
                        "id_number": f"11010119900101{c:04d}",
                        "phone": f"138{c:08d}",
                        "gender": "F",
                        "birth_date": now.date(),
                        "province": "Beijing",
                        "city": "Beijing",
                        "acquisition_channel": "app",
                        "wechat_openid": "o" + f"{c:027d}",
                        "app_user_id": f"U{c:09d}001",
                        "risk_rating": "R2",
                        "created_at": now,
                        "updated_at": now,
                        "deleted_at": None,
                    }  # fmt: skip
                    for c in range(1, customers + 1)
                ],
            )
        sandbox = SandboxServer(
            Sandbox(home / "sandbox", SandboxConfig.from_settings(settings, rate_per_s=1e9, receipt_delay_ms=0)),
            sandbox_port,
        ).start()
        try:
            # Baseline: the adapters alone.
            import uuid

            adapters = {c: make_adapter(c, settings) for c in channels}
            started = time.perf_counter()
            for i in range(n):
                c = channels[i % 4]
                address = (
                    f"138{i % customers + 1:08d}"
                    if c == "sms"
                    else ("U000000001001" if c == "push" else "o" + f"{i % customers + 1:027d}")
                )
                assert adapters[c].send(str(uuid.uuid4()), address, payloads[c]).status == "sent"
            baseline_s = time.perf_counter() - started
            for a in adapters.values():
                a.close()

            def receipts_after(after_id: int) -> list[dict]:
                return sandbox.sandbox.log.rows("receipts", after_id=after_id, limit=10**9)

            while sandbox.sandbox.receipts._queue.qsize():  # the baseline's receipts drained
                time.sleep(0.05)
            time.sleep(0.2)
            mark = max((r["id"] for r in receipts_after(0)), default=0)

            worker = ChannelWorker(settings, engine)
            stop = threading.Event()
            thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
            producer = send_producer(settings)
            thread.start()
            join_started = time.perf_counter()
            warm = new_send(
                ledger_id=1, touch_key="bench:warm:1", customer_id=1, channel="push", payload=payloads["push"]
            )
            produce_sends(producer, [warm], settings)
            while not any(r["client_msg_id"] == warm["message_id"] for r in receipts_after(mark)):
                time.sleep(0.05)
            join_s = time.perf_counter() - join_started
            mark = max(r["id"] for r in receipts_after(mark))

            def deliver(batch: list[dict], pace_s: float, chunk_size: int) -> tuple[float, list[float]]:
                """Produce ``batch`` in chunks, ``pace_s`` apart; wait for every receipt. (seconds, latencies)"""
                nonlocal mark
                produced_at: dict[str, float] = {}
                done: dict[str, float] = {}
                begun = time.perf_counter()
                for chunk in range(0, len(batch), chunk_size):
                    part = batch[chunk : chunk + chunk_size]
                    stamp = time.time()
                    produce_sends(producer, part, settings)
                    produced_at.update((m["message_id"], stamp) for m in part)
                    if pace_s:
                        time.sleep(pace_s)
                while len(done) < len(batch):
                    for r in receipts_after(mark):
                        if r["client_msg_id"] in produced_at and r["client_msg_id"] not in done:
                            at = datetime.fromisoformat(r["at"].replace("Z", "+00:00")).timestamp()
                            done[r["client_msg_id"]] = at
                        mark = max(mark, r["id"])
                    time.sleep(0.05)
                return time.perf_counter() - begun, [done[m] - produced_at[m] for m in done]

            def batch_of(count: int, offset: int) -> list[dict]:
                return [
                    new_send(
                        ledger_id=offset + i,
                        touch_key=f"bench:1:{offset}:{i}",
                        customer_id=i % customers + 1,
                        channel=channels[i % 4],
                        payload=payloads[channels[i % 4]],
                    )  # fmt: skip
                    for i in range(count)
                ]

            total_s, _ = deliver(batch_of(n, 2), 0.0, 500)  # throughput: everything at once
            paced = max(50, n // 20)
            pace = 2.0 / (n / total_s)  # latency: one message at a time at half the measured rate
            _, latencies = deliver(batch_of(paced, n + 2), pace, 1)
            stop.set()
            thread.join(timeout=30)
            producer.close(timeout=5)
            with engine.connect() as conn:
                from mo.oltp.campaign_tables import Delivery

                d = Delivery.__table__
                sent = conn.execute(select(d.c.message_id).where(d.c.state == "sent")).all()
            assert len(sent) == n + paced + 1, f"{len(sent)} sent rows for {n + paced + 1} messages"
            received = len(sandbox.sandbox.log.rows("received", limit=10**9))
        finally:
            sandbox.stop()
            broker.stop()
            engine.dispose()
    rate = n / total_s
    base_rate = n / baseline_s
    return "\n".join(
        [
            "## Delivery: Kafka -> channel worker -> provider sandbox",
            "",
            f"{n:,} send messages over the four channels (SMS, WeChat template, push, coupon), embedded broker (Tansu, "
            "memory), one channel worker for all channels in this process, SQLite source (ledger writes: queued + sent "
            "per message), provider sandbox on a local port in this process (no latency, no rate limit, receipts "
            "issued at once). Baseline: the same sends made directly with the adapters (HTTP only, no broker, no "
            "ledger). Latency: from the produce call to the sandbox issuing the message's receipt.",
            "",
            "| step | messages | seconds | messages/s | note |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| baseline: adapters straight to the sandbox | {n:,} | {baseline_s:.1f} | {base_rate:,.0f} | 1.0x |",
            f"| produce -> worker -> sandbox receipt | {n:,} | {total_s:.1f} | {rate:,.0f} | "
            f"{baseline_s / total_s:.2f}x the baseline rate; excludes {join_s:.1f}s consumer-group join |",
            "",
            f"End-to-end latency, produce -> sandbox receipt, {paced:,} messages produced one at a time at half "
            f"the measured rate: p50 {_pct(latencies, 0.5) * 1000:,.0f} ms, "
            f"p99 {_pct(latencies, 0.99) * 1000:,.0f} ms. "
            f"Sandbox log: {received:,} messages accepted, each once ({n:,} baseline + {n:,} + {paced:,} + 1 warm-up).",
        ]
    )


if __name__ == "__main__":
    print(run())
