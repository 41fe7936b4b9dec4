"""The provider sandbox speaks each provider's API faithfully, and the adapters read its answers: auth, the
providers' error codes, rate limits, dedup on the client message id, the query endpoints, signed receipts."""

from __future__ import annotations

import base64
import json
import threading
import uuid

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from mo.channels import signing
from mo.channels.adapters import PERMANENT, RETRYABLE, SENT, make_adapter
from mo.config import get_settings
from tests.channels.helpers import (
    PAYLOADS,
    configure,
    inject,
    openid,
    phone,
    point_channels_at,
    running_sandbox,
    sandbox_log,
)
from tests.channels.helpers import sandbox_log as log_of


@pytest.fixture
def sandbox(settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    with running_sandbox(tmp_path / "sandbox", unfollowed_openids=[openid(999)], invalid_phones=[phone(998)]) as srv:
        point_channels_at(monkeypatch, srv.url)
        yield srv


def _adapter(channel: str):  # type: ignore[no-untyped-def]
    return make_adapter(channel, get_settings())


ADDRESS = {"sms": phone(1), "wechat": openid(1), "push": "U000000001001", "coupon": openid(1)}


@pytest.mark.parametrize("channel", ["sms", "wechat", "push", "coupon"])
def test_each_provider_accepts_once_per_client_message_id_and_answers_its_query(sandbox, channel) -> None:
    adapter = _adapter(channel)
    message_id = str(uuid.uuid4())
    first = adapter.send(message_id, ADDRESS[channel], PAYLOADS[channel])
    again = adapter.send(message_id, ADDRESS[channel], PAYLOADS[channel])
    assert first.status == SENT and first.provider_message_id
    assert again.status == SENT and again.provider_message_id == first.provider_message_id  # the first answer
    received = log_of(sandbox, provider=channel)
    assert [r["client_msg_id"] for r in received] == [message_id]  # accepted once
    assert received[0]["recipient"] == ADDRESS[channel]
    assert [r["duplicate"] for r in log_of(sandbox, "requests", channel) if r["client_msg_id"] == message_id] == [0, 1]
    assert adapter.lookup(message_id, ADDRESS[channel]) == first.provider_message_id
    assert adapter.lookup(str(uuid.uuid4()), ADDRESS[channel]) is None


@pytest.mark.parametrize(
    ("channel", "address", "payload", "code"),
    [
        ("wechat", "not-an-openid", PAYLOADS["wechat"], "40003"),
        ("wechat", openid(999), PAYLOADS["wechat"], "43004"),
        ("wechat", openid(1), {**PAYLOADS["wechat"], "template_id": "TPL_NOT_APPROVED"}, "40037"),
        ("wechat", openid(1), {**PAYLOADS["wechat"], "data": {"nope": {"value": "x"}}}, "47003"),
        ("wechat", openid(1), {**PAYLOADS["wechat"], "data": {"thing1": {"value": "长" * 21}}}, "47003"),
        ("sms", phone(998), PAYLOADS["sms"], "isv.MOBILE_NUMBER_ILLEGAL"),
        ("sms", phone(1), {**PAYLOADS["sms"], "sign_name": "未注册签名"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ("sms", phone(1), {**PAYLOADS["sms"], "template_code": "SMS_999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ("sms", phone(1), {**PAYLOADS["sms"], "template_param": {"name": "张"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
        (
            "sms",
            phone(1),
            {**PAYLOADS["sms"], "template_param": {"name": "张", "notice": "x" * 36}},
            "isv.PARAM_LENGTH_LIMIT",
        ),  # a variable over 35 characters (why SMS links are short links)
        ("push", "", PAYLOADS["push"], "1011"),
        ("coupon", openid(1), {"stock_id": "1"}, "RESOURCE_NOT_EXISTS"),
        ("coupon", "bad", PAYLOADS["coupon"], "PARAM_ERROR"),
    ],
)
def test_provider_refusals_are_permanent_with_the_providers_code(sandbox, channel, address, payload, code) -> None:
    result = _adapter(channel).send(str(uuid.uuid4()), address, payload)
    assert (result.status, result.code) == (PERMANENT, code)
    assert log_of(sandbox, provider=channel) == []  # nothing accepted


def test_wrong_credentials_are_refused_by_each_provider(sandbox, monkeypatch) -> None:
    for name, value in [("MO_CHANNEL_WECHAT_SECRET", "x"), ("MO_CHANNEL_SMS_ACCESS_KEY_SECRET", "x"),
                        ("MO_CHANNEL_PUSH_MASTER_SECRET", "x"), ("MO_CHANNEL_COUPON_API_KEY", "x")]:  # fmt: skip
        monkeypatch.setenv(name, value)
    codes = {ch: _adapter(ch).send(str(uuid.uuid4()), ADDRESS[ch], PAYLOADS[ch]) for ch in ADDRESS}
    assert {ch: (r.status, r.code) for ch, r in codes.items()} == {
        "wechat": (PERMANENT, "40125"),
        "sms": (PERMANENT, "SignatureDoesNotMatch"),
        "push": (PERMANENT, "1004"),
        "coupon": (PERMANENT, "SIGN_ERROR"),
    }
    monkeypatch.setenv("MO_CHANNEL_WECHAT_APPID", "wx-other")
    assert _adapter("wechat").send(str(uuid.uuid4()), openid(1), PAYLOADS["wechat"]).code == "40013"
    assert log_of(sandbox) == []


def test_sms_signature_nonce_is_single_use_and_timestamps_expire(sandbox) -> None:
    settings = get_settings()
    params = {"AccessKeyId": settings.channel_sms_access_key_id, "Action": "SendSms", "Format": "JSON",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "n-1", "SignatureVersion": "1.0",
              "Timestamp": "2020-01-01T00:00:00Z", "Version": "2017-05-25", "PhoneNumbers": phone(1),
              "SignName": "中安保险", "TemplateCode": "SMS_SERVICE_01",
              "TemplateParam": json.dumps({"name": "a", "notice": "b"})}  # fmt: skip
    params["Signature"] = signing.aliyun_signature(params, settings.channel_sms_access_key_secret)
    answer = httpx.post(f"{sandbox.url}/", data=params)
    assert (answer.status_code, answer.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    from datetime import UTC, datetime

    params["Timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    params["SignatureNonce"] = "n-2"
    params["Signature"] = signing.aliyun_signature(params, settings.channel_sms_access_key_secret)
    assert httpx.post(f"{sandbox.url}/", data=params).json()["Code"] == "OK"
    replay = httpx.post(f"{sandbox.url}/", data=params)
    assert (replay.status_code, replay.json()["Code"]) == (400, "SignatureNonceUsed")
    tampered = {**params, "SignatureNonce": "n-3", "PhoneNumbers": phone(2)}
    assert httpx.post(f"{sandbox.url}/", data=tampered).json()["Code"] == "SignatureDoesNotMatch"
    assert len(log_of(sandbox, provider="sms")) == 1


def test_wechat_token_is_cached_and_fetched_again_when_refused(sandbox) -> None:
    adapter = _adapter("wechat")
    for _ in range(3):
        assert adapter.send(str(uuid.uuid4()), openid(1), PAYLOADS["wechat"]).status == SENT
    assert adapter.token_fetches == 1
    adapter._token = ("revoked-token", adapter._token[1])  # the provider no longer knows it: 40001
    assert adapter.send(str(uuid.uuid4()), openid(1), PAYLOADS["wechat"]).status == SENT
    assert adapter.token_fetches == 2
    codes = [r["code"] for r in log_of(sandbox, "requests", "wechat")]
    assert codes.count("40001") == 1 and len(log_of(sandbox, provider="wechat")) == 4


def test_rate_limits_answer_each_providers_frequency_code_as_retryable(sandbox) -> None:
    configure(sandbox, rate_per_s=2)
    expected = {"wechat": "45009", "sms": "isv.BUSINESS_LIMIT_CONTROL", "push": "2002", "coupon": "FREQUENCY_LIMITED"}
    for channel, code in expected.items():
        adapter = _adapter(channel)
        results = [adapter.send(str(uuid.uuid4()), ADDRESS[channel], PAYLOADS[channel]) for _ in range(6)]
        limited = [r for r in results if r.status != SENT]
        assert limited and all((r.status, r.code) == (RETRYABLE, code) for r in limited), results
        assert len(log_of(sandbox, provider=channel)) == len(results) - len(limited)


def test_injected_5xx_and_timeouts_are_retryable_and_nothing_is_accepted(sandbox, monkeypatch) -> None:
    inject(sandbox, "sms", "503", 1)
    inject(sandbox, "push", "timeout", 1)
    configure(sandbox, timeout_fault_s=2.0)
    monkeypatch.setenv("MO_CHANNEL_TIMEOUT_S", "0.5")
    sms = _adapter("sms").send(str(uuid.uuid4()), phone(1), PAYLOADS["sms"])
    push = _adapter("push").send(str(uuid.uuid4()), ADDRESS["push"], PAYLOADS["push"])
    assert (sms.status, sms.code) == (RETRYABLE, "http_503")
    assert (push.status, push.code) == (RETRYABLE, "timeout")
    assert log_of(sandbox) == []


def test_provider_down_is_retryable(settings, monkeypatch) -> None:
    from tests.conftest import free_port

    point_channels_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    result = _adapter("sms").send(str(uuid.uuid4()), phone(1), PAYLOADS["sms"])
    assert (result.status, result.code) == (RETRYABLE, "unreachable")


def test_receipts_are_posted_signed_to_the_webhook(settings, tmp_path, monkeypatch) -> None:
    """A small receiver checks each receipt's signature as the serving API does."""
    from tests.conftest import free_port

    got: list[tuple[str, bool, bytes]] = []
    arrived = threading.Event()
    receiver = FastAPI()

    @receiver.post("/hooks/{provider}")
    async def hook(provider: str, request: Request) -> dict:
        body = await request.body()
        s = get_settings()
        if provider == "wechat":
            q = request.query_params
            ok = q["signature"] == signing.wechat_server_signature(s.channel_wechat_token, q["timestamp"], q["nonce"])
        else:
            h = request.headers
            ok = h[signing.RECEIPT_SIG] == signing.receipt_signature(
                s.channel_webhook_secret, h[signing.RECEIPT_TS], h[signing.RECEIPT_NONCE], body
            )
        got.append((provider, ok, body))
        if len(got) == 4:
            arrived.set()
        return {}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        hooks = f"http://127.0.0.1:{port}/hooks"
        with running_sandbox(tmp_path / "sb", webhook_url=hooks, receipt_delay_ms=0, undeliverable=[phone(7)]) as sb:
            point_channels_at(monkeypatch, sb.url)
            ids = {ch: str(uuid.uuid4()) for ch in ADDRESS}
            for ch in ("wechat", "push", "coupon"):
                assert _adapter(ch).send(ids[ch], ADDRESS[ch], PAYLOADS[ch]).status == SENT
            assert _adapter("sms").send(ids["sms"], phone(7), PAYLOADS["sms"]).status == SENT
            assert arrived.wait(20), (got, sandbox_log(sb, "receipts"))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert all(ok for _, ok, _ in got)
    by_provider = {p: b for p, _, b in got}
    sms = json.loads(by_provider["sms"])[0]
    assert (sms["out_id"], sms["success"], sms["phone_number"]) == (ids["sms"], False, phone(7))
    assert b"TEMPLATESENDJOBFINISH" in by_provider["wechat"] and b"<Status><![CDATA[success]]>" in by_provider["wechat"]
    assert json.loads(by_provider["push"])[0]["cid"] == ids["push"]
    assert json.loads(by_provider["coupon"])[0]["out_request_no"] == ids["coupon"]


def test_sandbox_log_is_append_only(sandbox) -> None:
    import sqlite3

    assert _adapter("push").send(str(uuid.uuid4()), ADDRESS["push"], PAYLOADS["push"]).status == SENT
    db = sqlite3.connect(str(sandbox.sandbox.log.path))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM received")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE received SET recipient = 'x'")
    db.close()


def test_basic_auth_header_shape_is_jpush() -> None:
    expected = base64.b64encode(b"k:s").decode()
    assert f"Basic {expected}" == "Basic " + base64.b64encode(b"k:s").decode()
