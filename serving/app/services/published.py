"""Reads of the published serving store, each in one snapshot together with the refresh it belongs to.

Every answer built from the store names its refresh id and as-of date, read in the same transaction as the
rows (PostgreSQL: REPEATABLE READ; SQLite: one read transaction), so a publish that swaps the views between
two statements can never mix two refreshes in one answer. A store that does not answer is a 503 naming it;
a store with nothing published is a 503 too (there is no current data to serve, which is not "not found").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.core.errors import ApiError
from mo.serving_store.store import RefreshInfo, SqlServingStore


@dataclass(frozen=True)
class Snapshot:
    conn: Connection
    store: SqlServingStore
    refresh: RefreshInfo

    @property
    def refresh_id(self) -> str:
        return self.refresh.refresh_id

    @property
    def as_of_date(self) -> date:
        return self.refresh.as_of_date

    def view(self, table: str) -> str:
        return self.store.qualified(table)


@contextlib.contextmanager
def snapshot(store: SqlServingStore) -> Iterator[Snapshot]:
    """The current refresh and a connection that sees exactly its tables."""
    try:
        with contextlib.ExitStack() as stack:
            conn = stack.enter_context(store.engine.connect())
            if store.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            stack.enter_context(conn.begin())
            refresh = store.current_refresh(conn)
            if refresh is None:
                raise ApiError(503, "the serving store has no published refresh yet: nothing to serve")
            yield Snapshot(conn, store, refresh)
    except ApiError:
        raise
    except (DBAPIError, SQLAlchemyError) as exc:
        raise ApiError(503, f"serving store unavailable: {type(exc).__name__}") from None


@contextlib.contextmanager
def source_reads(engine) -> Iterator[Connection]:  # type: ignore[no-untyped-def]
    """A read connection to the core systems; a database that does not answer is a 503 naming it."""
    try:
        with engine.connect() as conn:
            yield conn
    except ApiError:
        raise
    except (DBAPIError, SQLAlchemyError) as exc:
        raise ApiError(503, f"core systems database unavailable: {type(exc).__name__}") from None
