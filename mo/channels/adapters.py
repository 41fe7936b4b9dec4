"""Channel adapters: one client per provider. Each builds the provider's request, signs it, and reads the answer
as ``sent`` (with the provider's message id), ``retryable`` (5xx, timeouts, connection failures, frequency
limits) or ``permanent`` (the provider refused this message: invalid recipient, template, signature...), with
the provider's own code. ``lookup`` asks the provider whether it already has a message (after a crash).

The message id is the provider's client message id: WeChat ``client_msg_id``, JPush ``cid``, Aliyun ``OutId``,
WeChat Pay ``out_request_no``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mo.channels import signing
from mo.config import Settings

SENT, RETRYABLE, PERMANENT = "sent", "retryable", "permanent"


@dataclass(frozen=True)
class SendResult:
    status: str  # sent | retryable | permanent
    code: str  # the provider's code ("0", "OK", "43004", "isv.SMS_TEMPLATE_ILLEGAL", "http_503", "timeout")
    message: str = ""
    provider_message_id: str | None = None

    @property
    def detail(self) -> str:
        return f"{self.code}: {self.message}"[:1000]


def _transport_failure(exc: Exception) -> SendResult:
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(RETRYABLE, "timeout", f"no answer in time ({type(exc).__name__})")
    return SendResult(RETRYABLE, "unreachable", f"{type(exc).__name__}: {exc}"[:300])


def _http_failure(response: httpx.Response) -> SendResult | None:
    if response.status_code >= 500:
        return SendResult(RETRYABLE, f"http_{response.status_code}", response.text[:200])
    return None


class Adapter:
    provider = ""
    address_field = ""  # the customers column holding the recipient's address

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.base_url = settings.channel_base_url(self.provider)
        self.client = client or httpx.Client(timeout=settings.channel_timeout_s)

    def send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        try:
            return self._send(message_id, address, payload)
        except httpx.HTTPError as exc:
            return _transport_failure(exc)

    def lookup(self, message_id: str, address: str) -> str | None:
        """The provider's message id if the provider already has this message; None if not. Raises on failure."""
        response = self.client.get(f"{self.base_url}/_sandbox/query/{self.provider}/{message_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["provider_msg_id"]

    def _send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        raise NotImplementedError

    def close(self) -> None:
        self.client.close()


class WeChatTemplateAdapter(Adapter):
    """WeChat Official Account template messages; the access token is fetched and cached until shortly before
    it expires, and fetched again at once when the provider calls it invalid or expired (40001, 42001)."""

    provider = "wechat"
    address_field = "wechat_openid"
    RETRYABLE_CODES = {-1, 45009, 45047}  # system busy, api freq out of limit, out of response count limit
    TOKEN_CODES = {40001, 40014, 42001}

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        super().__init__(settings, client)
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self.token_fetches = 0

    def access_token(self, *, refresh: bool = False) -> str | SendResult:
        with self._lock:
            if not refresh and self._token and self._token[1] > time.monotonic():
                return self._token[0]
            response = self.client.get(
                f"{self.base_url}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.settings.channel_wechat_appid,
                    "secret": self.settings.channel_wechat_secret,
                },  # fmt: skip
            )
            failure = _http_failure(response)
            if failure is not None:
                return failure
            body = response.json()
            if "access_token" not in body:
                code = int(body.get("errcode", -1))
                status = RETRYABLE if code in self.RETRYABLE_CODES else PERMANENT
                return SendResult(status, str(code), f"token: {body.get('errmsg', '')}")
            self.token_fetches += 1
            # Refresh 5 minutes early (the provider's own advice), never later than half the lifetime.
            ttl = int(body.get("expires_in", 7200))
            self._token = (body["access_token"], time.monotonic() + max(1.0, min(ttl - 300, ttl / 2)))
            return body["access_token"]

    def _send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        body = {"touser": address, "template_id": payload["template_id"], "data": payload["data"],
                "client_msg_id": message_id}  # fmt: skip
        if payload.get("url"):
            body["url"] = payload["url"]
        for attempt in range(2):
            token = self.access_token(refresh=attempt > 0)
            if isinstance(token, SendResult):
                return token
            response = self.client.post(
                f"{self.base_url}/cgi-bin/message/template/send",
                params={"access_token": token},
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json"},
            )
            failure = _http_failure(response)
            if failure is not None:
                return failure
            answer = response.json()
            code = int(answer.get("errcode", -1))
            if code == 0:
                return SendResult(SENT, "0", "ok", str(answer["msgid"]))
            if code in self.TOKEN_CODES and attempt == 0:
                continue
            status = RETRYABLE if code in self.RETRYABLE_CODES else PERMANENT
            return SendResult(status, str(code), answer.get("errmsg", ""))
        return SendResult(PERMANENT, "40001", "access token refused twice")


class AliyunSmsAdapter(Adapter):
    """Aliyun SMS ``SendSms`` (RPC style, signature v1: HMAC-SHA1 of the canonicalised query)."""

    provider = "sms"
    address_field = "phone"
    RETRYABLE_CODES = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling", "ServiceUnavailable",
                       "InternalError", "SignatureNonceUsed"}  # fmt: skip

    def _call(self, action: str, extra: dict[str, str]) -> httpx.Response:
        params = {
            "AccessKeyId": self.settings.channel_sms_access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": secrets.token_hex(16),
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            **extra,
        }
        params["Signature"] = signing.aliyun_signature(params, self.settings.channel_sms_access_key_secret)
        body = "&".join(f"{signing.percent_encode(k)}={signing.percent_encode(v)}" for k, v in params.items())
        return self.client.post(
            f"{self.base_url}/", content=body.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

    def _send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        response = self._call(
            "SendSms",
            {
                "PhoneNumbers": address,
                "SignName": payload["sign_name"],
                "TemplateCode": payload["template_code"],
                "TemplateParam": json.dumps(payload.get("template_param") or {}, ensure_ascii=False),
                "OutId": message_id,
            },
        )
        failure = _http_failure(response)
        if failure is not None:
            return failure
        answer = response.json()
        code = str(answer.get("Code", ""))
        if code == "OK":
            return SendResult(SENT, "OK", "OK", answer["BizId"])
        status = RETRYABLE if code in self.RETRYABLE_CODES else PERMANENT
        return SendResult(status, code or f"http_{response.status_code}", answer.get("Message", ""))

    def lookup(self, message_id: str, address: str) -> str | None:
        """QuerySendDetails for the phone today and yesterday (UTC), matched on OutId."""
        for day_offset in (0, 1):
            day = datetime.fromtimestamp(time.time() - 86400 * day_offset, UTC).strftime("%Y%m%d")
            response = self._call("QuerySendDetails", {"PhoneNumber": address, "SendDate": day,
                                                       "PageSize": "50", "CurrentPage": "1"})  # fmt: skip
            response.raise_for_status()
            answer = response.json()
            if answer.get("Code") != "OK":
                raise httpx.HTTPError(f"QuerySendDetails answered {answer.get('Code')}")
            for item in answer.get("SmsSendDetailDTOs", {}).get("SmsSendDetailDTO", []):
                if item.get("OutId") == message_id:
                    return str(item.get("BizId") or "")
        return None


class JPushAdapter(Adapter):
    """JPush ``POST /v3/push`` to the customer's app user (alias), Basic appKey:masterSecret, ``cid`` for dedup."""

    provider = "push"
    address_field = "app_user_id"
    RETRYABLE_CODES = {1000, 2002, 2003}  # system error, rate limiting, rate limit by app

    def _send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        secret = f"{self.settings.channel_push_app_key}:{self.settings.channel_push_master_secret}"
        body = {
            "platform": "all",
            "audience": {"alias": [address]},
            "notification": {
                "alert": payload["body"],
                "android": {"alert": payload["body"], "title": payload["title"], "extras": payload.get("extras", {})},
                "ios": {
                    "alert": {"title": payload["title"], "body": payload["body"]},
                    "extras": payload.get("extras", {}),
                },
            },
            "options": {"time_to_live": 86400},
            "cid": message_id,
        }
        response = self.client.post(
            f"{self.base_url}/v3/push",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={
                "Authorization": f"Basic {base64.b64encode(secret.encode()).decode()}",
                "Content-Type": "application/json",
            },  # fmt: skip
        )
        failure = _http_failure(response)
        if failure is not None:
            return failure
        answer = response.json()
        if response.status_code == 200 and "msg_id" in answer:
            return SendResult(SENT, "0", "ok", str(answer["msg_id"]))
        error = answer.get("error", {})
        code = int(error.get("code", 0) or 0)
        status = RETRYABLE if code in self.RETRYABLE_CODES or response.status_code == 429 else PERMANENT
        return SendResult(status, str(code or f"http_{response.status_code}"), error.get("message", ""))


class WeChatPayCouponAdapter(Adapter):
    """WeChat Pay coupon "send coupon" to the customer's wallet (openid), idempotent on ``out_request_no``."""

    provider = "coupon"
    address_field = "wechat_openid"
    RETRYABLE_CODES = {"FREQUENCY_LIMITED", "SYSTEM_ERROR"}

    def _send(self, message_id: str, address: str, payload: dict[str, Any]) -> SendResult:
        path = f"/v3/marketing/favor/users/{address}/coupons"
        body = json.dumps(
            {"stock_id": str(payload["stock_id"]), "out_request_no": message_id,
             "appid": self.settings.channel_coupon_appid, "stock_creator_mchid": self.settings.channel_coupon_mchid},
            separators=(",", ":"),
        )  # fmt: skip
        auth = signing.wechatpay_authorization(
            self.settings.channel_coupon_mchid, self.settings.channel_coupon_api_key, "POST", path, body
        )
        response = self.client.post(
            f"{self.base_url}{path}",
            content=body.encode(),
            headers={"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"},
        )
        failure = _http_failure(response)
        if failure is not None:
            return failure
        answer = response.json()
        if response.status_code == 200 and "coupon_id" in answer:
            return SendResult(SENT, "OK", "ok", str(answer["coupon_id"]))
        code = str(answer.get("code") or f"http_{response.status_code}")
        status = RETRYABLE if code in self.RETRYABLE_CODES or response.status_code == 429 else PERMANENT
        return SendResult(status, code, answer.get("message", ""))


ADAPTERS: dict[str, type[Adapter]] = {
    "wechat": WeChatTemplateAdapter,
    "sms": AliyunSmsAdapter,
    "push": JPushAdapter,
    "coupon": WeChatPayCouponAdapter,
}


def make_adapter(channel: str, settings: Settings) -> Adapter:
    return ADAPTERS[channel](settings)
