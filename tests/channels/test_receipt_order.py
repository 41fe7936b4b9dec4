"""Delivery receipts are order-independent: a receipt that overtakes the channel worker's ``sent`` write (WeChat's
TEMPLATESENDJOBFINISH names only the MsgID the worker learns from the send's answer; an SMS report racing the
write) ends in the same delivery states as one that comes after it, in every interleaving of the two sides'
steps, including a side that dies between its two steps; and a receipt for a message the provider never
accepted never becomes ``delivered``. Real PostgreSQL and SQLite."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from mo.channels import receipts
from mo.channels.adapters import SENT, Adapter, SendResult
from mo.channels.worker import ChannelWorker, append_state, settle_sent
from mo.config import get_settings
from mo.oltp.campaign_tables import Delivery
from tests.channels.helpers import add_customers, send_message
from tests.mo.outbox_helpers import migrated_engine

DELIVERIES = Delivery.__table__
WORKER_STEPS = ("queued", "sent", "worker_settles")
RECEIPT_STEPS = ("receipt", "webhook_settles")


@pytest.fixture(params=["sqlite", "postgres"])
def source(request, tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    for engine in migrated_engine(request.param, tmp_path):
        add_customers(engine, range(1, 4))
        yield engine


def interleavings(first: tuple[str, ...], second: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every merge of two step sequences that keeps each one's own order."""
    size = len(first) + len(second)
    for slots in itertools.combinations(range(size), len(first)):
        a, b = iter(first), iter(second)
        yield tuple(next(a) if i in slots else next(b) for i in range(size))


def states(engine, message_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return set(conn.execute(select(DELIVERIES.c.state).where(DELIVERIES.c.message_id == message_id)).scalars())


def receipt_for(provider: str, message_id: str, msg_id: str, delivered: bool) -> receipts.Receipt:
    if provider == "wechat":  # TEMPLATESENDJOBFINISH: the provider's MsgID only
        return receipts.Receipt(None, msg_id, delivered, "success" if delivered else "failed:user block")
    return receipts.Receipt(message_id, f"{msg_id}^0", delivered, "DELIVERED" if delivered else "MK:0001")


def webhook_record(engine, provider: str, receipt: receipts.Receipt) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:  # the webhook's transaction (audit entry aside)
        receipts.record(conn, provider, [receipt])


def run_step(engine, step: str, provider: str, message: dict[str, Any], msg_id: str,
             receipt: receipts.Receipt) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """One side's step: the worker's queued, sent and settle; the webhook's record and settle (each committed)."""
    if step == "queued":
        append_state(engine, message, "queued", provider=provider)
    elif step == "sent":
        append_state(engine, message, "sent", provider=provider, provider_message_id=msg_id)
    elif step == "worker_settles":
        settle_sent(engine, provider, message["message_id"])
    elif step == "receipt":
        webhook_record(engine, provider, receipt)
    else:
        receipts.settle_receipts(engine, provider, [receipt])


def test_interleavings_cover_every_order() -> None:
    orders = list(interleavings(WORKER_STEPS, RECEIPT_STEPS))
    assert len(orders) == len(set(orders)) == 10
    assert ("receipt", "webhook_settles", "queued", "sent", "worker_settles") in orders  # receipt first
    assert ("queued", "sent", "worker_settles", "receipt", "webhook_settles") in orders  # the usual order


def test_every_order_and_crash_ends_in_the_same_states(source) -> None:  # type: ignore[no-untyped-def]
    """10 interleavings x 2 providers x delivered/failed x {no crash, the webhook dies between its steps, the
    worker dies between its steps, both}: the states are always {queued, sent, delivered | failed}."""
    cases = 0
    for order, provider, delivered, crashed in itertools.product(
        interleavings(WORKER_STEPS, RECEIPT_STEPS), ("wechat", "sms"), (True, False),
        ((), ("webhook_settles",), ("worker_settles",), ("webhook_settles", "worker_settles")),
    ):  # fmt: skip
        message = send_message(1, provider)
        msg_id = str(uuid.uuid4().int % 10**15)
        receipt = receipt_for(provider, message["message_id"], msg_id, delivered)
        for step in order:
            if step not in crashed:
                run_step(source, step, provider, message, msg_id, receipt)
        if crashed:  # the channel worker's idle sweep picks up what a dead process left
            receipts.settle_all(source)
        expected = {"queued", "sent", "delivered" if delivered else "failed"}
        assert states(source, message["message_id"]) == expected, (order, provider, delivered, crashed)
        cases += 1
    assert cases == 160


def test_a_receipt_for_what_the_provider_never_accepted_never_says_delivered(source) -> None:  # type: ignore[no-untyped-def]
    refused = send_message(2, "wechat")
    append_state(source, refused, "queued", provider="wechat")
    append_state(source, refused, "failed", provider="wechat", detail="43004: require subscribe")
    ghost = receipts.Receipt(None, "999000111", True, "success")  # a MsgID no send was given
    webhook_record(source, "wechat", ghost)
    receipts.settle_receipts(source, "wechat", [ghost])
    receipts.settle_all(source)
    assert states(source, refused["message_id"]) == {"queued", "failed"}
    with source.connect() as conn:
        assert not conn.execute(select(DELIVERIES).where(DELIVERIES.c.state == "delivered")).first()


class RacingProvider(Adapter):
    """A provider whose receipt reaches the webhook while the send call is still answering (receipt_delay 0): the
    receipt is recorded before the worker can write ``sent``. ``received`` is its log (the ground truth)."""

    provider = "wechat"
    address_field = "wechat_openid"

    def __init__(self, engine, delivered: bool) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.delivered, self.received = engine, delivered, []  # type: ignore[var-annotated]

    def send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        msg_id = str(uuid.uuid4().int % 10**15)
        self.received.append(message_id)
        receipt = receipts.Receipt(None, msg_id, self.delivered, "success" if self.delivered else "failed")
        webhook_record(self.engine, "wechat", receipt)
        receipts.settle_receipts(self.engine, "wechat", [receipt])
        return SendResult(SENT, "0", "ok", provider_message_id=msg_id)

    def lookup(self, message_id: str, address: str) -> str | None:
        return None

    def close(self) -> None:
        return None


@pytest.mark.parametrize("delivered", [True, False])
def test_a_wechat_receipt_that_overtakes_the_workers_sent_write_is_kept(source, delivered) -> None:  # type: ignore[no-untyped-def]
    provider = RacingProvider(source, delivered)
    worker = ChannelWorker(get_settings(), source, adapters={"wechat": provider})
    message = send_message(3, "wechat")
    assert worker.process(message) == "sent"
    assert provider.received == [message["message_id"]]
    assert states(source, message["message_id"]) == {"queued", "sent", "delivered" if delivered else "failed"}
