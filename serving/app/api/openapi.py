"""The OpenAPI document says what every route really answers, without each route repeating it.

Added to each operation when it lacks them: the problems every authorised route can answer (401, 403,
429; found from its ``authorized(...)`` dependency), those of every route with a body (400 unreadable, 413
over the limit) or with input at all (422, as the problem+json the handlers send, not FastAPI's default
``HTTPValidationError`` shape), and the security requirement, so /docs offers "Authorize" (a staff login or
a pasted bearer token) and schemathesis holds every answer to the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import Authorize
from app.core.errors import PROBLEM_JSON, TITLES, Problem
from app.core.roles import Scope

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SECURITY_SCHEMES = {
    "staff": {
        "type": "oauth2",
        "description": "Staff login (password grant) at the token endpoint.",
        "flows": {"password": {"tokenUrl": "/v1/auth/token", "scopes": {str(s): s.name.lower() for s in Scope}}},
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from /v1/auth/token.",
    },
}


def _authorizations(dependant: Dependant) -> Iterator[Authorize]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Authorize):
            yield dependency.call
        yield from _authorizations(dependency)


def _problem(status: int) -> dict[str, Any]:
    return {"description": TITLES.get(status, "Error"), "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def _complete(operation: dict[str, Any], authorize: Authorize | None) -> None:
    responses = operation.setdefault("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if default_422.get("$ref", "").endswith("/HTTPValidationError"):
        responses["422"] = _problem(422)
    needed = []
    if operation.get("requestBody"):
        needed += [400, 413, 422]
    if operation.get("parameters"):
        needed.append(422)
    if authorize is not None:
        needed += [401, 403, 429]
        scopes = [str(authorize.scope)] if authorize.scope else []
        operation.setdefault("security", [{"staff": scopes}, {"bearer": []}])
    for status in needed:
        responses.setdefault(str(status), _problem(status))


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        guards: dict[tuple[str, str], Authorize | None] = {}
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, APIRoute) and context.path:
                found = next(_authorizations(route.dependant), None)
                for method in context.methods or ():
                    guards[(context.path, method.lower())] = found
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if isinstance(operation, dict) and "responses" in operation:
                    _complete(operation, guards.get((path, method)))
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        schemas = components.setdefault("schemas", {})
        if "Problem" not in schemas:  # no route declared one itself
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem.pop("$defs", {}))
            schemas["Problem"] = problem
        if not any("HTTPValidationError" in str(op) for ops in schema["paths"].values() for op in ops.values()):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
