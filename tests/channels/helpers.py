"""Shared by the channel tests: a provider sandbox on a free port, settings pointing every channel at it, and a
source database with customers who have addresses on every channel."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from mo.channels.messages import new_send
from mo.channels.sandbox import Sandbox, SandboxConfig, SandboxServer
from mo.config import get_settings
from mo.oltp.models import Customer
from tests.conftest import free_port
from tests.mo.outbox_helpers import customer_row

CHANNEL_ENV = ("WECHAT", "SMS", "PUSH", "COUPON")
PAYLOADS: dict[str, dict[str, Any]] = {
    "sms": {
        "sign_name": "中安保险",
        "template_code": "SMS_SERVICE_01",
        "template_param": {"name": "张", "notice": "理赔已受理"},
    },
    "wechat": {"template_id": "TM_RENEWAL_REMINDER", "data": {"thing1": {"value": "车险续保"}}, "url": None},
    "push": {"title": "续保提醒", "body": "您的车险即将到期", "extras": {"campaign": "1"}},
    "coupon": {"stock_id": "STOCK_AUTO_50", "coupon_value": 50},
}


def openid(customer_id: int) -> str:
    return "o" + f"{customer_id:027d}"


def phone(customer_id: int) -> str:
    return f"138{customer_id:08d}"


def app_user(customer_id: int) -> str:
    return f"U{customer_id:09d}001"


def point_channels_at(monkeypatch, url: str, **extra: str) -> None:  # type: ignore[no-untyped-def]
    for name in CHANNEL_ENV:
        monkeypatch.setenv(f"MO_CHANNEL_{name}_BASE_URL", url)
    monkeypatch.setenv("MO_CHANNEL_BACKOFF_S", "0.01")
    monkeypatch.setenv("MO_CHANNEL_BACKOFF_MAX_S", "0.05")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


@contextmanager
def running_sandbox(home: Path, **overrides: Any) -> Iterator[SandboxServer]:
    port = free_port()
    sandbox = Sandbox(home, SandboxConfig.from_settings(get_settings(), **overrides))
    server = SandboxServer(sandbox, port).start()
    try:
        yield server
    finally:
        server.stop()


def sandbox_log(server: SandboxServer, table: str = "received", provider: str | None = None) -> list[dict]:
    params = {"table": table, **({"provider": provider} if provider else {})}
    return httpx.get(f"{server.url}/_sandbox/log", params=params, timeout=10).json()["items"]


def inject(server: SandboxServer, provider: str, kind: str, count: int) -> None:
    fault = {"provider": provider, "kind": kind, "count": count}
    httpx.post(f"{server.url}/_sandbox/faults", json=fault).raise_for_status()


def configure(server: SandboxServer, **changes: Any) -> None:
    httpx.post(f"{server.url}/_sandbox/config", json=changes).raise_for_status()


def add_customers(engine, ids: range) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for cid in ids:
        row = customer_row(cid)
        row.update(phone=phone(cid), wechat_openid=openid(cid), app_user_id=app_user(cid))
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(insert(Customer.__table__), rows)


def send_message(customer_id: int, channel: str, ledger_id: int | None = None) -> dict[str, Any]:
    return new_send(
        ledger_id=ledger_id or customer_id,
        touch_key=f"campaign:1:1:{customer_id}:{uuid.uuid4().hex[:6]}",
        customer_id=customer_id,
        campaign_id=1,
        channel=channel,
        payload=PAYLOADS[channel],
    )


def env_for_subprocess(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("MO_") or k in ("PATH", "HOME", "LANG")}
    env.update(extra)
    return env
