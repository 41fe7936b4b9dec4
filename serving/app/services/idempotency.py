"""``Idempotency-Key`` on every POST: a retry returns the first answer and writes nothing again.

The key, the request's hash and the answer are stored in the same transaction as the write. Two requests
with one key at once: the second's insert waits on the first's uncommitted key (PostgreSQL, MariaDB) or
on the single writer (SQLite), then finds the key taken, rolls its own writes back and answers with the
first's stored answer. A key reused with a different request is refused (422): it names a different
operation, and answering it with the first one's result would be a lie.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from app.api.deps import Caller
from app.core.errors import ApiError
from app.core.timestamps import as_utc
from app.services.audit import utcnow
from mo.oltp.api_tables import IdempotencyKey

KEYS = IdempotencyKey.__table__
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key(
    idempotency_key: str = Header(
        ...,
        alias="Idempotency-Key",
        description="A unique key per operation (8-128 of A-Z a-z 0-9 . _ : -), e.g. a UUID; a retry with the "
        "same key returns the first answer and writes nothing again.",
        examples=["6f1c2a9e-1d4b-4c3e-9a55-0c1f7b2d8e41"],
    ),
) -> str:
    if not KEY_PATTERN.match(idempotency_key):
        raise ApiError(
            422,
            "Idempotency-Key must be 8-128 characters of A-Z a-z 0-9 . _ : -",
            kind="validation",
            errors=[("/header/Idempotency-Key", "8-128 characters of A-Z a-z 0-9 . _ : -")],
        )
    return idempotency_key


def request_hash(caller: Caller, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(f"{caller.resource}\n{canonical}".encode()).hexdigest()


def _stored(conn: Connection, caller: Caller, key: str) -> Any:
    return conn.execute(
        select(KEYS.c.request_hash, KEYS.c.status_code, KEYS.c.response_body).where(
            KEYS.c.actor == caller.subject, KEYS.c.key == key
        )
    ).first()


def _replay(row: Any, digest: str) -> JSONResponse:
    if row.request_hash != digest:
        raise ApiError(
            422,
            "this Idempotency-Key was used for a different request; use a new key for a new operation",
            kind="idempotency-key-reused",
            errors=[("/header/Idempotency-Key", "already used for a different request")],
        )
    return JSONResponse(json.loads(row.response_body), status_code=row.status_code, headers={REPLAYED_HEADER: "true"})


def run_once(
    engine: Engine,
    caller: Caller,
    key: str,
    body: Any,
    write: Callable[[Connection], tuple[int, dict[str, Any]]],
    *,
    secret_fields: tuple[str, ...] = (),
) -> JSONResponse:
    """Run ``write`` (which returns status and JSON body) at most once per (caller, key).

    ``secret_fields``: top-level fields of the answer shown once and never stored (a generated password or
    client secret): the stored answer, which a retry replays, has them as null."""
    digest = request_hash(caller, body)
    with engine.connect() as conn:
        row = _stored(conn, caller, key)
    if row is not None:
        return _replay(row, digest)
    try:
        with engine.begin() as conn:
            status, answer = write(conn)
            conn.execute(
                insert(KEYS).values(
                    actor=caller.subject,
                    key=key,
                    request_hash=digest,
                    status_code=status,
                    response_body=json.dumps(
                        {**answer, **dict.fromkeys(secret_fields)} if secret_fields else answer,
                        default=_json_value,
                        ensure_ascii=False,
                    ),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        # Another request with this key committed first; ours is rolled back whole.
        with engine.connect() as conn:
            row = _stored(conn, caller, key)
        if row is None:
            raise
        return _replay(row, digest)
    # the first answer is the very text a retry replays (but for the secret fields)
    return JSONResponse(json.loads(json.dumps(answer, default=_json_value, ensure_ascii=False)), status_code=status)


def _json_value(value: Any) -> Any:
    """A write's answer may carry stored timestamps (naive UTC): RFC 3339 in UTC, as the schema promises."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
