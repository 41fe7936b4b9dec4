"""Receipts and tracked clicks into ``contact_deliveries``: shared by the serving API's webhooks and redirect.

A receipt names its message by the client message id the worker sent (SMS ``out_id``, push ``cid``, coupon
``out_request_no``) or, for WeChat, by the provider's ``MsgID`` (the worker stored it on the ``sent`` row). A
receipt for a message without a ``sent`` row is not recorded (``unknown``): the ledger never says delivered for
what was not sent. ``(message_id, state)`` is unique, so a replayed receipt records nothing (``duplicate``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from xml.etree import ElementTree

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import IntegrityError

from mo.oltp.campaign_tables import Delivery

DELIVERIES = cast(Table, Delivery.__table__)
MAX_ITEMS = 1000


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
    """The ``sent`` row the receipt is about (by client message id, or WeChat's MsgID), or None.

    By client message id a ``queued`` row will also do: the provider only sends a receipt for what it accepted,
    and its receipt can overtake the worker's ``sent`` write. WeChat's receipt names only the provider's MsgID,
    which is known from the ``sent`` row alone."""
    if isinstance(receipt_or_id, str) or receipt_or_id.message_id is not None:
        message_id = receipt_or_id if isinstance(receipt_or_id, str) else receipt_or_id.message_id
        rows = conn.execute(
            select(DELIVERIES).where(
                DELIVERIES.c.message_id == message_id,
                DELIVERIES.c.provider == provider,
                DELIVERIES.c.state.in_(("sent", "queued")),
            )
        ).all()
        return next((r for r in rows if r.state == "sent"), rows[0] if rows else None)
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


def record(conn: Connection, provider: str, receipts: list[Receipt]) -> dict[str, int]:
    """Record delivered/failed for each receipt; counts of recorded, duplicate and unknown ones."""
    counts = {"recorded": 0, "duplicates": 0, "unknown": 0}
    for receipt in receipts:
        sent = find_sent(conn, provider, receipt)
        if sent is None:
            counts["unknown"] += 1
            continue
        if states(conn, sent.message_id) & {"delivered", "failed"}:
            counts["duplicates"] += 1
            continue
        state = "delivered" if receipt.delivered else "failed"
        counts["recorded" if append(conn, sent, state, f"receipt: {receipt.detail}") else "duplicates"] += 1
    return counts


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
