"""The API's conventions on real stores: tokens, lockout, problem details, request ids, limits, audit."""

from __future__ import annotations

import uuid

import pytest
from conftest import PASSWORD, Account, ApiWorld
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app.core.roles import Role
from app.services.accounts import create_client, create_user
from mo.oltp.api_tables import AuditEntry

AUDIT = AuditEntry.__table__


def audit_rows(world: ApiWorld, **where) -> list:  # type: ignore[no-untyped-def]
    query = select(AUDIT).order_by(AUDIT.c.id)
    for name, value in where.items():
        query = query.where(AUDIT.c[name] == value)
    with world.source.connect() as conn:
        return conn.execute(query).all()


def test_openapi_is_3_1_with_an_example_for_every_json_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    missing = []
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if not content or status.startswith(("4", "5")) or "$ref" not in content.get("schema", {}):
                    continue
                name = content["schema"]["$ref"].rsplit("/", 1)[-1]
                schema = schemas[name]
                if not (schema.get("examples") or content.get("examples") or content.get("example")):
                    if name.startswith("Page_"):
                        item = schema["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[-1]
                        if schemas[item].get("examples"):
                            continue
                    missing.append(f"{method.upper()} {path} {status} {name}")
    assert not missing, missing


def test_client_credentials_give_a_token_with_the_roles_scopes(world: ApiWorld, client: TestClient) -> None:
    with world.source.begin() as conn:
        secret = create_client(conn, client_id=f"app-{uuid.uuid4().hex[:6]}", role="app")
        client_id = conn.execute(text("select client_id from api_clients order by id desc")).scalar()
    answer = client.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 3600
    assert "customers:pii" not in body["scope"].split() and "claims:submit" in body["scope"].split()
    wrong = client.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x" * 20}
    )
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["error"] == "invalid_client"


def test_repeated_wrong_passwords_lock_the_account_even_for_the_right_one(world: ApiWorld, client: TestClient) -> None:
    username = f"locked-{uuid.uuid4().hex[:6]}"
    with world.source.begin() as conn:
        create_user(conn, username=username, password=PASSWORD, role="service_agent")
    for _ in range(world.settings.login_max_failures):
        wrong = client.post(
            "/v1/auth/token", data={"grant_type": "password", "username": username, "password": "nope" * 4}
        )
        assert wrong.status_code == 401
    locked = client.post("/v1/auth/token", data={"grant_type": "password", "username": username, "password": PASSWORD})
    assert locked.status_code == 423
    assert int(locked.headers["retry-after"]) > 0
    attempts = audit_rows(world, action="auth.login")
    mine = [r.status_code for r in attempts if (r.detail or "").startswith(f"user:{username}")]
    assert mine == [401] * world.settings.login_max_failures + [423]  # each attempt once, none twice
    assert PASSWORD not in str([tuple(r) for r in attempts])


def test_unknown_user_and_wrong_password_answer_alike(client: TestClient, accounts: dict[str, Account]) -> None:
    unknown = client.post(
        "/v1/auth/token", data={"grant_type": "password", "username": "nobody-here", "password": "x" * 12}
    )
    wrong = client.post(
        "/v1/auth/token", data={"grant_type": "password", "username": accounts["admin"].username, "password": "x" * 12}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer " + "a" * 5000],
)
def test_a_missing_or_malformed_token_is_401_with_a_reason(client: TestClient, header: str) -> None:
    answer = client.get("/v1/customers/1", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    problem = answer.json()
    assert problem["status"] == 401 and problem["detail"] and problem["request_id"] == answer.headers["x-request-id"]


def test_a_token_signed_with_another_key_or_expired_is_refused(world: ApiWorld, client: TestClient) -> None:
    from app.core.security import issue_token

    forged, _ = issue_token(
        world.settings.model_copy(update={"secret_key": "another-key-" * 4}),
        subject="user:x",
        role="admin",
        org_id=None,
        agent_id=None,
    )
    assert client.get("/v1/audit", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    import jwt

    expired = jwt.encode(
        {
            "iss": "middle-office",
            "aud": "middle-office",
            "sub": "user:x",
            "role": "admin",
            "scope": "audit:read",
            "iat": 1,
            "exp": 2,
        },
        world.settings.secret_key,
        algorithm="HS256",
    )
    answer = client.get("/v1/audit", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


def test_a_token_cannot_claim_more_than_its_role(world: ApiWorld, client: TestClient) -> None:
    import time

    import jwt

    now = int(time.time())
    greedy = jwt.encode(
        {
            "iss": "middle-office",
            "aud": "middle-office",
            "sub": "client:x",
            "role": "app",
            "scope": "audit:read customers:pii",
            "iat": now,
            "exp": now + 60,
        },
        world.settings.secret_key,
        algorithm="HS256",
    )
    assert client.get("/v1/audit", headers={"Authorization": f"Bearer {greedy}"}).status_code == 403


def test_a_callers_request_id_is_kept_and_a_hostile_one_replaced(client: TestClient) -> None:
    kept = client.get("/health", headers={"X-Request-ID": "req-12345678"})
    assert kept.headers["x-request-id"] == "req-12345678"
    replaced = client.get("/health", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert replaced.headers["x-request-id"] != "<script>alert(1)</script>"
    uuid.UUID(replaced.headers["x-request-id"])


def test_validation_errors_name_each_field_as_a_json_pointer(client: TestClient, accounts: dict[str, Account]) -> None:
    answer = client.get("/v1/customers/0", headers=accounts["service_agent"].headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["/path/customer_id"]


def test_an_oversized_body_is_413_before_the_route_runs(client: TestClient) -> None:
    answer = client.post(
        "/v1/auth/token", content=b"x" * (70 * 1024), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 413
    assert answer.json()["title"] == "Request too large"


def test_the_audit_log_refuses_update_and_delete_in_the_database(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    client.get("/v1/audit", headers=accounts["marketer"].headers)  # refused: leaves an entry
    assert audit_rows(world)
    for statement in ("UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with world.source.begin() as conn:
                conn.execute(text(statement))


def test_refused_attempts_are_audited_with_who_and_what(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    marketer = accounts["marketer"]
    answer = client.get("/v1/audit", headers={**marketer.headers, "X-Request-ID": "refused-audit-1"})
    assert answer.status_code == 403
    (row,) = audit_rows(world, request_id="refused-audit-1")
    assert (row.actor, row.role, row.action, row.outcome, row.status_code) == (
        f"user:{marketer.username}",
        "marketer",
        "audit.read",
        "denied",
        403,
    )


def test_admins_page_through_the_audit_log_newest_first(client: TestClient, accounts: dict[str, Account]) -> None:
    admin = accounts["admin"]
    seen: list[int] = []
    cursor = None
    for _ in range(50):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/audit", params=params, headers=admin.headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) and len(seen) >= 2
    bad = client.get("/v1/audit", params={"cursor": "!!"}, headers=admin.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "/query/cursor"


def test_the_rate_limit_answers_429_with_retry_after(world: ApiWorld, client: TestClient) -> None:
    with world.source.begin() as conn:
        client_id = f"tiny-{uuid.uuid4().hex[:6]}"
        secret = create_client(conn, client_id=client_id, role="app", rate_limit_per_minute=3)
    token = client.post(
        "/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    ).json()["access_token"]
    statuses = [
        client.get("/v1/customers/1", headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(5)
    ]
    assert statuses[:3] == [200, 200, 200] or 429 in statuses  # a minute boundary may reset the window once
    assert statuses.count(429) >= 1
    answer = client.get("/v1/customers/1", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code == 429:
        assert 1 <= int(answer.headers["retry-after"]) <= 61


def test_every_role_exists_as_an_account(accounts: dict[str, Account]) -> None:
    assert set(accounts) == {r.value for r in Role}


def test_metrics_count_requests_by_route_and_show_the_outbox(client: TestClient) -> None:
    client.get("/health")
    text = client.get("/metrics").text
    assert 'mo_api_requests_total{method="GET",route="/health",status="200"}' in text
    assert "mo_outbox_pending_events " in text and "mo_outbox_lag_seconds " in text
