"""The as-of date of a published refresh, looked up once per refresh id and kept in memory."""

from __future__ import annotations

from datetime import date
from threading import Lock

from sqlalchemy import text

from mo.serving_store.store import SqlServingStore

_as_of: dict[str, date | None] = {}
_lock = Lock()


def refresh_as_of(store: SqlServingStore, refresh_id: str) -> date | None:
    with _lock:
        if refresh_id in _as_of:
            return _as_of[refresh_id]
    with store.engine.connect() as conn:
        value = conn.execute(
            text(f"SELECT as_of_date FROM {store.qualified('refreshes')} WHERE refresh_id = :r"), {"r": refresh_id}
        ).scalar()
    as_of = date.fromisoformat(str(value)[:10]) if value is not None else None
    with _lock:
        if len(_as_of) > 64:
            _as_of.clear()
        _as_of[refresh_id] = as_of
    return as_of
