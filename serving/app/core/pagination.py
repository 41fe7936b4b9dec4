"""Cursor pagination for every list: ``?limit=&cursor=``, answered with ``items`` and ``next_cursor``.

A cursor is the opaque, URL-safe encoding of the last item's sort key; the next page starts strictly after
it, so rows inserted meanwhile never shift a page (unlike offsets). A cursor that does not decode is a 422
naming ``/query/cursor``.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.core.errors import ApiError

T = TypeVar("T")
MAX_CURSOR_LENGTH = 512


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":"), default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != arity:
            raise ValueError
        return key
    except ValueError:
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        ) from None


Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (1-100).")]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page; absent for the first."),
]
