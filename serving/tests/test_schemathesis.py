"""schemathesis against the app's own OpenAPI: every operation, as each role and without a token.

Generated requests (valid ones from the schema and its examples, and invalid ones: wrong types, missing
and extra fields, over-long strings, odd characters) must never get a 5xx, and every answer must be one the
schema declares: its status code, content type, headers and body. A route added later is covered as soon
as it is in the schema. Examples per operation are kept small so the suite stays within minutes; the
seed is fixed (deterministic), so a failure reproduces.
"""

from __future__ import annotations

import pytest
import schemathesis
from conftest import Account
from hypothesis import HealthCheck, settings
from route_roles import EXPECTED
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.roles import Role

MAX_EXAMPLES = 10


def no_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    """Any 5xx fails, except readiness saying a dependency is down: that 503 is its declared answer (the
    tests' world has no broker running) and names the dependency."""
    if case.operation.label == "GET /ready" and response.status_code == 503:
        assert response.json()["status"] == "unavailable", response.text
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class SessionApp:
    """The ASGI app schemathesis calls: forwards to the session's app once the test has set it."""

    target = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        assert self.target is not None, "the session's app is not set"
        await self.target(scope, receive, send)


SESSION_APP = SessionApp()


def _load_schema():  # type: ignore[no-untyped-def]
    """The app's OpenAPI, read at collection so that each operation is its own test; the calls go to the
    session's app (see the test), whose lifespan holds the world's stores."""
    from app.core.config import Settings
    from app.main import create_app

    loaded = schemathesis.openapi.from_dict(create_app(Settings(environment="development")).openapi())
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, deterministic=True
    )
    loaded.app = SESSION_APP
    return loaded


schema = _load_schema()


@pytest.fixture(params=[*(r.value for r in Role), "anonymous"])
def caller(request: pytest.FixtureRequest, accounts: dict[str, Account]) -> tuple[str, dict[str, str]]:
    return request.param, {} if request.param == "anonymous" else accounts[request.param].headers


# (operation, role) pairs the matrix refuses, already checked once: their every answer is the same 401/403
# (test_route_roles holds that), so one schema check suffices and the examples go to the allowed roles.
REFUSALS_CHECKED: set[tuple[str, str]] = set()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_every_answer_matches_the_schema(case, app, client, caller) -> None:  # type: ignore[no-untyped-def]
    SESSION_APP.target = app  # the session's app: `client` keeps its stores open (its lifespan)
    role, caller_headers = caller
    label = case.operation.label
    if label in EXPECTED and role not in EXPECTED[label]:  # not in EXPECTED: public (probes, token)
        if (label, role) in REFUSALS_CHECKED:
            return
        REFUSALS_CHECKED.add((label, role))
    headers = dict(case.headers or {})
    headers.update(caller_headers)
    case.call_and_validate(headers=headers, checks=CHECKS)
