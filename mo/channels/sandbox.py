"""The provider sandbox: one small HTTP server speaking the providers' API shapes, for development and tests.

Endpoints (the real providers' paths and answers):

- WeChat Official Account: ``GET /cgi-bin/token`` (appid/secret -> access_token, expires_in; 40013 invalid
  appid, 40125 invalid appsecret), ``POST /cgi-bin/message/template/send?access_token=`` (40001 invalid
  credential, 42001 access_token expired, 40003 invalid openid, 43004 require subscribe, 40037 invalid template_id,
  47003 argument invalid, 45009 api freq out of limit; ``errcode 0`` + ``msgid``); the receipt is the
  ``TEMPLATESENDJOBFINISH`` event pushed as XML to the server URL, signed ``sha1(sort(token, timestamp, nonce))``.
- Aliyun SMS (RPC style, ``POST /`` form body): ``Action=SendSms`` (PhoneNumbers, SignName, TemplateCode,
  TemplateParam, OutId -> Code OK + BizId; isv.SMS_SIGNATURE_ILLEGAL, isv.SMS_TEMPLATE_ILLEGAL,
  isv.TEMPLATE_MISSING_PARAMETERS, isv.MOBILE_NUMBER_ILLEGAL, isv.BUSINESS_LIMIT_CONTROL), ``Action=QuerySendDetails``
  (PhoneNumber, SendDate, BizId -> SmsSendDetailDTOs with OutId); signature v1 (HMAC-SHA1, SignatureNonce used
  once, Timestamp within 15 minutes). Receipts: SmsReport JSON arrays.
- JPush: ``POST /v3/push`` (Basic appKey:masterSecret; audience alias/registration_id, notification, cid;
  1004 auth failed, 1011 cannot find user by this audience, 2002 rate limited -> msg_id).
- WeChat Pay coupons: ``POST /v3/marketing/favor/users/{openid}/coupons`` (stock_id, out_request_no, appid,
  stock_creator_mchid -> coupon_id; SIGN_ERROR, PARAM_ERROR, RESOURCE_NOT_EXISTS, FREQUENCY_LIMITED).

Behaviour is driven by data: approved templates and signatures from schemas/channels/templates.yaml, and
lists in the sandbox config of openids that are invalid or not following, phones that are invalid, push users
unknown, recipients whose receipt says failed. Rate limits per credential, latency and injected faults (5xx,
timeouts) are configurable while it runs (``POST /_sandbox/config``, ``POST /_sandbox/faults``).

A repeated client message id (client_msg_id, cid, OutId, out_request_no) is answered with the first answer and
not accepted again. Every request is logged (``requests``) and every accepted message once (``received``), in an
append-only SQLite file under the sandbox home: the ground truth tests compare the ledger with
(``GET /_sandbox/log``, ``GET /_sandbox/query/{provider}/{client_msg_id}``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import queue
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from mo.channels import signing
from mo.config import SCHEMAS_DIR, Settings, get_settings
from mo.errors import MoError

log = logging.getLogger(__name__)
TEMPLATES_PATH = SCHEMAS_DIR / "channels" / "templates.yaml"
PROVIDERS = ("wechat", "sms", "push", "coupon")
OPENID_RE = re.compile(r"^o[A-Za-z0-9_-]{27}$")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, provider TEXT NOT NULL, endpoint TEXT NOT NULL,
    client_msg_id TEXT, status INTEGER NOT NULL, code TEXT, duplicate INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS received (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, provider TEXT NOT NULL, client_msg_id TEXT NOT NULL,
    provider_msg_id TEXT NOT NULL, recipient TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (provider, client_msg_id));
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, provider TEXT NOT NULL, client_msg_id TEXT NOT NULL,
    outcome TEXT NOT NULL, http_status INTEGER);
CREATE TRIGGER IF NOT EXISTS requests_no_update BEFORE UPDATE ON requests BEGIN SELECT RAISE(ABORT, 'append-only'); END;
CREATE TRIGGER IF NOT EXISTS requests_no_delete BEFORE DELETE ON requests BEGIN SELECT RAISE(ABORT, 'append-only'); END;
CREATE TRIGGER IF NOT EXISTS received_no_update BEFORE UPDATE ON received BEGIN SELECT RAISE(ABORT, 'append-only'); END;
CREATE TRIGGER IF NOT EXISTS received_no_delete BEFORE DELETE ON received BEGIN SELECT RAISE(ABORT, 'append-only'); END;
"""


@dataclass
class SandboxConfig:
    """What the sandbox accepts and how it behaves. Credentials default to the platform settings' ones."""

    wechat_appid: str
    wechat_secret: str
    wechat_token: str
    sms_access_key_id: str
    sms_access_key_secret: str
    push_app_key: str
    push_master_secret: str
    coupon_mchid: str
    coupon_api_key: str
    webhook_url: str | None = None  # receipts go to <webhook_url>/<provider>
    webhook_secret: str = "sandbox-webhook-secret"
    rate_per_s: float = 200.0  # per credential (each provider has one here)
    latency_ms: float = 0.0
    receipt_delay_ms: float = 200.0  # carriers report after a while, never within the send call
    token_ttl_s: int = 7200
    timeout_fault_s: float = 3.0
    invalid_openids: list[str] = field(default_factory=list)
    unfollowed_openids: list[str] = field(default_factory=list)
    invalid_phones: list[str] = field(default_factory=list)
    unknown_push_users: list[str] = field(default_factory=list)
    undeliverable: list[str] = field(default_factory=list)  # accepted, then a failed receipt

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SandboxConfig:
        base: dict[str, Any] = {
            "wechat_appid": settings.channel_wechat_appid,
            "wechat_secret": settings.channel_wechat_secret,
            "wechat_token": settings.channel_wechat_token,
            "sms_access_key_id": settings.channel_sms_access_key_id,
            "sms_access_key_secret": settings.channel_sms_access_key_secret,
            "push_app_key": settings.channel_push_app_key,
            "push_master_secret": settings.channel_push_master_secret,
            "coupon_mchid": settings.channel_coupon_mchid,
            "coupon_api_key": settings.channel_coupon_api_key,
            "webhook_url": settings.channel_webhook_url,
            "webhook_secret": settings.channel_webhook_secret,
        }
        base.update(overrides)
        return cls(**base)

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise KeyError(name)
            setattr(self, name, value)

    def public(self) -> dict[str, Any]:
        secret = {"wechat_secret", "wechat_token", "sms_access_key_secret", "push_master_secret", "coupon_api_key"}
        return {k: v for k, v in self.__dict__.items() if k not in secret and k != "webhook_secret"}


def load_templates(path: Path = TEMPLATES_PATH) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    return data or {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Log:
    """The append-only log (SQLite, one connection guarded by a lock: the sandbox serves one process)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a test double: durable enough, not an fsync per request
        self._db.executescript(SCHEMA)

    def request(self, provider: str, endpoint: str, client_msg_id: str | None, status: int, code: str | None,
                duplicate: bool = False) -> None:  # fmt: skip
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (at, provider, endpoint, client_msg_id, status, code, duplicate) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now(), provider, endpoint, client_msg_id, status, code, int(duplicate)),
            )

    def find(self, provider: str, client_msg_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, at, provider, client_msg_id, provider_msg_id, recipient, body FROM received "
                "WHERE provider = ? AND client_msg_id = ?",
                (provider, client_msg_id),
            ).fetchone()
        return _received(row) if row else None

    def accept(self, provider: str, client_msg_id: str, provider_msg_id: str, recipient: str, body: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO received (at, provider, client_msg_id, provider_msg_id, recipient, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_now(), provider, client_msg_id, provider_msg_id, recipient, json.dumps(body, ensure_ascii=False)),
            )

    def receipt(self, provider: str, client_msg_id: str, outcome: str, http_status: int | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO receipts (at, provider, client_msg_id, outcome, http_status) VALUES (?, ?, ?, ?, ?)",
                (_now(), provider, client_msg_id, outcome, http_status),
            )

    def rows(self, table: str, provider: str | None = None, after_id: int = 0, limit: int = 10_000) -> list[dict]:
        assert table in ("requests", "received", "receipts")
        sql = f"SELECT * FROM {table} WHERE id > ?" + (" AND provider = ?" if provider else "") + " ORDER BY id LIMIT ?"
        args: tuple = (after_id, provider, limit) if provider else (after_id, limit)
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def sms_by_phone(self, phone: str, day: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, provider, client_msg_id, provider_msg_id, recipient, body FROM received "
                "WHERE provider = 'sms' AND recipient = ? AND substr(replace(at, '-', ''), 1, 8) = ? ORDER BY id",
                (phone, day),
            ).fetchall()
        return [_received(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _received(row: tuple) -> dict[str, Any]:
    keys = ("id", "at", "provider", "client_msg_id", "provider_msg_id", "recipient", "body")
    item = dict(zip(keys, row, strict=True))
    item["body"] = json.loads(item["body"])
    return item


class Bucket:
    """Token bucket per credential: ``rate`` per second, burst of one second's worth."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            if tokens < 1:
                self._state[key] = (tokens, now)
                return False
            self._state[key] = (tokens - 1, now)
            return True


class Receipts:
    """Posts receipts asynchronously (a background thread), retrying a few times as providers do."""

    def __init__(self, config: SandboxConfig, log_: Log) -> None:
        self.config, self.log = config, log_
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sandbox-receipts", daemon=True)
        self._thread.start()

    def post(self, provider: str, client_msg_id: str, outcome: str, build) -> None:  # type: ignore[no-untyped-def]
        self._queue.put(
            (time.monotonic() + self.config.receipt_delay_ms / 1000, provider, client_msg_id, outcome, build)
        )

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                due, provider, client_msg_id, outcome, build = item
                if not self.config.webhook_url:
                    self.log.receipt(provider, client_msg_id, outcome, None)
                    continue
                time.sleep(max(0.0, due - time.monotonic()))
                status = None
                for attempt in range(4):
                    url, content, headers = build()
                    try:
                        status = client.post(url, content=content, headers=headers).status_code
                    except httpx.HTTPError:
                        status = None
                    if status is not None and status < 500:
                        break
                    time.sleep(0.2 * 2**attempt)
                self.log.receipt(provider, client_msg_id, outcome, status)


class Sandbox:
    """The sandbox's state and its FastAPI app."""

    def __init__(self, home: Path, config: SandboxConfig, templates: dict[str, Any] | None = None) -> None:
        self.home = Path(home)
        self.config = config
        self.templates = templates if templates is not None else load_templates()
        self.log = Log(self.home / "sandbox.db")
        self.bucket = Bucket()
        self.faults: dict[str, list[str]] = {p: [] for p in PROVIDERS}
        self.tokens: dict[str, float] = {}
        self.nonces: dict[str, float] = {}
        self._lock = threading.Lock()
        self.receipts = Receipts(config, self.log)
        self.app = self._build()

    # ---- shared behaviour -------------------------------------------------------------------------------
    async def _common(self, provider: str, endpoint: str, client_msg_id: str | None) -> Response | None:
        """Latency, then an injected fault if one is queued for the provider."""
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        with self._lock:
            fault = self.faults[provider].pop(0) if self.faults[provider] else None
        if fault is None:
            return None
        if fault == "timeout":
            await asyncio.sleep(self.config.timeout_fault_s)
            self.log.request(provider, endpoint, client_msg_id, 504, "timeout")
            return JSONResponse({"message": "gateway timeout"}, status_code=504)
        status = int(fault)
        self.log.request(provider, endpoint, client_msg_id, status, f"http_{status}")
        return JSONResponse({"message": "internal error (injected)"}, status_code=status)

    def _limited(self, credential: str) -> bool:
        return not self.bucket.take(credential, self.config.rate_per_s)

    def _dedup(self, provider: str, endpoint: str, client_msg_id: str | None) -> dict[str, Any] | None:
        if not client_msg_id:
            return None
        found = self.log.find(provider, client_msg_id)
        if found is not None:
            self.log.request(provider, endpoint, client_msg_id, 200, "duplicate", duplicate=True)
        return found

    def _receipt(self, provider: str, client_msg_id: str, recipient: str, provider_msg_id: str) -> None:
        ok = recipient not in self.config.undeliverable
        outcome = "delivered" if ok else "failed"
        cfg = self.config

        def build() -> tuple[str, bytes, dict[str, str]]:
            base = (cfg.webhook_url or "").rstrip("/")
            if provider == "wechat":
                ts, nonce = str(int(time.time())), secrets.token_hex(8)
                sig = signing.wechat_server_signature(cfg.wechat_token, ts, nonce)
                status = "success" if ok else "failed:user block"
                xml = (
                    f"<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName>"
                    f"<FromUserName><![CDATA[{recipient}]]></FromUserName><CreateTime>{ts}</CreateTime>"
                    f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
                    f"<MsgID>{provider_msg_id}</MsgID><Status><![CDATA[{status}]]></Status></xml>"
                )
                query = urlencode({"signature": sig, "timestamp": ts, "nonce": nonce})
                return f"{base}/wechat?{query}", xml.encode(), {"Content-Type": "text/xml"}
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            if provider == "sms":
                item = {"phone_number": recipient, "send_time": now, "report_time": now, "success": ok,
                        "err_code": "DELIVERED" if ok else "MK:0001", "err_msg": "用户接收成功" if ok else "用户拒收",
                        "sms_size": "1", "biz_id": provider_msg_id, "out_id": client_msg_id}  # fmt: skip
            elif provider == "push":
                item = {"msg_id": provider_msg_id, "cid": client_msg_id, "alias": recipient,
                        "status": "delivered" if ok else "failed", "time": now}  # fmt: skip
            else:
                item = {"coupon_id": provider_msg_id, "out_request_no": client_msg_id, "openid": recipient,
                        "status": "SENDED" if ok else "FAILED", "time": now}  # fmt: skip
            body = json.dumps([item], ensure_ascii=False).encode()
            return f"{base}/{provider}", body, signing.receipt_headers(cfg.webhook_secret, body)

        self.receipts.post(provider, client_msg_id, outcome, build)

    # ---- the app -------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:  # noqa: C901 - one place for every provider's endpoints
        app = FastAPI(title="mo provider sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        cfg = self.config

        @app.get("/_sandbox/health")
        async def health() -> dict:
            return {"status": "ok", "home": str(self.home)}

        @app.get("/_sandbox/config")
        async def get_config() -> dict:
            return cfg.public()

        @app.post("/_sandbox/config")
        async def set_config(request: Request) -> Response:
            try:
                cfg.update(await request.json())
            except KeyError as exc:
                return JSONResponse({"error": f"unknown setting {exc}"}, status_code=400)
            return JSONResponse(cfg.public())

        @app.post("/_sandbox/faults")
        async def set_faults(request: Request) -> Response:
            body = await request.json()
            provider, kind, count = body.get("provider"), str(body.get("kind")), int(body.get("count", 1))
            if provider not in PROVIDERS or kind not in ("500", "502", "503", "timeout"):
                return JSONResponse({"error": "provider or kind unknown"}, status_code=400)
            with self._lock:
                self.faults[provider].extend([kind] * count)
            return JSONResponse({"queued": {p: len(f) for p, f in self.faults.items()}})

        @app.get("/_sandbox/log")
        async def read_log(table: str = "received", provider: str | None = None, after_id: int = 0) -> Response:
            if table not in ("requests", "received", "receipts"):
                return JSONResponse({"error": "table is requests, received or receipts"}, status_code=400)
            return JSONResponse({"items": self.log.rows(table, provider, after_id)})

        @app.get("/_sandbox/query/{provider}/{client_msg_id}")
        async def query(provider: str, client_msg_id: str) -> Response:
            found = self.log.find(provider, client_msg_id)
            if found is None:
                return JSONResponse({"received": False}, status_code=404)
            return JSONResponse({"received": True, "provider_msg_id": found["provider_msg_id"], "at": found["at"]})

        # ---- WeChat Official Account ----
        @app.get("/cgi-bin/token")
        async def wechat_token(grant_type: str = "", appid: str = "", secret: str = "") -> Response:
            fault = await self._common("wechat", "token", None)
            if fault is not None:
                return fault
            if grant_type != "client_credential":
                return self._wx("token", None, 40002, "invalid grant_type")
            if appid != cfg.wechat_appid:
                return self._wx("token", None, 40013, "invalid appid")
            if secret != cfg.wechat_secret:
                return self._wx("token", None, 40125, "invalid appsecret")
            token = secrets.token_urlsafe(48)
            with self._lock:
                self.tokens[token] = time.time() + cfg.token_ttl_s
            self.log.request("wechat", "token", None, 200, "0")
            return JSONResponse({"access_token": token, "expires_in": cfg.token_ttl_s})

        @app.post("/cgi-bin/message/template/send")
        async def wechat_send(request: Request, access_token: str = "") -> Response:
            ep = "template/send"
            try:
                body = json.loads(await request.body())
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                return self._wx(ep, None, 47001, "data format error")
            client_msg_id = body.get("client_msg_id")
            fault = await self._common("wechat", ep, client_msg_id)
            if fault is not None:
                return fault
            expires = self.tokens.get(access_token)
            if expires is None:
                return self._wx(ep, client_msg_id, 40001, "invalid credential, access_token is invalid or not latest")
            if expires < time.time():
                return self._wx(ep, client_msg_id, 42001, "access_token expired")
            if self._limited(f"wechat:{cfg.wechat_appid}"):
                return self._wx(ep, client_msg_id, 45009, "reach max api daily quota limit")
            found = self._dedup("wechat", ep, client_msg_id)
            if found is not None:
                return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": int(found["provider_msg_id"])})
            touser = str(body.get("touser") or "")
            if not OPENID_RE.match(touser) or touser in cfg.invalid_openids:
                return self._wx(ep, client_msg_id, 40003, "invalid openid")
            if touser in cfg.unfollowed_openids:
                return self._wx(ep, client_msg_id, 43004, "require subscribe")
            template = self.templates.get("wechat", {}).get("templates", {}).get(body.get("template_id"))
            if template is None:
                return self._wx(ep, client_msg_id, 40037, "invalid template_id")
            data = body.get("data") or {}
            extra = sorted(set(data) - set(template.get("fields", [])))
            if (
                not isinstance(data, dict)
                or extra
                or any(not isinstance(v, dict) or "value" not in v for v in data.values())
            ):
                return self._wx(ep, client_msg_id, 47003, f"argument invalid! data.{extra[0] if extra else ''}")
            limits = template.get("fields") if isinstance(template.get("fields"), dict) else {}
            too_long = [k for k, v in data.items() if k in limits and len(str(v["value"])) > int(limits[k])]
            if too_long:
                return self._wx(ep, client_msg_id, 47003, f"argument invalid! data.{too_long[0]}.value exceeds limit")
            msgid = str(int(time.time() * 1000) * 1000 + secrets.randbelow(1000))
            self.log.accept("wechat", client_msg_id or f"auto-{msgid}", msgid, touser, body)
            self.log.request("wechat", ep, client_msg_id, 200, "0")
            self._receipt("wechat", client_msg_id or f"auto-{msgid}", touser, msgid)
            return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": int(msgid)})

        # ---- Aliyun SMS (RPC style) ----
        @app.post("/")
        async def aliyun(request: Request) -> Response:
            params = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
            params.update(dict(request.query_params))
            action = params.get("Action", "")
            client_msg_id = params.get("OutId") if action == "SendSms" else None
            fault = await self._common("sms", action or "?", client_msg_id)
            if fault is not None:
                return fault
            refused = self._aliyun_auth(params)
            if refused is not None:
                status, code, message = refused
                return self._sms(action, client_msg_id, code, message, status)
            if action == "QuerySendDetails":
                return self._sms_query(params)
            if action != "SendSms":
                return self._sms(action, None, "InvalidAction.NotFound", "Specified api is not found", 404)
            if self._limited(f"sms:{cfg.sms_access_key_id}"):
                return self._sms(action, client_msg_id, "isv.BUSINESS_LIMIT_CONTROL", "业务限流")
            found = self._dedup("sms", action, client_msg_id)
            if found is not None:
                return self._sms_ok(found["provider_msg_id"])
            phone = params.get("PhoneNumbers", "")
            sms = self.templates.get("sms", {})
            if not PHONE_RE.match(phone) or phone in cfg.invalid_phones:
                return self._sms(action, client_msg_id, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            if params.get("SignName") not in sms.get("signatures", []):
                return self._sms(action, client_msg_id, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
            template = sms.get("templates", {}).get(params.get("TemplateCode"))
            if template is None:
                return self._sms(action, client_msg_id, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
            try:
                values = json.loads(params.get("TemplateParam") or "{}")
            except ValueError:
                return self._sms(action, client_msg_id, "isv.INVALID_JSON_PARAM", "JSON参数不合法")
            missing = [p for p in template.get("params", []) if p not in values]
            if missing:
                return self._sms(action, client_msg_id, "isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量 {missing[0]}")
            limit = sms.get("param_max_length")
            too_long = [p for p, v in values.items() if limit and len(str(v)) > limit]
            if too_long:
                return self._sms(action, client_msg_id, "isv.PARAM_LENGTH_LIMIT", f"参数超过长度限制 {too_long[0]}")
            biz_id = f"{secrets.randbelow(10**15):015d}^0"
            body = {k: params[k] for k in ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam") if k in params}
            key = client_msg_id or f"auto-{biz_id}"
            self.log.accept("sms", key, biz_id, phone, body)
            self.log.request("sms", action, client_msg_id, 200, "OK")
            self._receipt("sms", key, phone, biz_id)
            return self._sms_ok(biz_id)

        # ---- JPush ----
        @app.post("/v3/push")
        async def push(request: Request) -> Response:
            ep = "push"
            try:
                body = json.loads(await request.body())
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                return self._jpush(ep, None, 1003, "Parameter value is invalid", 400)
            cid = body.get("cid")
            fault = await self._common("push", ep, cid)
            if fault is not None:
                return fault
            expected = base64.b64encode(f"{cfg.push_app_key}:{cfg.push_master_secret}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return self._jpush(ep, cid, 1004, "Authen failed", 401)
            if self._limited(f"push:{cfg.push_app_key}"):
                return self._jpush(ep, cid, 2002, "Rate limiting", 429)
            found = self._dedup("push", ep, cid)
            if found is not None:
                return JSONResponse({"sendno": str(body.get("sendno", "0")), "msg_id": found["provider_msg_id"]})
            audience = body.get("audience") or {}
            targets = (
                (audience.get("alias") or audience.get("registration_id") or []) if isinstance(audience, dict) else []
            )
            target = str(targets[0]) if targets else ""
            if not target or target in cfg.unknown_push_users:
                return self._jpush(ep, cid, 1011, "cannot find user by this audience", 400)
            notification = body.get("notification") or {}
            if not notification.get("alert"):
                return self._jpush(ep, cid, 1003, "Parameter value is invalid: notification.alert", 400)
            msg_id = str(secrets.randbelow(10**18))
            key = cid or f"auto-{msg_id}"
            self.log.accept("push", key, msg_id, target, body)
            self.log.request("push", ep, cid, 200, "0")
            self._receipt("push", key, target, msg_id)
            return JSONResponse({"sendno": str(body.get("sendno", "0")), "msg_id": msg_id})

        # ---- WeChat Pay coupons ----
        @app.post("/v3/marketing/favor/users/{openid}/coupons")
        async def coupon(openid: str, request: Request) -> Response:
            ep = "coupons"
            raw = (await request.body()).decode("utf-8", "replace")
            try:
                body = json.loads(raw)
                assert isinstance(body, dict)
            except (ValueError, AssertionError):
                return self._pay(ep, None, "PARAM_ERROR", "请求体不是JSON", 400)
            out_request_no = body.get("out_request_no")
            fault = await self._common("coupon", ep, out_request_no)
            if fault is not None:
                return fault
            auth = signing.parse_wechatpay_authorization(request.headers.get("authorization", ""))
            expected = signing.wechatpay_signature(
                cfg.coupon_api_key, "POST", request.url.path, auth.get("timestamp", ""), auth.get("nonce_str", ""), raw
            )
            if auth.get("mchid") != cfg.coupon_mchid or not secrets.compare_digest(auth.get("signature", ""), expected):
                return self._pay(ep, out_request_no, "SIGN_ERROR", "签名错误", 401)
            if self._limited(f"coupon:{cfg.coupon_mchid}"):
                return self._pay(ep, out_request_no, "FREQUENCY_LIMITED", "频率超限", 429)
            found = self._dedup("coupon", ep, out_request_no)
            if found is not None:
                return JSONResponse({"coupon_id": found["provider_msg_id"]})
            if not out_request_no:
                return self._pay(ep, None, "PARAM_ERROR", "out_request_no 必填", 400)
            if not OPENID_RE.match(openid) or openid in cfg.invalid_openids:
                return self._pay(ep, out_request_no, "PARAM_ERROR", "openid无效", 400)
            if str(body.get("stock_id")) not in self.templates.get("coupon", {}).get("stocks", {}):
                return self._pay(ep, out_request_no, "RESOURCE_NOT_EXISTS", "批次不存在", 404)
            coupon_id = str(secrets.randbelow(10**11))
            self.log.accept("coupon", out_request_no, coupon_id, openid, body)
            self.log.request("coupon", ep, out_request_no, 200, "OK")
            self._receipt("coupon", out_request_no, openid, coupon_id)
            return JSONResponse({"coupon_id": coupon_id})

        return app

    # ---- answers -------------------------------------------------------------------------------------
    def _wx(self, endpoint: str, client_msg_id: str | None, errcode: int, errmsg: str) -> Response:
        self.log.request("wechat", endpoint, client_msg_id, 200, str(errcode))
        return JSONResponse({"errcode": errcode, "errmsg": errmsg})

    def _sms(self, action: str, client_msg_id: str | None, code: str, message: str, status: int = 200) -> Response:
        self.log.request("sms", action or "?", client_msg_id, status, code)
        return JSONResponse(
            {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper()}, status_code=status
        )

    def _sms_ok(self, biz_id: str) -> Response:
        return JSONResponse({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4()).upper()})

    def _jpush(self, endpoint: str, cid: str | None, code: int, message: str, status: int) -> Response:
        self.log.request("push", endpoint, cid, status, str(code))
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    def _pay(self, endpoint: str, out_request_no: str | None, code: str, message: str, status: int) -> Response:
        self.log.request("coupon", endpoint, out_request_no, status, code)
        return JSONResponse({"code": code, "message": message}, status_code=status)

    def _aliyun_auth(self, params: dict[str, str]) -> tuple[int, str, str] | None:
        cfg = self.config
        for name in ("AccessKeyId", "Signature", "SignatureNonce", "Timestamp", "SignatureMethod"):
            if not params.get(name):
                return 400, "MissingParameter", f"{name} is mandatory for this action."
        if params["AccessKeyId"] != cfg.sms_access_key_id:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if params["SignatureMethod"] != "HMAC-SHA1":
            return 400, "InvalidSignatureMethod", "Specified signature method is not supported."
        expected = signing.aliyun_signature(params, cfg.sms_access_key_secret)
        if not secrets.compare_digest(params["Signature"], expected):
            return 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return 400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        if abs(datetime.now(UTC) - stamp) > timedelta(minutes=15):
            return 400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
        with self._lock:
            now = time.time()
            if params["SignatureNonce"] in self.nonces:
                return 400, "SignatureNonceUsed", "Specified signature nonce was used already."
            self.nonces[params["SignatureNonce"]] = now
            if len(self.nonces) > 100_000:
                self.nonces = {n: t for n, t in self.nonces.items() if now - t < 900}
        return None

    def _sms_query(self, params: dict[str, str]) -> Response:
        phone, day = params.get("PhoneNumber", ""), params.get("SendDate", "")
        if not phone or not re.match(r"^\d{8}$", day):
            return self._sms("QuerySendDetails", None, "isv.INVALID_PARAMETERS", "PhoneNumber and SendDate (yyyyMMdd)")
        rows = self.log.sms_by_phone(phone, day)
        if params.get("BizId"):
            rows = [r for r in rows if r["provider_msg_id"] == params["BizId"]]
        self.log.request("sms", "QuerySendDetails", None, 200, "OK")
        details = [
            {
                "PhoneNum": r["recipient"],
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "TemplateCode": r["body"].get("TemplateCode"),
                "Content": "",
                "SendDate": r["at"],
                "ReceiveDate": r["at"],
                "OutId": r["client_msg_id"],
                "BizId": r["provider_msg_id"],
            }  # fmt: skip
            for r in rows
        ]
        answer = {"Code": "OK", "Message": "OK", "RequestId": str(uuid.uuid4()).upper(), "TotalCount": len(details)}
        return JSONResponse({**answer, "SmsSendDetailDTOs": {"SmsSendDetailDTO": details}})

    def close(self) -> None:
        self.receipts.stop()
        self.log.close()


class SandboxServer:
    """A sandbox served by uvicorn on a thread of this process (tests); ``url`` once started."""

    def __init__(self, sandbox: Sandbox, port: int, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.sandbox, self.port, self.host = sandbox, port, host
        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning",
                                                     lifespan="off", access_log=False))  # fmt: skip
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MoError(f"provider sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sandbox.close()


# ---- the detached process (`mo channels sandbox start|stop|status`) ------------------------------------
def sandbox_home(settings: Settings) -> Path:
    return settings.home / "sandbox"


def _pid_file(settings: Settings) -> Path:
    return sandbox_home(settings) / "sandbox.pid"


def _running_pid(settings: Settings) -> int | None:
    import psutil

    try:
        pid = int(_pid_file(settings).read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and "mo.channels.sandbox" in " ".join(proc.cmdline()):
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def start_detached(settings: Settings) -> str:
    """Start the sandbox as a detached process bound to ``channel_sandbox_host``; its URL from this machine."""
    url = settings.channel_sandbox_url
    if _running_pid(settings) is not None:
        return url
    home = sandbox_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "sandbox.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mo.channels.sandbox", "--port", str(settings.channel_sandbox_port),
             "--host", settings.channel_sandbox_host],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MoError(f"provider sandbox exited at start; log: {home / 'sandbox.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_sandbox/health", timeout=0.5).status_code == 200:
                return url
        time.sleep(0.1)
    raise MoError(f"provider sandbox did not answer within 20 s at {url}; log: {home / 'sandbox.log'}")


def stop_detached(settings: Settings) -> bool:
    pid = _running_pid(settings)
    if pid is None:
        return False
    import psutil

    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout=5)
        if not psutil.pid_exists(pid):
            break
    _pid_file(settings).unlink(missing_ok=True)
    return True


def status(settings: Settings) -> dict[str, Any]:
    pid = _running_pid(settings)
    return {"running": pid is not None, "pid": pid, "url": settings.channel_sandbox_url,
            "host": settings.channel_sandbox_host, "log": str(sandbox_home(settings) / "sandbox.db")}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m mo.channels.sandbox")
    parser.add_argument("--port", type=int, default=None, help="default: MO_CHANNEL_SANDBOX_PORT")
    parser.add_argument("--host", default=None, help="bind address; default: MO_CHANNEL_SANDBOX_HOST (127.0.0.1)")
    args = parser.parse_args(argv)
    settings = get_settings()
    sandbox = Sandbox(sandbox_home(settings), SandboxConfig.from_settings(settings))
    host, port = args.host or settings.channel_sandbox_host, args.port or settings.channel_sandbox_port
    try:
        uvicorn.run(sandbox.app, host=host, port=port, log_level="warning")
    finally:
        sandbox.close()


if __name__ == "__main__":
    main()
