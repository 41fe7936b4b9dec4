"""Accounts for admins: users and clients created with secrets shown once, disabled, unlocked, rotated; every
change audited; a retry never reveals a secret again."""

from __future__ import annotations

import uuid

from conftest import Account, ApiWorld, idem
from fastapi.testclient import TestClient
from sqlalchemy import select

from mo.oltp.api_tables import AuditEntry, IdempotencyKey

AUDIT = AuditEntry.__table__


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _all(client: TestClient, path: str, account: Account) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, params=params, headers=account.headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post(
        "/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    ).status_code


def test_a_new_user_logs_in_with_the_password_shown_once_and_a_retry_does_not_show_it(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"]
    username = _name("marketer")
    headers = {**admin.headers, **idem()}
    body = {"username": username, "display_name": "李明", "role": "marketer", "org_id": 2}
    first = client.post("/v1/accounts/users", json=body, headers=headers)
    assert first.status_code == 201, first.text
    password = first.json()["initial_password"]
    assert password and len(password) >= 12 and first.json()["role"] == "marketer"
    again = client.post("/v1/accounts/users", json=body, headers=headers)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["initial_password"] is None and again.json()["username"] == username
    with world.source.connect() as conn:
        stored = conn.execute(select(IdempotencyKey.__table__.c.response_body)).scalars().all()
        entries = conn.execute(
            select(AUDIT.c.action, AUDIT.c.actor).where(AUDIT.c.detail.like(f"user:{username}%"))
        ).all()
    assert not any(password in text for text in stored), "the password is never stored with the answer"
    assert entries == [("accounts.create_user", f"user:{admin.username}")]
    assert _login(client, username, password) == 200
    duplicate = client.post("/v1/accounts/users", json=body, headers={**admin.headers, **idem()})
    assert duplicate.status_code == 409 and username in duplicate.json()["detail"]


def test_disable_unlock_and_reset_password(world: ApiWorld, client: TestClient, accounts: dict[str, Account]) -> None:
    admin = accounts["admin"]
    username = _name("approver")
    created = client.post(
        "/v1/accounts/users", json={"username": username, "role": "approver"}, headers={**admin.headers, **idem()}
    )
    password = created.json()["initial_password"]
    reason = {"reason": "测试"}

    def act(action: str):  # type: ignore[no-untyped-def]
        return client.post(f"/v1/accounts/users/{username}/{action}", json=reason, headers={**admin.headers, **idem()})

    assert act("disable").json()["disabled"] is True
    assert _login(client, username, password) == 401
    assert act("enable").json()["disabled"] is False
    for _ in range(world.settings.login_max_failures):
        _login(client, username, "wrong password, many times")
    assert _login(client, username, password) == 423
    unlocked = act("unlock")
    assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
    assert _login(client, username, password) == 200
    reset = act("reset-password")
    new_password = reset.json()["initial_password"]
    assert new_password and new_password != password
    assert _login(client, username, password) == 401 and _login(client, username, new_password) == 200
    own = client.post(f"/v1/accounts/users/{admin.username}/disable", json=reason, headers={**admin.headers, **idem()})
    assert own.status_code == 409 and "own account" in own.json()["detail"]
    missing = client.post("/v1/accounts/users/nobody-here/unlock", json=reason, headers={**admin.headers, **idem()})
    assert missing.status_code == 404


def test_clients_get_a_secret_once_and_rotation_stops_the_old_one(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    admin = accounts["admin"]
    client_id = _name("agent-app")
    created = client.post(
        "/v1/accounts/clients",
        json={"client_id": client_id, "role": "app", "agent_id": 31, "rate_limit_per_minute": 600},
        headers={**admin.headers, **idem()},
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]

    def token(value: str) -> int:
        return client.post(
            "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": value}
        ).status_code

    assert token(secret) == 200
    path = f"/v1/accounts/clients/{client_id}/rotate-secret"
    rotated = client.post(path, json={"reason": "leaked"}, headers={**admin.headers, **idem()})
    new_secret = rotated.json()["client_secret"]
    assert token(secret) == 401 and token(new_secret) == 200
    client.post(f"/v1/accounts/clients/{client_id}/disable", json={"reason": "x"}, headers={**admin.headers, **idem()})
    assert token(new_secret) == 401
    listed = _all(client, "/v1/accounts/clients", admin)
    assert any(c["client_id"] == client_id and c["disabled"] for c in listed)
    assert all("secret" not in key for c in listed for key in c)


def test_bad_input_names_the_field_and_creates_nothing(client: TestClient, accounts: dict[str, Account]) -> None:
    admin = accounts["admin"]
    cases = [
        ({"username": "x", "role": "marketer"}, "/body/username"),
        ({"username": "ok-name-1", "role": "superuser"}, "/body/role"),
        ({"username": "ok-name-2", "role": "app"}, "/body/role"),  # app is a client role, not a staff one
        ({"username": "ok-name-3", "role": "analyst", "display_name": "<script>"}, "/body/display_name"),
        ({"username": "ok-name-4", "role": "analyst", "password": "chosen"}, "/body/password"),
    ]
    for body, pointer in cases:
        answer = client.post("/v1/accounts/users", json=body, headers={**admin.headers, **idem()})
        assert answer.status_code == 422, (body, answer.text)
        assert pointer in [e["field"] for e in answer.json()["errors"]], (body, answer.json())
    listed = _all(client, "/v1/accounts/users", admin)
    assert not any(u["username"].startswith("ok-name-") for u in listed)
