"""Errors as RFC 9457 problem details (``application/problem+json``), with field-level messages.

Every error the API returns has the same shape::

    {"type": "https://middle-office.local/problems/validation", "title": "Request is invalid",
     "status": 422, "detail": "2 fields are invalid", "instance": "/v1/claims",
     "request_id": "...", "errors": [{"field": "/body/amount_claimed", "message": "..."}]}

``field`` is a JSON pointer into the request (``/body/...``, ``/query/...``, ``/path/...``,
``/header/...``), so a client can put the message beside the input that caused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.context import request_id_var

PROBLEM_BASE = "https://middle-office.local/problems/"
PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Request is invalid",
    423: "Locked",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
    504: "Timed out",
}


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem; ``errors`` names each offending field."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] = []


class ApiError(Exception):
    """Raised by routes and services; rendered as problem+json by the handler below."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or TITLES.get(status, "error").lower().replace(" ", "-")
        self.errors = [FieldError(field=f, message=m) for f, m in errors]
        self.headers = headers or {}
        self.extra = extra or {}


def pointer(loc: Sequence[Any]) -> str:
    """FastAPI's error location as a JSON pointer: ("body", "items", 0, "x") -> /body/items/0/x."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts)


def problem_response(request: Request, error: ApiError) -> JSONResponse:
    body = Problem(
        type=PROBLEM_BASE + error.kind,
        title=TITLES.get(error.status, "Error"),
        status=error.status,
        detail=error.detail,
        instance=request.url.path,
        request_id=request_id_var.get(),
        errors=error.errors,
    ).model_dump()
    body.update(error.extra)
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers)


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        return "unknown field: not part of this request"
    if error.get("type") == "missing":
        return "required"
    return message


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        request.state.problem = exc
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [(pointer(e.get("loc", ())), _validation_message(e)) for e in exc.errors()]
        count = len(errors)
        error = ApiError(422, f"{count} field{'s' if count != 1 else ''} invalid", kind="validation", errors=errors)
        request.state.problem = error
        return problem_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
        request.state.problem = error
        return problem_response(request, error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can answer."""
    return {
        status: {
            "model": Problem,
            "description": TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
