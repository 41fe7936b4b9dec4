"""Signatures shared by the adapters, the provider sandbox and the serving API's webhooks.

- Aliyun RPC signature (SMS ``SendSms``): HMAC-SHA1 over ``POST&%2F&`` + the percent-encoded canonicalised
  query (parameters sorted by name, RFC 3986 encoding), key = AccessKeySecret + ``&``, base64.
- WeChat Pay API v3 message (coupons): ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n``. The real provider signs it with
  the merchant's RSA key (SHA256-RSA2048); here it is HMAC-SHA256 with the API v3 key, in the same header shape.
- WeChat Official Account server push: ``signature = sha1(sort(token, timestamp, nonce))``.
- Receipts (SMS reports, push and coupon callbacks): HMAC-SHA256 over ``timestamp \\n nonce \\n body`` with the
  shared webhook secret, in ``X-Mo-Timestamp``, ``X-Mo-Nonce``, ``X-Mo-Signature`` (hex).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

RECEIPT_TS = "X-Mo-Timestamp"
RECEIPT_NONCE = "X-Mo-Nonce"
RECEIPT_SIG = "X-Mo-Signature"


def percent_encode(value: str) -> str:
    return quote(str(value), safe="-_.~")


def aliyun_string_to_sign(params: dict[str, str], method: str = "POST") -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def aliyun_signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    digest = hmac.new(f"{secret}&".encode(), aliyun_string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def wechatpay_message(method: str, path: str, timestamp: str, nonce: str, body: str) -> str:
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n"


def wechatpay_signature(key: str, method: str, path: str, timestamp: str, nonce: str, body: str) -> str:
    message = wechatpay_message(method, path, timestamp, nonce, body)
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def wechatpay_authorization(mchid: str, key: str, method: str, path: str, body: str) -> str:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    signature = wechatpay_signature(key, method, path, timestamp, nonce, body)
    return (
        f'MO-HMAC-SHA256 mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
        f'serial_no="sandbox",signature="{signature}"'
    )


def parse_wechatpay_authorization(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme != "MO-HMAC-SHA256":
        return {}
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value.strip('"')
    return fields


def wechat_server_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def receipt_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def receipt_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    ts, nonce = str(timestamp if timestamp is not None else int(time.time())), secrets.token_hex(12)
    return {
        RECEIPT_TS: ts,
        RECEIPT_NONCE: nonce,
        RECEIPT_SIG: receipt_signature(secret, ts, nonce, body),
        "Content-Type": "application/json",
    }
