"""Provider receipts and tracked links: signed receipts append delivered/failed, forged, stale or replayed ones
are refused (401/409, problem+json naming the field, audited, nothing recorded); a tracked link appends
opened/clicked and redirects, a tampered, expired or off-list one is refused 400 and audited. End to end: the
provider sandbox posts its receipts to this API running on a port."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from conftest import ledger_send
from sqlalchemy import insert, select

from mo.channels import links, signing
from mo.config import Settings as PlatformSettings
from mo.oltp.api_tables import AuditEntry
from mo.oltp.campaign_tables import Delivery

DELIVERIES = Delivery.__table__
AUDIT = AuditEntry.__table__


@pytest.fixture(scope="module")
def platform() -> PlatformSettings:
    return PlatformSettings()


def _sent(world, provider: str, customer_id: int = 1, provider_message_id: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """A message of this test's own ledger row, queued and sent."""
    ledger = ledger_send(world, customer_id, channel=provider)
    message_id = ledger.message_id
    now = datetime.now(UTC).replace(tzinfo=None)
    with world.source.begin() as conn:
        for state in ("queued", "sent"):
            conn.execute(insert(DELIVERIES).values(
                message_id=message_id, ledger_id=ledger.id, customer_id=customer_id, state=state, provider=provider,
                provider_message_id=provider_message_id or f"P{uuid.uuid4().int % 10**12}" if state == "sent" else None,
                detail=None, at=now))  # fmt: skip
    return message_id


def _states(world, message_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with world.source.connect() as conn:
        query = select(DELIVERIES.c.state).where(DELIVERIES.c.message_id == message_id).order_by(DELIVERIES.c.id)
        return list(conn.execute(query).scalars())


def _last_audit(world, action: str):  # type: ignore[no-untyped-def]
    with world.source.connect() as conn:
        return conn.execute(select(AUDIT).where(AUDIT.c.action == action).order_by(AUDIT.c.id.desc()).limit(1)).first()


def _sms_report(message_id: str, success: bool = True) -> bytes:
    return json.dumps([{"phone_number": "13800000001", "send_time": "2026-12-06 10:00:00",
                        "report_time": "2026-12-06 10:00:03", "success": success,
                        "err_code": "DELIVERED" if success else "MK:0001", "err_msg": "ok", "sms_size": "1",
                        "biz_id": "123^0", "out_id": message_id}]).encode()  # fmt: skip


def _post(client, provider: str, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/webhooks/{provider}", content=body, headers=headers)


def test_signed_receipts_append_delivered_or_failed_once(world, client, platform) -> None:
    ok, bad = _sent(world, "sms"), _sent(world, "sms")
    body = _sms_report(ok)
    answer = _post(client, "sms", body, signing.receipt_headers(platform.channel_webhook_secret, body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"provider": "sms", "recorded": 1, "duplicates": 0, "unknown": 0}
    assert _states(world, ok) == ["queued", "sent", "delivered"]
    assert _last_audit(world, "webhooks.receive").detail == "sms: recorded=1, duplicates=0, unknown=0"
    body = _sms_report(bad, success=False)
    assert _post(client, "sms", body, signing.receipt_headers(platform.channel_webhook_secret, body)).status_code == 200
    assert _states(world, bad) == ["queued", "sent", "failed"]
    # the same receipt again, freshly signed (the provider retried): nothing recorded twice
    body = _sms_report(ok)
    again = _post(client, "sms", body, signing.receipt_headers(platform.channel_webhook_secret, body))
    assert again.json()["duplicates"] == 1 and _states(world, ok) == ["queued", "sent", "delivered"]


def test_a_receipt_for_a_message_never_sent_records_nothing(world, client, platform) -> None:
    ghost = str(uuid.uuid4())
    body = _sms_report(ghost)
    answer = _post(client, "sms", body, signing.receipt_headers(platform.channel_webhook_secret, body))
    assert answer.json()["unknown"] == 1 and _states(world, ghost) == []


@pytest.mark.parametrize(
    ("tamper", "status", "field", "kind"),
    [
        ("signature", 401, "/header/X-Mo-Signature", "webhook-forged"),
        ("body", 401, "/header/X-Mo-Signature", "webhook-forged"),
        ("missing", 401, "/header/X-Mo-Signature", "webhook-unsigned"),
        ("stale", 401, "/header/X-Mo-Timestamp", "webhook-stale"),
        ("replay", 409, "/header/X-Mo-Nonce", "webhook-replayed"),
    ],
)
def test_forged_stale_or_replayed_receipts_are_refused_and_audited(world, client, platform, tamper, status, field,
                                                                   kind) -> None:  # fmt: skip
    message_id = _sent(world, "push")
    body = json.dumps([{"msg_id": "1", "cid": message_id, "alias": "U1", "status": "delivered", "time": "x"}]).encode()
    headers = signing.receipt_headers(platform.channel_webhook_secret, body)
    if tamper == "signature":
        headers = signing.receipt_headers("not-the-secret", body)
    elif tamper == "body":
        body = body.replace(b"delivered", b"failed")
    elif tamper == "missing":
        headers = {"Content-Type": "application/json"}
    elif tamper == "stale":
        headers = signing.receipt_headers(platform.channel_webhook_secret, body, timestamp=int(time.time()) - 301)
    elif tamper == "replay":
        assert _post(client, "push", body, headers).status_code == 200
    before = _states(world, message_id)
    answer = _post(client, "push", body, headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"].endswith(kind) and problem["errors"][0]["field"] == field
    assert _states(world, message_id) == before  # nothing recorded
    entry = _last_audit(world, "webhooks.receive")
    assert entry.status_code == status and entry.resource == "POST /v1/webhooks/push" and entry.actor == "anonymous"


def test_wechat_event_push_is_verified_with_the_server_token(world, client, platform) -> None:
    msg_id = str(uuid.uuid4().int % 10**15)
    message_id = _sent(world, "wechat", provider_message_id=msg_id)
    xml = (f"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
           f"<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msg_id}</MsgID>"
           f"<Status><![CDATA[success]]></Status></xml>").encode()  # fmt: skip
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    forged = client.post(f"/v1/webhooks/wechat?signature={'0' * 40}&timestamp={ts}&nonce={nonce}", content=xml)
    assert forged.status_code == 401 and forged.json()["errors"][0]["field"] == "/query/signature"
    signature = signing.wechat_server_signature(platform.channel_wechat_token, ts, nonce)
    answer = client.post(f"/v1/webhooks/wechat?signature={signature}&timestamp={ts}&nonce={nonce}", content=xml)
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    assert _states(world, message_id) == ["queued", "sent", "delivered"]
    entity = b'<!DOCTYPE x [<!ENTITY a "b">]><xml><Event>&a;</Event></xml>'
    nonce2 = uuid.uuid4().hex[:10]
    signature = signing.wechat_server_signature(platform.channel_wechat_token, ts, nonce2)
    refused = client.post(f"/v1/webhooks/wechat?signature={signature}&timestamp={ts}&nonce={nonce2}", content=entity)
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "/body"


def test_unreadable_receipt_body_names_the_field(world, client, platform) -> None:
    body = json.dumps([{"phone_number": "1", "out_id": "x"}]).encode()
    answer = _post(client, "sms", body, signing.receipt_headers(platform.channel_webhook_secret, body))
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "/body/0/success"


def test_tracked_link_records_opened_and_clicked_and_redirects(world, client, platform) -> None:
    message_id = _sent(world, "sms")
    url = links.tracked_url(message_id, "https://www.example-insurer.cn/renew?p=1", platform)
    path = url[url.index("/v1/t/") :]
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == "https://www.example-insurer.cn/renew?p=1"
    assert _states(world, message_id) == ["queued", "sent", "opened", "clicked"]
    assert client.get(path, follow_redirects=False).status_code == 302  # a second click: still redirected ...
    assert _states(world, message_id) == ["queued", "sent", "opened", "clicked"]  # ... recorded once


def test_an_sms_short_link_records_opened_and_clicked_like_a_signed_one(world, client, platform) -> None:
    message_id, target = _sent(world, "sms"), "https://m.example-insurer.cn/renewal?campaign=december&ref=sms"
    with world.source.begin() as conn:
        code = links.store_short_links(conn, [(message_id, target)], platform)[(message_id, target)]
    with world.source.begin() as conn:  # a rerun of the dispatch finds the same code
        assert links.store_short_links(conn, [(message_id, target)], platform) == {(message_id, target): code}
    url = links.short_url(code, platform)
    assert len(url) <= 35 and links.is_short_code(code)
    answer = client.get(f"/v1/t/{code}", follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == target
    assert _states(world, message_id) == ["queued", "sent", "opened", "clicked"]
    # an unknown code (a guess, or a typo) is 404 and audited; an expired one 400 naming it; nothing recorded
    unknown = "Zz9" + code[3:] if code[:3] != "Zz9" else "Aa1" + code[3:]
    assert client.get(f"/v1/t/{unknown}", follow_redirects=False).status_code == 404
    assert _last_audit(world, "tracking.click").detail == "unknown short link"
    stale_message = _sent(world, "sms")
    with world.source.begin() as conn:
        old = links.store_short_links(conn, [(stale_message, target)], platform, now=datetime(2020, 1, 1))
    expired = client.get(f"/v1/t/{old[(stale_message, target)]}", follow_redirects=False)
    assert expired.status_code == 400 and expired.json()["errors"] == [{"field": "/path/token", "message": "expired"}]
    assert _states(world, stale_message) == ["queued", "sent"]


def _forge(platform, claims: dict) -> str:  # type: ignore[no-untyped-def]
    body = links._b64(json.dumps(claims).encode())
    return f"{body}.{links._sign(body, platform)}"


def test_bad_tracked_links_are_refused_naming_the_problem(world, client, platform) -> None:
    message_id = _sent(world, "sms")
    token = links.make_token(message_id, "https://www.example-insurer.cn/a", platform)
    body, signature = token.split(".")
    other = links._b64(json.dumps({"m": message_id, "u": "https://evil.example/a", "e": 2**40}).encode())
    cases = {
        "tampered": f"{other}.{signature}",
        "expired": _forge(platform, {"m": message_id, "u": "https://www.example-insurer.cn/a", "e": 1}),
        "host_not_allowed": _forge(platform, {"m": message_id, "u": "https://evil.example/a", "e": 2**40}),
        "malformed": "abc",
    }
    for problem, bad in cases.items():
        answer = client.get(f"/v1/t/{bad}", follow_redirects=False)
        assert answer.status_code == 400, (problem, answer.text)
        assert answer.json()["errors"] == [{"field": "/path/token", "message": problem}]
        entry = _last_audit(world, "tracking.click")
        assert entry.status_code == 400 and entry.detail.startswith(problem)
    never_sent = links.make_token(str(uuid.uuid4()), "https://www.example-insurer.cn/a", platform)
    assert client.get(f"/v1/t/{never_sent}", follow_redirects=False).status_code == 404
    assert _states(world, message_id) == ["queued", "sent"]  # nothing recorded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sandbox_receipts_reach_this_api_end_to_end(world, app, client, tmp_path, monkeypatch) -> None:
    """The worker sends through the sandbox; the sandbox posts its signed receipt to this API on a port."""
    import uvicorn

    from mo.channels.sandbox import Sandbox, SandboxConfig, SandboxServer
    from mo.channels.worker import ChannelWorker

    api_port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        platform = PlatformSettings()
        config = SandboxConfig.from_settings(platform, webhook_url=f"http://127.0.0.1:{api_port}/v1/webhooks")
        sandbox = SandboxServer(Sandbox(tmp_path / "sandbox", config), _free_port()).start()
        try:
            for name in ("SMS", "WECHAT", "PUSH", "COUPON"):
                monkeypatch.setenv(f"MO_CHANNEL_{name}_BASE_URL", sandbox.url)
            with world.source.connect() as conn:
                from mo.oltp.models import Customer

                customers = Customer.__table__
                person = conn.execute(select(customers.c.id, customers.c.phone).limit(1)).first()
            from mo.channels.messages import new_send

            payload = {"sign_name": "中安保险", "template_code": "SMS_SERVICE_01",
                       "template_param": {"name": "张", "notice": "理赔已受理"}}  # fmt: skip
            ledger = ledger_send(world, person.id)
            message = new_send(ledger_id=ledger.id, touch_key=ledger.touch_key, customer_id=person.id, channel="sms",
                               payload=payload, purpose="service", message_id=ledger.message_id)  # fmt: skip
            assert ChannelWorker(PlatformSettings(), world.source).process(message) == "sent"
            deadline = time.monotonic() + 20
            while "delivered" not in _states(world, message["message_id"]):
                assert time.monotonic() < deadline, _states(world, message["message_id"])
                time.sleep(0.05)
        finally:
            sandbox.stop()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert _states(world, message["message_id"]) == ["queued", "sent", "delivered"]
