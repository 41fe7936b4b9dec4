"""The whole route x role matrix, held against the running app.

Every route the app declares (all methods, except the public probes, the docs and the token endpoint) must
have a row in route_roles.EXPECTED. Each route is then called once per role, and once without a token,
with a harmless request (ids that do not exist, an empty body): an allowed role never gets 401 or 403 (it
gets past authorisation: 404 or 422 for the made-up input), any other role gets exactly 403, and no token
exactly 401. Authorisation is decided before the input is looked at, so a refused role learns nothing
about the ids it tried.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any, get_args, get_origin

import pytest
from conftest import Account
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from route_roles import EXPECTED
from starlette.routing import Route

from app.core.roles import Role

# Public by design: probes, metrics, the interactive docs and the token endpoint itself.
PUBLIC_PATHS = {"/openapi.json", "/redoc", "/metrics", "/health", "/ready", "/v1/auth/token"}
# Public with a signature instead of a token: provider webhooks and tracked links (tests/test_webhooks.py).
PUBLIC_PREFIXES = ("/docs", "/v1/webhooks/", "/v1/t/")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NO_SUCH_ID = 2**62 + 12345  # within every id bound, never generated


def route_keys(app) -> dict[str, tuple[str, Route]]:  # type: ignore[no-untyped-def]
    """ "METHOD /path" -> (path, route), for every route of the app, included routers' routes with their prefix."""
    keys: dict[str, tuple[str, Route]] = {}
    # FastAPI keeps included routers as branches of app.routes; this walks them as its OpenAPI does.
    for context in iter_route_contexts(app.routes):
        path, methods = context.path, context.methods
        if not methods or path is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            keys[f"{method} {path}"] = (path, context.original_route)
    return keys


def _placeholder(annotation: Any) -> str:
    """A value of the path parameter's type that names nothing in the world."""
    if get_origin(annotation) is not None:  # Annotated, Optional, Literal...
        args = [a for a in get_args(annotation) if a is not type(None)]
        if args and not isinstance(args[0], str):
            return _placeholder(args[0])
        return str(args[0]) if args else "no-such-thing"
    if annotation is int:
        return str(NO_SUCH_ID)
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is date:
        return "1901-01-01"
    if annotation is datetime:
        return "1901-01-01T00:00:00Z"
    return "no-such-thing"


def harmless_url(path: str, route: Route) -> str:
    if isinstance(route, APIRoute):
        for param in route.dependant.path_params:
            path = path.replace("{" + param.name + "}", _placeholder(param.field_info.annotation))
    # anything left: a parameter without a declared type
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


def call(client: TestClient, key: str, target: tuple[str, Route], headers: dict[str, str]):  # type: ignore[no-untyped-def]
    method = key.split(" ", 1)[0]
    headers = dict(headers)
    kwargs: dict[str, Any] = {}
    if method in WRITE_METHODS:
        headers["Idempotency-Key"] = str(uuid.uuid4())
        kwargs["json"] = {}
    return client.request(method, harmless_url(*target), headers=headers, **kwargs)


def test_every_route_has_a_row_and_every_row_a_route(app) -> None:  # type: ignore[no-untyped-def]
    declared = set(route_keys(app))
    assert declared, "the app declares no protected route: did the route enumeration break?"
    missing = sorted(declared - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - declared)
    assert not missing, f"routes without a row in tests/route_roles.py EXPECTED: {missing}"
    assert not stale, f"rows in tests/route_roles.py EXPECTED for routes the app does not have: {stale}"


def test_rows_name_real_roles() -> None:
    roles = {r.value for r in Role}
    for key, allowed in EXPECTED.items():
        assert allowed, f"{key}: no role may call it; remove the route or name its roles"
        assert set(allowed) <= roles, f"{key}: unknown roles {sorted(set(allowed) - roles)}"


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_route_answers_the_role_as_the_matrix_says(
    app, client: TestClient, accounts: dict[str, Account], role: str
) -> None:  # type: ignore[no-untyped-def]
    wrong = []
    for key, target in sorted(route_keys(app).items()):
        allowed = role in EXPECTED.get(key, frozenset())
        answer = call(client, key, target, accounts[role].headers)
        if allowed and answer.status_code in (401, 403):
            wrong.append(f"{key}: allowed, got {answer.status_code} {answer.text[:200]}")
        elif not allowed and answer.status_code != 403:
            wrong.append(f"{key}: not allowed, got {answer.status_code} instead of 403 {answer.text[:200]}")
        elif answer.status_code >= 500:
            wrong.append(f"{key}: {answer.status_code} {answer.text[:200]}")
    assert not wrong, f"role {role}:\n" + "\n".join(wrong)


def test_each_route_refuses_a_request_without_a_token(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    wrong = []
    for key, target in sorted(route_keys(app).items()):
        answer = call(client, key, target, {})
        if answer.status_code != 401:
            wrong.append(f"{key}: got {answer.status_code} instead of 401")
        elif answer.headers.get("content-type") != "application/problem+json":
            wrong.append(f"{key}: 401 is not problem+json")
    assert not wrong, "\n".join(wrong)


def test_public_routes_need_no_token(client: TestClient) -> None:
    for path in ("/health", "/openapi.json", "/metrics", "/docs"):
        assert client.get(path).status_code == 200, path
