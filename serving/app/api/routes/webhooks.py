"""Provider webhooks: delivery receipts from the channel providers (and the provider sandbox).

No bearer token: a provider proves itself with a signature over the body and a timestamp, checked here:

- WeChat Official Account event pushes: ``signature = sha1(sort(token, timestamp, nonce))`` in the query;
- SMS reports, push and coupon callbacks: ``X-Mo-Signature`` = HMAC-SHA256(``MO_CHANNEL_WEBHOOK_SECRET``,
  timestamp \\n nonce \\n body), with ``X-Mo-Timestamp`` and ``X-Mo-Nonce``.

A timestamp more than 5 minutes away is refused (401), a nonce seen before (kept in Redis for 10 minutes) is a
replay (409), and a replay that gets past both records nothing: ``(message_id, state)`` is unique. Refusals are
audited by the request middleware (a refused write); accepted receipts are audited with their counts.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from app.api.deps import RedisDep, SettingsDep, SourceDep
from app.core.config import Settings
from app.core.errors import ApiError, problem_responses
from app.services import audit
from mo.channels import receipts, signing

log = logging.getLogger("app.webhooks")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
WINDOW_S = 300
NONCE_TTL_S = 600
ProviderName = Annotated[Literal["sms", "wechat", "push", "coupon"], Path(examples=["sms"])]


# What the providers post: SMS reports (Aliyun SmsReport), push and coupon callbacks as JSON arrays; WeChat's
# TEMPLATESENDJOBFINISH event as XML. Read from the raw body (the signature covers its bytes).
RECEIPT_BODIES = {
    "application/json": {
        "schema": {"type": "array", "minItems": 1, "maxItems": receipts.MAX_ITEMS, "items": {"type": "object"}},
        "example": [
            {
                "phone_number": "13800138000",
                "send_time": "2026-12-06 10:00:00",
                "report_time": "2026-12-06 10:00:03",
                "success": True,
                "err_code": "DELIVERED",
                "err_msg": "用户接收成功",
                "sms_size": "1",
                "biz_id": "932702304080415357^0",
                "out_id": "5f0c8a52-6a55-4a4e-9d4e-1d2f3a4b5c6d",
            }
        ],
    },
    "text/xml": {
        "schema": {"type": "string", "maxLength": 4096},
        "example": "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oAbc]]></FromUserName>"
        "<CreateTime>1765015200</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>"
        "<Status><![CDATA[success]]></Status></xml>",
    },
}


class ReceiptsRecorded(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"provider": "sms", "recorded": 1, "duplicates": 0, "unknown": 0}]}
    )
    provider: str
    recorded: int
    duplicates: int
    unknown: int


def _refuse(status: int, detail: str, field: str, kind: str) -> ApiError:
    return ApiError(status, detail, kind=kind, errors=[(field, detail)])


def _credentials(provider: str, request: Request, settings: Settings) -> tuple[str, str]:
    """(timestamp, nonce) of a correctly signed request; ApiError 401 naming the problem otherwise."""
    platform = settings.platform
    if provider == "wechat":
        query = request.query_params
        timestamp, nonce, signature = query.get("timestamp"), query.get("nonce"), query.get("signature")
        if not (timestamp and nonce and signature):
            raise _refuse(401, "missing signature, timestamp or nonce", "/query/signature", "webhook-unsigned")
        expected = signing.wechat_server_signature(platform.channel_wechat_token, timestamp, nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise _refuse(401, "signature does not match", "/query/signature", "webhook-forged")
        return timestamp, nonce
    headers = request.headers
    timestamp, nonce, signature = (headers.get(signing.RECEIPT_TS), headers.get(signing.RECEIPT_NONCE),
                                   headers.get(signing.RECEIPT_SIG))  # fmt: skip
    if not (timestamp and nonce and signature):
        raise _refuse(401, "missing X-Mo-Signature, X-Mo-Timestamp or X-Mo-Nonce", "/header/X-Mo-Signature",
                      "webhook-unsigned")  # fmt: skip
    return timestamp, nonce


def _check_body_signature(request: Request, body: bytes, settings: Settings, timestamp: str, nonce: str) -> None:
    signature = request.headers.get(signing.RECEIPT_SIG, "")
    expected = signing.receipt_signature(settings.platform.channel_webhook_secret, timestamp, nonce, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise _refuse(401, "signature does not match the body", "/header/X-Mo-Signature", "webhook-forged")


def _check_fresh(timestamp: str, field: str) -> None:
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WINDOW_S:
        raise _refuse(401, "timestamp is not within 5 minutes of now", field, "webhook-stale")


def _check_nonce(client: redis.Redis, settings: Settings, provider: str, nonce: str, field: str) -> None:
    if len(nonce) > 64:
        raise _refuse(401, "nonce is longer than 64 characters", field, "webhook-forged")
    key = f"{settings.redis_prefix}:webhook-nonce:{provider}:{nonce}"
    try:
        fresh = client.set(key, "1", nx=True, ex=NONCE_TTL_S)
    except redis.RedisError as exc:  # the unique (message_id, state) still refuses a replayed receipt
        log.warning("webhook nonce not checked: Redis unavailable (%s)", type(exc).__name__)
        return
    if not fresh:
        raise _refuse(409, "replayed: this nonce was already used", field, "webhook-replayed")


def _record(source: Engine, provider: str, items: list[receipts.Receipt], request: Request) -> dict[str, int]:
    with source.begin() as conn:
        counts = receipts.record(conn, provider, items)
        audit.record(
            conn,
            principal=None,
            action="webhooks.receive",
            resource=f"POST {request.url.path}",
            status=200,
            detail=f"{provider}: " + ", ".join(f"{k}={v}" for k, v in counts.items()),
        )
    return counts


@router.post(
    "/{provider}",
    response_model=ReceiptsRecorded,
    responses=problem_responses(400, 401, 409, 413, 422),
    summary="Receive a provider's delivery receipts (signed; no bearer token)",
    openapi_extra={"requestBody": {"required": True, "content": RECEIPT_BODIES}},
)
async def receive(
    provider: ProviderName, request: Request, settings: SettingsDep, source: SourceDep, redis_client: RedisDep
) -> ReceiptsRecorded:
    """Appends ``delivered`` or ``failed`` for each receipt about a sent message; a receipt that overtook the
    channel worker's ``sent`` record is kept and applied when it lands (``unknown`` counts them). 401 for a
    missing, forged or stale signature, 409 for a replayed nonce, 400 naming the field for an unreadable body."""
    request.state.action = "webhooks.receive"
    body = await request.body()
    timestamp, nonce = _credentials(provider, request, settings)
    where = "/query/" if provider == "wechat" else "/header/X-Mo-"
    if provider != "wechat":
        _check_body_signature(request, body, settings, timestamp, nonce)
    _check_fresh(timestamp, where + ("timestamp" if provider == "wechat" else "Timestamp"))
    nonce_field = where + ("nonce" if provider == "wechat" else "Nonce")
    await run_in_threadpool(_check_nonce, redis_client, settings, provider, nonce, nonce_field)
    try:
        items = receipts.parse(provider, body)
    except receipts.ReceiptError as exc:
        raise ApiError(400, f"receipt body: {exc}", kind="validation", errors=[(exc.field, str(exc))]) from None
    counts = await run_in_threadpool(_record, source, provider, items, request)
    if counts["unknown"]:  # early receipts, now committed: apply those whose message was recorded sent meanwhile
        await run_in_threadpool(receipts.settle_receipts, source, provider, items)
    return ReceiptsRecorded(provider=provider, **counts)
