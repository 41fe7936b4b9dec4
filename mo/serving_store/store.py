"""The serving database: PostgreSQL (schema ``serving``) or, on the embedded default, a SQLite file.

Atomic publish by a view swap. Every refresh is loaded into its own physical tables
``<table>__r<refresh_id>`` (bulk load first, then keys, indexes and statistics, all in one load
transaction), and readers query the views ``<table>`` in the serving schema. Publishing is one short
transaction that re-points every view at the new refresh's tables and flips the audit rows: both
PostgreSQL and SQLite have transactional DDL, so a reader sees either every view on the old refresh or
every view on the new one. A crash before that transaction leaves the views on the old, complete
refresh (the new tables are left unreferenced and dropped by the next publish); the refresh before the
current one is kept, so a reader that resolved the current refresh just before a swap can still finish.

Why not the alternatives: renaming tables into place takes the same locks but makes the swap a
multi-step dance per table and loses the old refresh at once; TRUNCATE + INSERT in one transaction
blocks readers for the whole load (PostgreSQL) or holds SQLite's write lock for minutes; per-row
upserts show readers a mix while they run.

Bulk loads: PostgreSQL ``COPY ... FROM STDIN (FORMAT csv)`` fed from Arrow record batches (CSV written
by Arrow's C++ writer), SQLite ``executemany`` per batch. The store never holds more than one batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import io
import json
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from mo.errors import ConfigError, MoError
from mo.serving_store.contract import (
    IDENTIFIER,
    Dialect,
    ServingContract,
    ServingTable,
    create_table_sql,
    load_serving_contract,
)

log = logging.getLogger(__name__)

REFRESH_ID = re.compile(r"^[0-9]{20}[0-9a-f]{6}$")
PHYSICAL_SUFFIX = "__r"
# Statuses of the audit rows in <schema>.refreshes.
LOADING, CURRENT, SUPERSEDED, FAILED, DROPPED = "loading", "current", "superseded", "failed", "dropped"


class ServingStoreError(MoError):
    """The serving store cannot be written or read as asked."""


class PublishInProgress(ServingStoreError):
    """Another publish holds the store's publish lock."""


class NothingPublished(ServingStoreError):
    """The store has no current refresh yet."""


def new_refresh_id(now: datetime | None = None) -> str:
    """Sortable by time (UTC microsecond) with a random tail: publishes follow each other by more than a
    microsecond, so a later refresh always sorts after an earlier one (with whole seconds, two publishes in
    the same second were ordered by their random tails)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d%H%M%S%f}{secrets.token_hex(3)}"


def default_publisher() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RefreshInfo:
    refresh_id: str
    as_of_date: date
    status: str
    published_at: datetime | None
    row_counts: dict[str, int | None] = field(default_factory=dict)


def _physical(table: str, refresh_id: str) -> str:
    return f"{table}{PHYSICAL_SUFFIX}{refresh_id}"


def _parse_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _parse_ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


class SqlServingStore:
    """One serving database (PostgreSQL schema or SQLite file) described by schemas/serving/serving.yaml."""

    def __init__(self, url: str, *, schema: str | None = None, contract: ServingContract | None = None) -> None:
        self.contract = contract or load_serving_contract()
        self.url = url
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            raise ConfigError(f"serving database URL scheme {backend!r} is not supported; use postgresql or sqlite")
        self.dialect: Dialect = "postgresql" if backend == "postgresql" else "sqlite"
        self.schema = schema or self.contract.schema
        if not IDENTIFIER.match(self.schema):
            raise ConfigError(f"serving schema name {self.schema!r} is not a lowercase SQL identifier")
        if self.dialect == "sqlite":
            self.sqlite_path = Path(parsed.database or "")
            if not parsed.database or parsed.database == ":memory:":
                raise ConfigError("the SQLite serving store needs a file (sqlite:///path/serving.db)")
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
        else:
            # Naive timestamps (rule parameters) mean UTC, whatever the server's default time zone.
            self.engine = create_engine(url, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"})

    # -- names -------------------------------------------------------------------------------------
    def qualified(self, name: str) -> str:
        """The name readers use: ``serving.customer_profile`` (SQLite: one file, no schema prefix)."""
        return f"{self.schema}.{name}" if self.dialect == "postgresql" else name

    def physical(self, table: str, refresh_id: str) -> str:
        return self.qualified(_physical(table, refresh_id))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """The schema and the audit table (idempotent)."""
        refreshes = self.contract.refreshes
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {self.schema}"))
            ddl = create_table_sql(refreshes, self.qualified("refreshes"), self.dialect, with_primary_key=True)
            conn.execute(text(ddl.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)))

    @contextlib.contextmanager
    def publish_lock(self) -> Iterator[None]:
        """One publisher at a time per store: the cleanup of one must not drop the tables another is loading."""
        if self.dialect == "sqlite":
            lock_path = self.sqlite_path.with_name(self.sqlite_path.name + ".publish.lock")
            with open(lock_path, "w") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise PublishInProgress(f"another publish holds {lock_path}") from None
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.engine.connect() as conn:
            key = f"mo.serving_store:{self.schema}"
            got = conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key}).scalar()
            conn.commit()
            if not got:
                raise PublishInProgress(f"another publish holds the advisory lock of schema {self.schema}")
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                conn.commit()

    # -- audit -------------------------------------------------------------------------------------
    def begin_refresh(self, refresh_id: str, *, as_of: date, published_by: str, source: dict[str, Any]) -> None:
        if not REFRESH_ID.match(refresh_id):
            raise ServingStoreError(f"refresh id {refresh_id!r} is not of the form YYYYMMDDHHMMSS + 6 hex digits")
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {self.qualified('refreshes')} "
                    "(refresh_id, as_of_date, status, started_at, published_by, source) "
                    "VALUES (:id, :as_of, :status, :started, :by, :source)"
                ),
                {
                    "id": refresh_id,
                    "as_of": as_of if self.dialect == "postgresql" else as_of.isoformat(),
                    "status": LOADING,
                    "started": self._ts(datetime.now(UTC)),
                    "by": published_by,
                    "source": json.dumps(source, sort_keys=True, default=str),
                },
            )

    def fail_refresh(self, refresh_id: str, error: BaseException) -> None:
        """Best effort: the failure is recorded when the database still answers."""
        message = f"{type(error).__name__}: {error}"[:2000]
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text(
                        f"UPDATE {self.qualified('refreshes')} SET status = :failed, error = :error "
                        "WHERE refresh_id = :id AND status = :loading"
                    ),
                    {"failed": FAILED, "error": message, "id": refresh_id, "loading": LOADING},
                )
        except DBAPIError:
            log.warning("could not record the failure of refresh %s", refresh_id, exc_info=True)

    def current_refresh(self, conn: Connection | None = None) -> RefreshInfo | None:
        query = text(
            f"SELECT refresh_id, as_of_date, status, published_at, profile_rows, event_rows, segment_rows, "
            f"member_rows, redis_keys FROM {self.qualified('refreshes')} WHERE status = :current"
        )
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query, {"current": CURRENT}).first()
        else:
            row = conn.execute(query, {"current": CURRENT}).first()
        if row is None:
            return None
        counts = dict(
            zip(("customer_profile", "customer_event_daily", "segments", "segment_members"), row[4:8], strict=True)
        )
        counts["redis_keys"] = row[8]
        return RefreshInfo(row[0], _parse_date(row[1]), row[2], _parse_ts(row[3]), counts)

    def refreshes(self) -> list[dict[str, Any]]:
        """The audit trail, newest first."""
        with self.engine.connect() as conn:
            result = conn.execute(text(f"SELECT * FROM {self.qualified('refreshes')} ORDER BY refresh_id DESC"))
            return [dict(r._mapping) for r in result]

    # -- load --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def load_refresh(self, refresh_id: str) -> Iterator[RefreshLoad]:
        """Create the refresh's physical tables and bulk-load them in one transaction; keys, indexes and
        statistics are built at the end. Leaving the block with an error rolls all of it back."""
        with self.engine.begin() as conn:
            for table in self.contract.tables.values():
                name = self.physical(table.name, refresh_id)
                # SQLite cannot add a primary key later; a keyed table loads fast enough there.
                conn.execute(text(create_table_sql(table, name, self.dialect, with_primary_key=self.is_sqlite)))
            load = RefreshLoad(self, conn, refresh_id)
            yield load
            for table in self.contract.tables.values():
                name = self.physical(table.name, refresh_id)
                if table.primary_key and not self.is_sqlite:
                    conn.execute(
                        text(
                            f"ALTER TABLE {name} ADD CONSTRAINT {_physical(table.name, refresh_id)}_pk "
                            f"PRIMARY KEY ({', '.join(table.primary_key)})"
                        )
                    )
                for n, columns in enumerate(table.indexes, start=1):
                    index = f"{_physical(table.name, refresh_id)}_ix{n}"
                    conn.execute(text(f"CREATE INDEX {index} ON {name} ({', '.join(columns)})"))
                conn.execute(text(f"ANALYZE {name}"))

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    # -- swap --------------------------------------------------------------------------------------
    def swap(
        self,
        refresh_id: str,
        *,
        row_counts: dict[str, int],
        redis_keys: int | None = None,
        before_commit: Callable[[], None] | None = None,
        attempts: int = 3,
    ) -> str | None:
        """Point every view at the refresh's tables and make it current, in one transaction.

        ``before_commit`` runs inside the transaction after the views moved (the Redis pointer switch):
        if it raises, the database swap is rolled back. Returns the refresh that was current before."""
        for attempt in range(1, attempts + 1):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        # Lock every view in one fixed order up front, so readers touching several views
                        # cannot interleave with the swap halfway (and lock waits end in one place).
                        views = self._existing_views(conn)
                        if views:
                            conn.execute(
                                text(
                                    f"LOCK TABLE {', '.join(self.qualified(v) for v in views)} IN ACCESS EXCLUSIVE MODE"
                                )
                            )
                    previous = self.current_refresh(conn)
                    for table in self.contract.tables.values():
                        self._point_view(conn, table, refresh_id)
                    self._mark_current(conn, refresh_id, row_counts, redis_keys)
                    if before_commit is not None:
                        before_commit()
                return previous.refresh_id if previous else None
            except OperationalError as exc:
                # PostgreSQL breaks a lock cycle with a reader by cancelling one side: try the swap again.
                if attempt == attempts or "deadlock" not in str(exc).lower():
                    raise
                log.warning("swap of refresh %s hit a deadlock (attempt %d), retrying", refresh_id, attempt)
        return None  # unreachable: the loop returns or raises

    def _existing_views(self, conn: Connection) -> list[str]:
        rows = conn.execute(
            text("SELECT table_name FROM information_schema.views WHERE table_schema = :s"), {"s": self.schema}
        )
        present = {r[0] for r in rows}
        return [t for t in self.contract.tables if t in present]

    def _point_view(self, conn: Connection, table: ServingTable, refresh_id: str) -> None:
        view = self.qualified(table.name)
        select = f"SELECT {', '.join(table.column_names)} FROM {self.physical(table.name, refresh_id)}"
        if self.dialect == "postgresql" and self._view_columns(conn, table.name) == table.column_names:
            # Same shape: replace in place (the view keeps its identity, grants and dependants).
            conn.execute(text(f"CREATE OR REPLACE VIEW {view} AS {select}"))
            return
        conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
        conn.execute(text(f"CREATE VIEW {view} AS {select}"))

    def _view_columns(self, conn: Connection, view: str) -> list[str]:
        rows = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                "ORDER BY ordinal_position"
            ),
            {"s": self.schema, "t": view},
        )
        return [r[0] for r in rows]

    def _mark_current(
        self, conn: Connection, refresh_id: str, row_counts: dict[str, int], redis_keys: int | None
    ) -> None:
        refreshes = self.qualified("refreshes")
        conn.execute(
            text(f"UPDATE {refreshes} SET status = :superseded WHERE status = :current"),
            {"superseded": SUPERSEDED, "current": CURRENT},
        )
        result = conn.execute(
            text(
                f"UPDATE {refreshes} SET status = :current, published_at = :now, profile_rows = :p, "
                "event_rows = :e, segment_rows = :s, member_rows = :m, redis_keys = :r "
                "WHERE refresh_id = :id AND status = :loading"
            ),
            {
                "current": CURRENT,
                "now": self._ts(datetime.now(UTC)),
                "p": row_counts.get("customer_profile", 0),
                "e": row_counts.get("customer_event_daily", 0),
                "s": row_counts.get("segments", 0),
                "m": row_counts.get("segment_members", 0),
                "r": redis_keys,
                "id": refresh_id,
                "loading": LOADING,
            },
        )
        if result.rowcount != 1:
            raise ServingStoreError(f"refresh {refresh_id} is not loading in {refreshes}; it cannot be published")

    # -- cleanup -----------------------------------------------------------------------------------
    def drop_old_refreshes(self, keep: set[str]) -> list[str]:
        """Drop the physical tables of every refresh not in ``keep`` (old ones and crashed loads).

        Call under the publish lock: a load in progress looks like a crashed one."""
        dropped: set[str] = set()
        for name in self._physical_tables():
            refresh_id = name.rpartition(PHYSICAL_SUFFIX)[2]
            if refresh_id in keep:
                continue
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        # A long reader of an old refresh delays the drop, never the publish: give up, retry next time.
                        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                    conn.execute(text(f"DROP TABLE IF EXISTS {self.qualified(name)}"))
                dropped.add(refresh_id)
            except OperationalError:
                log.warning("could not drop %s now; the next publish retries", name, exc_info=True)
        if dropped:
            with self.engine.begin() as conn:
                for refresh_id in sorted(dropped):
                    conn.execute(
                        text(
                            f"UPDATE {self.qualified('refreshes')} SET status = :dropped WHERE refresh_id = :id "
                            "AND status = :superseded"
                        ),
                        {"dropped": DROPPED, "id": refresh_id, "superseded": SUPERSEDED},
                    )
        return sorted(dropped)

    def _physical_tables(self) -> list[str]:
        if self.dialect == "postgresql":
            query = text("SELECT tablename FROM pg_tables WHERE schemaname = :s")
            params: dict[str, Any] = {"s": self.schema}
        else:
            query = text("SELECT name FROM sqlite_master WHERE type = 'table'")
            params = {}
        with self.engine.connect() as conn:
            names = [r[0] for r in conn.execute(query, params)]
        tables = tuple(f"{t}{PHYSICAL_SUFFIX}" for t in self.contract.tables)
        return [n for n in names if n.startswith(tables) and REFRESH_ID.match(n.rpartition(PHYSICAL_SUFFIX)[2])]

    def refresh_ids_with_tables(self) -> set[str]:
        return {n.rpartition(PHYSICAL_SUFFIX)[2] for n in self._physical_tables()}

    # -- helpers -----------------------------------------------------------------------------------
    def _ts(self, value: datetime) -> Any:
        # SQLite stores timestamps as ISO text in UTC without an offset, like the published tables.
        return value if self.dialect == "postgresql" else value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")

    @contextlib.contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """A read-only transaction (SQLite: one snapshot of the file for every statement in it)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn


class RefreshLoad:
    """Bulk writer into the physical tables of one refresh, inside the load transaction."""

    def __init__(self, store: SqlServingStore, conn: Connection, refresh_id: str) -> None:
        self.store = store
        self.conn = conn
        self.refresh_id = refresh_id
        self.rows: dict[str, int] = dict.fromkeys(store.contract.tables, 0)

    def write(self, table: str, batch: pa.RecordBatch) -> None:
        spec = self.store.contract.tables[table]
        missing = [c for c in spec.column_names if c not in batch.schema.names]
        if missing:
            raise ServingStoreError(f"{table}: batch lacks contract column(s) {', '.join(missing)}")
        batch = batch.select(spec.column_names)
        if batch.num_rows == 0:
            return
        name = self.store.physical(table, self.refresh_id)
        if self.store.dialect == "postgresql":
            self._copy(name, batch)
        else:
            self._insert(name, batch)
        self.rows[table] += batch.num_rows

    def write_all(self, table: str, batches: Iterable[pa.RecordBatch]) -> int:
        for batch in batches:
            self.write(table, batch)
        return self.rows[table]

    def _copy(self, name: str, batch: pa.RecordBatch) -> None:
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
        buffer.seek(0)
        sql = f"COPY {name} ({', '.join(batch.schema.names)}) FROM STDIN WITH (FORMAT csv)"
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if hasattr(cursor, "copy_expert"):  # psycopg2
                cursor.copy_expert(sql, buffer)
            else:  # psycopg 3
                with cursor.copy(sql) as copy:
                    copy.write(buffer.getvalue())
        finally:
            cursor.close()

    def _insert(self, name: str, batch: pa.RecordBatch) -> None:
        columns = [_sqlite_values(batch.column(i)) for i in range(batch.num_columns)]
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {name} ({', '.join(batch.schema.names)}) VALUES ({marks})"
        self.conn.connection.driver_connection.executemany(sql, list(zip(*columns, strict=True)))  # type: ignore[union-attr]


def _sqlite_values(column: pa.Array) -> list[Any]:
    """Arrow column -> Python values in the SQLite store's text conventions (vectorised in Arrow)."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit, tz="UTC"))
        text_ = pc.strftime(column.cast(pa.timestamp("us", tz=kind.tz)), format="%Y-%m-%d %H:%M:%S")
        # Python's isoformat(sep=" ") (what the rule compiler binds): no fraction when it is zero.
        column = pc.replace_substring_regex(text_, pattern=r"\.000000$", replacement="")
    elif pa.types.is_date(kind):
        column = column.cast(pa.string())
    elif pa.types.is_boolean(kind):
        column = column.cast(pa.int8())
    return column.to_pylist()


def _sqlite_engine(url: str) -> Engine:
    """SQLite with real transactions: the Python driver's implicit BEGIN (DML only) would run the view swap's
    DDL outside a transaction and give every SELECT its own snapshot. WAL lets readers run during a load."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # the driver issues no BEGIN/COMMIT of its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN")

    return engine


def open_store(settings: Any = None, *, url: str | None = None, schema: str | None = None) -> SqlServingStore:
    """The configured serving store: ``url`` if given, else ``settings.serving_db_url``, else the SQLite file
    ``<MO_HOME>/serving/serving.db``."""
    resolved = url or getattr(settings, "serving_db_url", None)
    if resolved is None:
        if settings is None:
            raise ConfigError("no serving database: pass url= or settings")
        resolved = f"sqlite:///{Path(settings.home) / 'serving' / 'serving.db'}"
    return SqlServingStore(resolved, schema=schema)
