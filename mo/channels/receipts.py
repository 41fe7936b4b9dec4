"""Receipts and tracked clicks into ``contact_deliveries``: shared by the serving API's webhooks and redirect.

A receipt names its message by the client message id the worker sent (SMS ``out_id``, push ``cid``, coupon
``out_request_no``) or, for WeChat, by the provider's ``MsgID`` (the worker stored it on the ``sent`` row).
``(message_id, state)`` is unique, so a replayed receipt records nothing (``duplicate``).

Order does not matter. A provider sends a receipt only for what it accepted, but the receipt can overtake the
worker's ``sent`` write (WeChat's TEMPLATESENDJOBFINISH names only the MsgID, which the worker learns from the
send's answer; an SMS report can arrive while the worker is still recording). A receipt without a ``sent`` row
yet is kept in ``early_receipts`` (``unknown`` in the counts) and applied by :func:`settle` once the row exists.
Both sides commit their own row first and then look for the other's (the webhook: the early receipt, then the
``sent`` row; the worker: ``sent``, then early receipts), so whichever commits second sees the first: the final
states are the same in every order, and ``delivered`` is never recorded for a message without ``sent`` (a
receipt for a message never sent stays an early receipt, applied to nothing). The channel worker also settles
every recent early receipt when idle, for a webhook process that died between its two steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from xml.etree import ElementTree

from sqlalchemy import Connection, Engine, Table, and_, insert, or_, select
from sqlalchemy.exc import IntegrityError

from mo.oltp.campaign_tables import Delivery, EarlyReceipt

DELIVERIES = cast(Table, Delivery.__table__)
EARLY = cast(Table, EarlyReceipt.__table__)
MAX_ITEMS = 1000
SETTLE_WINDOW = timedelta(days=3)  # an early receipt older than this is for a message that was never recorded sent


class ReceiptError(ValueError):
    """A receipt body that cannot be read; ``field`` is the JSON pointer of the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Receipt:
    message_id: str | None  # the client message id, when the receipt carries it
    provider_message_id: str | None
    delivered: bool
    detail: str


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse(provider: str, body: bytes) -> list[Receipt]:
    """The receipts in a provider's callback body (WeChat: one XML event; others: a JSON array)."""
    if provider == "wechat":
        return _parse_wechat(body)
    try:
        items = json.loads(body)
    except ValueError:
        raise ReceiptError("/body", "not valid JSON") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise ReceiptError("/body", f"expected a JSON array of 1 to {MAX_ITEMS} receipts")
    receipts = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ReceiptError(f"/body/{index}", "a receipt is a JSON object")
        receipts.append(_parse_item(provider, item, index))
    return receipts


def _text(item: dict[str, Any], name: str, index: int, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise ReceiptError(f"/body/{index}/{name}", "required")
        return None
    if not isinstance(value, str | int | bool) or len(str(value)) > 200:
        raise ReceiptError(f"/body/{index}/{name}", "a short string")
    return str(value)


def _parse_item(provider: str, item: dict[str, Any], index: int) -> Receipt:
    if provider == "sms":  # Aliyun SmsReport
        success = item.get("success")
        if not isinstance(success, bool):
            raise ReceiptError(f"/body/{index}/success", "required: true or false")
        detail = f"{_text(item, 'err_code', index, False)}: {_text(item, 'err_msg', index, False) or ''}"
        return Receipt(_text(item, "out_id", index), _text(item, "biz_id", index, False), success, detail)
    if provider == "push":
        status = _text(item, "status", index)
        return Receipt(
            _text(item, "cid", index), _text(item, "msg_id", index, False), status == "delivered", str(status)
        )
    if provider == "coupon":
        status = _text(item, "status", index)
        key = _text(item, "out_request_no", index)
        return Receipt(key, _text(item, "coupon_id", index, False), status == "SENDED", str(status))
    raise ReceiptError("/path/provider", f"unknown provider '{provider}'")


def _parse_wechat(body: bytes) -> list[Receipt]:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ReceiptError("/body", "XML with a DOCTYPE or entities is refused")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise ReceiptError("/body", "not valid XML") from None
    event = (root.findtext("Event") or "").strip()
    if event != "TEMPLATESENDJOBFINISH":
        return []
    msg_id = (root.findtext("MsgID") or "").strip()
    status = (root.findtext("Status") or "").strip()
    if not msg_id.isdigit() or not status:
        raise ReceiptError("/body/MsgID", "TEMPLATESENDJOBFINISH without a numeric MsgID and a Status")
    return [Receipt(None, msg_id, status == "success", status)]


def find_sent(conn: Connection, provider: str, receipt_or_id: Receipt | str) -> Any | None:
    """The ``sent`` row the receipt is about (by client message id, or WeChat's MsgID), or None."""
    if isinstance(receipt_or_id, str) or receipt_or_id.message_id is not None:
        message_id = receipt_or_id if isinstance(receipt_or_id, str) else receipt_or_id.message_id
        query = select(DELIVERIES).where(
            DELIVERIES.c.message_id == message_id, DELIVERIES.c.provider == provider, DELIVERIES.c.state == "sent"
        )
    else:
        query = select(DELIVERIES).where(
            DELIVERIES.c.state == "sent",
            DELIVERIES.c.provider == provider,
            DELIVERIES.c.provider_message_id == receipt_or_id.provider_message_id,
        )
    return conn.execute(query.limit(1)).first()


def states(conn: Connection, message_id: str) -> set[str]:
    return set(conn.execute(select(DELIVERIES.c.state).where(DELIVERIES.c.message_id == message_id)).scalars())


def append(conn: Connection, sent_row: Any, state: str, detail: str | None = None) -> bool:
    """Append a state in a savepoint of the caller's transaction; False if the message already has it."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(DELIVERIES).values(
                    message_id=sent_row.message_id,
                    ledger_id=sent_row.ledger_id,
                    customer_id=sent_row.customer_id,
                    state=state,
                    provider=sent_row.provider,
                    provider_message_id=sent_row.provider_message_id,
                    detail=detail and detail[:1000],
                    at=_utcnow(),
                )
            )
        return True
    except IntegrityError:
        return False


def _apply(conn: Connection, sent: Any, receipt: Receipt) -> str:
    """recorded or duplicate: delivered/failed appended to the sent message unless it already has one of them."""
    if states(conn, sent.message_id) & {"delivered", "failed"}:
        return "duplicates"
    state = "delivered" if receipt.delivered else "failed"
    return "recorded" if append(conn, sent, state, f"receipt: {receipt.detail}") else "duplicates"


def record(conn: Connection, provider: str, receipts: list[Receipt]) -> dict[str, int]:
    """Record delivered/failed for each receipt about a sent message; keep the others as early receipts (counted
    ``unknown``). After the caller commits, call :func:`settle_receipts` with the same receipts."""
    counts = {"recorded": 0, "duplicates": 0, "unknown": 0}
    now = _utcnow()
    for receipt in receipts:
        sent = find_sent(conn, provider, receipt)
        if sent is None:
            conn.execute(
                insert(EARLY).values(
                    provider=provider,
                    message_id=receipt.message_id,
                    provider_message_id=None if receipt.message_id else receipt.provider_message_id,
                    delivered=receipt.delivered,
                    detail=receipt.detail[:1000],
                    received_at=now,
                )
            )
            counts["unknown"] += 1
            continue
        counts[_apply(conn, sent, receipt)] += 1
    return counts


def settle_receipts(engine: Engine, provider: str, receipts: list[Receipt]) -> int:
    """The webhook's second step, after its early receipts committed: apply those whose message has been recorded
    sent meanwhile. Returns how many were applied now."""
    applied = 0
    with engine.begin() as conn:
        for receipt in receipts:
            sent = find_sent(conn, provider, receipt)
            if sent is not None and _apply(conn, sent, receipt) == "recorded":
                applied += 1
    return applied


def _early_rows(conn: Connection, condition: Any, since: datetime) -> list[Any]:
    query = select(EARLY).where(condition, EARLY.c.received_at >= since).order_by(EARLY.c.id)
    return list(conn.execute(query))


def _as_receipt(row: Any) -> Receipt:
    return Receipt(row.message_id, row.provider_message_id, bool(row.delivered), row.detail or "")


def settle(conn: Connection, sent: Any, *, now: datetime | None = None) -> int:
    """The worker's second step, after its ``sent`` row committed: apply the early receipts about this message
    (by client message id, or by the provider's message id). Returns how many were applied now."""
    since = (now or _utcnow()) - SETTLE_WINDOW
    condition = and_(EARLY.c.provider == sent.provider, EARLY.c.message_id == sent.message_id)
    if sent.provider_message_id:
        condition = or_(
            condition,
            and_(EARLY.c.provider == sent.provider, EARLY.c.provider_message_id == sent.provider_message_id),
        )
    applied = 0
    for row in _early_rows(conn, condition, since):
        if _apply(conn, sent, _as_receipt(row)) == "recorded":
            applied += 1
    return applied


def settle_all(engine: Engine, *, now: datetime | None = None, limit: int = MAX_ITEMS) -> int:
    """Apply the recent early receipts whose message is now recorded sent and has no delivered/failed yet (the
    channel worker calls this when idle: a webhook process that died between its two steps leaves such receipts
    behind). Returns how many were applied."""
    since = (now or _utcnow()) - SETTLE_WINDOW
    sent, done = DELIVERIES.alias("sent"), DELIVERIES.alias("done")
    unsettled = ~(
        select(done.c.id)
        .where(done.c.message_id == sent.c.message_id, done.c.state.in_(("delivered", "failed")))
        .exists()
    )
    applied = 0
    with engine.begin() as conn:
        for key in ("message_id", "provider_message_id"):
            query = (
                select(EARLY)
                .join(
                    sent, and_(sent.c.provider == EARLY.c.provider, sent.c.state == "sent", sent.c[key] == EARLY.c[key])
                )  # fmt: skip
                .where(EARLY.c[key].is_not(None), EARLY.c.received_at >= since, unsettled)
                .order_by(EARLY.c.id)
                .limit(limit)
            )
            for row in conn.execute(query).all():
                receipt = _as_receipt(row)
                found = find_sent(conn, row.provider, receipt)
                if found is not None and _apply(conn, found, receipt) == "recorded":
                    applied += 1
    return applied


def record_click(conn: Connection, message_id: str) -> Any | None:
    """Append ``opened`` (when missing) and ``clicked`` for a sent message; None if the message was never sent."""
    query = select(DELIVERIES).where(DELIVERIES.c.message_id == message_id, DELIVERIES.c.state == "sent").limit(1)
    sent = conn.execute(query).first()
    if sent is None:
        return None
    have = states(conn, message_id)
    if "opened" not in have:
        append(conn, sent, "opened", "implied by a tracked click")
    if "clicked" not in have:
        append(conn, sent, "clicked", "tracked link")
    return sent
