"""Columnar segment preview: a DuckDB copy of each published refresh, so a preview counts 1M+ profiles in
milliseconds instead of the SQL store's full-row scans.

Why DuckDB (a vectorised columnar engine) and not bitmaps. A 5-clause preview touches 5 of the profile's
~40 columns; a row store (PostgreSQL heap, SQLite pages) reads every column of every candidate row, and
its B-tree indexes do not help because segment clauses are unselective (a gender, an age band, a boolean
hold for 10-60% of customers: the planner rightly prefers a full scan, and intersecting several such
bitmaps costs as much). A columnar file reads only the referenced columns, compressed (dictionary /
bit-packed enums, run-length booleans), and evaluates the predicates a vector of 2048 values at a time.
Roaring bitmaps per enum value would make enum and boolean clauses even cheaper, but the rule language
is larger than that: ranges over doubles and dates, relative dates, substring tests, custom tags held as
JSON, arbitrary AND/OR/NOT nesting, and event conditions (a per-customer SUM over a date window of
``customer_event_daily``, compared with a threshold) that a bitmap index would have to precompute per
(event type, window, threshold) or rebuild per query. DuckDB runs the SQL the one rule compiler emits
(``compile_rule(dialect="duckdb")``), so the preview has exactly the compiler's semantics for every rule,
including event conditions (DuckDB decorrelates the compiler's correlated subquery into one hash
aggregate + join), with no second interpreter of the rule language to keep in step.

Layout and atomic switch. Each refresh the SQL store publishes gets one file
``<directory>/<refresh_id>.duckdb`` with ``customer_profile`` (ordered by customer_id, for the sample's
top-N) and ``customer_event_daily`` (ordered by event type, date and customer, so the zone maps of an
event condition's type and window skip most row groups). The file is written under a temporary name,
checkpointed, fsynced and renamed into place *before* the SQL swap, and never modified afterwards. The
switch is the SQL store's own swap: a preview resolves the current refresh from the store (one indexed
lookup), then opens that refresh's file read-only, so the columnar preview and the SQL views always
agree on the refresh, with no second pointer to keep in step. Files of refreshes other than the new and
the current one are removed when the next copy is written (the SQL store keeps the same two); a reader
that still has an old file open keeps reading it (POSIX unlink), one that resolved a refresh whose file
just went away resolves again.

Feeding it: :func:`write_refresh` is the publish hook. After the SQL load committed a refresh's tables it
copies them from the SQL store (PostgreSQL ``COPY ... TO STDOUT`` into DuckDB's parallel CSV reader;
SQLite rows through Arrow), so the columnar copy is by construction the data the SQL store serves.
:func:`write_refresh_batches` builds a file straight from Arrow record batches (benchmarks, tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url

from mo.segments.compiler import CompiledRule, compile_rule
from mo.segments.rules import TAG_REGISTRY_PATH, known_custom_tags
from mo.serving_store.contract import ServingContract, ServingTable
from mo.serving_store.preview import (
    DISTRIBUTION_COLUMNS,
    PREVIEW_TIMEOUT_SECONDS,
    Preview,
    PreviewTimeout,
    SqlPreviewBackend,
    check_event_windows,
    preview_from_groups,
)
from mo.serving_store.store import REFRESH_ID, NothingPublished, RefreshInfo, ServingStoreError, SqlServingStore

log = logging.getLogger(__name__)

# The tables a preview reads; segments and members stay in the SQL store.
COLUMNAR_TABLES = ("customer_profile", "customer_event_daily")
# Physical order of each table in the file (zone maps prune on the leading columns).
SORT_KEYS = {
    "customer_profile": ("customer_id",),
    "customer_event_daily": ("event_type", "event_date", "customer_id"),
}
SUFFIX = ".duckdb"
# Serving column type -> DuckDB type. Timestamps are naive UTC (what the compiler binds); JSON stays text.
DUCKDB_TYPES = {
    "bigint": "BIGINT",
    "int": "INTEGER",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
    "json": "VARCHAR",
}
# How the SQLite store holds each type (see mo/serving_store/store.py): read as these, cast in DuckDB.
_SQLITE_ARROW = {
    "bigint": pa.int64(),
    "int": pa.int64(),
    "string": pa.string(),
    "boolean": pa.int64(),
    "date": pa.string(),
    "timestamp": pa.string(),
    "double": pa.float64(),
    "json": pa.string(),
}
_READ_BATCH_ROWS = 100_000


def filter_sql(compiled: CompiledRule) -> str:
    """The compiled rule as a WHERE filter the engine can push into its scans (zone maps, indexes).

    The compiler wraps each attribute and tag leaf in ``COALESCE(leaf, FALSE)`` so that a leaf on a missing
    value is false, which matters under NOT. Under an even number of NOTs the wrapper changes nothing in a
    WHERE clause: AND/OR/NOT follow Kleene's three-valued logic, so a rule that is true with a leaf unknown
    is true with that leaf false, and a rule that is unknown filters the row out like false. Those leaves
    are emitted bare, so the scan sees plain column predicates; leaves under an odd number of NOTs keep it.
    """
    return compiled.where_over({c.path: c.sql if c.negated else _unwrap_coalesce(c.sql) for c in compiled.clauses})


def _unwrap_coalesce(sql: str) -> str:
    head, tail = "COALESCE(", ", FALSE)"
    if not (sql.startswith(head) and sql.endswith(tail)):
        return sql
    inner = sql[len(head) : -len(tail)]
    # Only when the inner text is one balanced expression (values are bound parameters: no quotes in the SQL).
    depth = 0
    for char in inner:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return sql
    return f"({inner})" if depth == 0 and "'" not in inner else sql


_registry_cache: dict[str, Any] = {}


def _registry_tags() -> Any:
    """The tag registry for rule validation, re-read only when the file changes: parsing the YAML costs more
    than a columnar count (the compiler's default reads it on every call)."""
    try:
        stat = TAG_REGISTRY_PATH.stat()
        key: Any = (stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        key = None
    if _registry_cache.get("key") != key or "tags" not in _registry_cache:
        _registry_cache["tags"] = known_custom_tags() if key is not None else None
        _registry_cache["key"] = key
    tags = _registry_cache["tags"]
    # compile_rule reads an empty mapping as "no registry, any tag"; True keeps "no custom tags" strict.
    return tags if tags or tags is None else True


class ColumnarCopyMissing(ServingStoreError):
    """The current refresh has no columnar copy (published without one, or the file was removed)."""


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a declared dependency
        raise ServingStoreError("the columnar preview needs the duckdb package (pip install duckdb)") from exc
    return duckdb


def columnar_directory(store: SqlServingStore, home: str | os.PathLike[str] | None = None) -> Path:
    """Where a store's columnar copies live: next to the SQLite file (``serving.db`` ->
    ``serving.columnar/``), or under ``<home>/serving/columnar/`` named after the PostgreSQL database and
    schema, so two stores never share (and clean up) each other's files."""
    if store.is_sqlite:
        return store.sqlite_path.with_name(store.sqlite_path.stem + ".columnar")
    if home is None:
        raise ServingStoreError(f"a columnar copy of {store.qualified('customer_profile')} needs a home directory")
    url = make_url(store.url)
    name = f"pg-{url.host or 'local'}-{url.port or 5432}-{url.database or ''}-{store.schema}"
    return Path(home) / "serving" / "columnar" / re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def refresh_path(directory: Path, refresh_id: str) -> Path:
    if not REFRESH_ID.match(refresh_id):
        raise ServingStoreError(f"not a refresh id: {refresh_id!r}")
    return directory / f"{refresh_id}{SUFFIX}"


def _column_types(table: ServingTable) -> dict[str, str]:
    return {c.name: DUCKDB_TYPES[c.type] for c in table.columns}


def _cast_select(table: ServingTable, source: str) -> str:
    """``SELECT CAST(col AS type) ... FROM source ORDER BY <sort key>``, the columns in contract order."""
    columns = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in _column_types(table).items())
    order = ", ".join(f'"{c}"' for c in SORT_KEYS[table.name])
    return f"SELECT {columns} FROM {source} ORDER BY {order}"


@contextlib.contextmanager
def _new_file(directory: Path, refresh_id: str) -> Iterator[Any]:
    """A DuckDB connection on a temporary file that becomes ``<refresh_id>.duckdb`` (checkpointed, fsynced,
    renamed) only if the block succeeds; a failed or killed write never leaves a file under the final name."""
    duckdb = _duckdb()
    directory.mkdir(parents=True, exist_ok=True)
    final = refresh_path(directory, refresh_id)
    temporary = directory / f".{refresh_id}{SUFFIX}.tmp"
    for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
        leftover.unlink(missing_ok=True)
    conn = duckdb.connect(str(temporary))
    try:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET preserve_insertion_order = true")
        yield conn
        conn.execute("CHECKPOINT")
        conn.close()
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise


def write_refresh_batches(
    directory: Path,
    refresh_id: str,
    tables: Mapping[str, Iterable[pa.RecordBatch]],
    *,
    contract: ServingContract | None = None,
) -> Path:
    """Build ``<directory>/<refresh_id>.duckdb`` from Arrow record batches of customer_profile and
    customer_event_daily (contract column names; values cast to the contract types). Batches stream
    through DuckDB; none is held by Python."""
    from mo.serving_store.contract import load_serving_contract

    contract = contract or load_serving_contract()
    with _new_file(directory, refresh_id) as conn:
        for name in COLUMNAR_TABLES:
            spec = contract.tables[name]
            batches = iter(tables.get(name) or [])
            first = next(batches, None)
            if first is None:
                conn.execute(f"CREATE TABLE {name} ({_column_ddl(spec)})")
                continue
            missing = [c for c in spec.column_names if c not in first.schema.names]
            if missing:
                raise ServingStoreError(f"{name}: batch lacks contract column(s) {', '.join(missing)}")
            schema = first.select(spec.column_names).schema

            def stream(first: pa.RecordBatch = first, rest: Iterator[pa.RecordBatch] = batches, spec=spec):
                yield first.select(spec.column_names)
                for batch in rest:
                    yield batch.select(spec.column_names)

            conn.register("source_batches", pa.RecordBatchReader.from_batches(schema, stream()))
            conn.execute(f"CREATE TABLE {name} AS {_cast_select(spec, 'source_batches')}")
            conn.unregister("source_batches")
    return refresh_path(directory, refresh_id)


def _column_ddl(table: ServingTable) -> str:
    return ", ".join(f'"{c}" {t}' for c, t in _column_types(table).items())


def write_refresh(store: SqlServingStore, refresh_id: str, directory: Path | None = None, *, home: Any = None) -> Path:
    """The publish hook: copy a loaded (not yet current) refresh from the SQL store into its columnar file,
    then remove the files of every refresh other than this one and the store's current one (call under the
    publish lock, after the load committed and before the swap)."""
    directory = directory or columnar_directory(store, home)
    contract = store.contract
    if store.is_sqlite:
        path = write_refresh_batches(
            directory,
            refresh_id,
            {name: _sqlite_batches(store, contract.tables[name], refresh_id) for name in COLUMNAR_TABLES},
            contract=contract,
        )
    else:
        path = _write_from_postgresql(store, refresh_id, directory)
    current = store.current_refresh()
    drop_old_refreshes(directory, keep={refresh_id} | ({current.refresh_id} if current else set()))
    return path


def _sqlite_batches(store: SqlServingStore, table: ServingTable, refresh_id: str) -> Iterator[pa.RecordBatch]:
    schema = pa.schema([(c.name, _SQLITE_ARROW[c.type]) for c in table.columns])
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT {', '.join(table.column_names)} FROM {store.physical(table.name, refresh_id)}")
        while rows := cursor.fetchmany(_READ_BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.RecordBatch.from_arrays(
                [pa.array(values, field.type) for values, field in zip(columns, schema, strict=True)], schema=schema
            )
        cursor.close()
    finally:
        raw.close()


def _write_from_postgresql(store: SqlServingStore, refresh_id: str, directory: Path) -> Path:
    """PostgreSQL ``COPY (SELECT ...) TO STDOUT`` as CSV into a scratch file per table, read back by DuckDB's
    parallel CSV reader with the contract's types (much faster than fetching rows through the driver)."""
    contract = store.contract
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{refresh_id}-", dir=directory) as scratch:
        files: dict[str, Path] = {}
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for name in COLUMNAR_TABLES:
                spec = contract.tables[name]
                select = ", ".join(
                    f"({c.name} AT TIME ZONE 'UTC') AS {c.name}"
                    if c.type == "timestamp"
                    else f"{c.name}::text AS {c.name}"
                    if c.type == "json"
                    else c.name
                    for c in spec.columns
                )
                sql = (
                    f"COPY (SELECT {select} FROM {store.physical(name, refresh_id)}) TO STDOUT "
                    "WITH (FORMAT csv, HEADER false)"
                )
                files[name] = Path(scratch) / f"{name}.csv"
                with open(files[name], "wb") as out:
                    if hasattr(cursor, "copy_expert"):  # psycopg2
                        cursor.copy_expert(sql, out)
                    else:  # psycopg 3
                        with cursor.copy(sql) as copy:
                            for chunk in copy:
                                out.write(chunk)
            cursor.close()
            raw.rollback()
        finally:
            raw.close()
        with _new_file(directory, refresh_id) as conn:
            for name in COLUMNAR_TABLES:
                spec = contract.tables[name]
                columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _column_types(spec).items()) + "}"
                # PostgreSQL CSV: NULL is an empty unquoted field, '' a quoted one; booleans t/f.
                source = (
                    f"read_csv('{_sql_string(files[name])}', columns = {columns}, header = false, delim = ',', "
                    "quote = '\"', escape = '\"', allow_quoted_nulls = false, auto_detect = false)"
                )
                conn.execute(f"CREATE TABLE {name} AS {_cast_select(spec, source)}")
    return refresh_path(directory, refresh_id)


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")


def drop_old_refreshes(directory: Path, keep: set[str]) -> list[str]:
    """Remove the columnar files (and leftovers of crashed writes) of every refresh not in ``keep``."""
    dropped: list[str] = []
    if not directory.exists():
        return dropped
    for path in directory.iterdir():
        refresh_id = path.name.lstrip(".").split(".")[0].split("-")[0]
        if not REFRESH_ID.match(refresh_id) or refresh_id in keep:
            continue
        if path.is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if path.name.endswith(SUFFIX) and not path.name.startswith("."):
            dropped.append(refresh_id)
    return sorted(dropped)


@dataclass
class _Open:
    conn: Any
    users: int = 0


class ColumnarPreviewStore:
    """Segment preview over the columnar copy of the SQL store's current refresh (same answers as
    :class:`~mo.serving_store.preview.SqlPreviewBackend`: count, lowest ids as the sample, distributions).

    Pass it as ``store=`` to :func:`~mo.serving_store.preview.preview_segment`. Thread-safe: each call
    uses its own DuckDB cursor on a per-refresh read-only connection that is opened once and closed when
    a newer refresh has replaced it and no call uses it any more. With ``fallback`` (the default) a
    refresh published without a columnar copy is previewed by the SQL store instead (logged); without it
    that raises :class:`ColumnarCopyMissing`. Every query runs under ``timeout`` seconds (a timer interrupts
    the DuckDB cursor; :class:`~mo.serving_store.preview.PreviewTimeout`)."""

    def __init__(
        self,
        store: SqlServingStore,
        directory: Path | None = None,
        *,
        home: Any = None,
        fallback: bool = True,
        threads: int | None = None,
        timeout: float = PREVIEW_TIMEOUT_SECONDS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.store = store
        self.directory = directory or columnar_directory(store, home)
        self.fallback = fallback
        self.threads = threads
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}
        self._current: str | None = None

    # -- public --------------------------------------------------------------------------------------
    def preview(self, rule: dict[str, Any], *, as_of: date | None, sample_size: int) -> Preview:
        for attempt in (1, 2):
            refresh = self._current_refresh()
            try:
                with self._cursor(refresh.refresh_id) as cursor:
                    return self._preview(cursor, rule, refresh, as_of or refresh.as_of_date, sample_size)
            except ColumnarCopyMissing:
                # A publish between the lookup and the open removed the file: look the refresh up again.
                if attempt == 1 and self.store.current_refresh() != refresh:
                    continue
                if not self.fallback:
                    raise
                log.warning("refresh %s: no columnar copy in %s; previewing in SQL", refresh.refresh_id, self.directory)
                return SqlPreviewBackend(self.store, timeout=self.timeout).preview(
                    rule, as_of=as_of, sample_size=sample_size
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def count(self, rule: dict[str, Any], *, as_of: date | None = None) -> int:
        """Only the number of customers the rule selects (what the preview's count box shows while typing)."""
        refresh = self._current_refresh()
        compiled = self._compile(rule, as_of or refresh.as_of_date)
        self._check_windows(rule, as_of or refresh.as_of_date, refresh)
        with self._cursor(refresh.refresh_id) as cursor:
            query = f"SELECT count(*) FROM customer_profile p WHERE {filter_sql(compiled)}"
            return int(self._fetch(cursor, query, compiled.params)[0][0])

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                entry.conn.close()
            self._open.clear()

    # -- internals -----------------------------------------------------------------------------------
    def _current_refresh(self) -> RefreshInfo:
        refresh = self.store.current_refresh()
        if refresh is None:
            raise NothingPublished(f"the serving store ({self.store.qualified('refreshes')}) has no current refresh")
        return refresh

    @staticmethod
    def _compile(rule: dict[str, Any], as_of: date) -> CompiledRule:
        return compile_rule(
            rule,
            dialect="duckdb",
            as_of=as_of,
            profile="customer_profile",
            events="customer_event_daily",
            custom_tags=_registry_tags(),
        )

    def _check_windows(self, rule: dict[str, Any], as_of: date, refresh: RefreshInfo) -> None:
        check_event_windows(rule, as_of=as_of, refresh=refresh, retention_days=self.store.contract.event_retention_days)

    def _fetch(self, cursor: Any, query: str, params: dict[str, Any]) -> list[Any]:
        """``cursor.execute(...).fetchall()`` stopped after ``timeout`` seconds. DuckDB has no statement timeout
        setting: a watchdog thread interrupts the cursor (that query only) once the time is up, and again every
        few milliseconds until the query ends, since an interrupt that arrives before DuckDB has started the
        query is dropped."""
        duckdb = _duckdb()
        done = threading.Event()
        expired = threading.Event()

        def watchdog() -> None:
            if done.wait(self.timeout):
                return
            expired.set()
            while not done.is_set():
                cursor.interrupt()
                done.wait(0.005)

        guard = threading.Thread(target=watchdog, name="preview-timeout", daemon=True)
        guard.start()
        try:
            return cursor.execute(query, params).fetchall()
        except duckdb.InterruptException:
            if expired.is_set():
                raise PreviewTimeout(self.timeout) from None
            raise
        finally:
            done.set()
            guard.join()

    def _preview(
        self, cursor: Any, rule: dict[str, Any], refresh: RefreshInfo, as_of: date, sample_size: int
    ) -> Preview:
        refresh_id = refresh.refresh_id
        compiled = self._compile(rule, as_of)
        self._check_windows(rule, as_of, refresh)
        where = filter_sql(compiled)
        params = dict(compiled.params)
        columns = ", ".join(f"p.{c}" for c in DISTRIBUTION_COLUMNS)
        # As in the SQL store: one grouped scan gives the count and every distribution.
        grouped = self._fetch(
            cursor, f"SELECT {columns}, count(*) FROM customer_profile p WHERE {where} GROUP BY ALL", params
        )
        sample_ids: list[int] = []
        if sample_size > 0:
            if "preview_sample_size" in params:
                raise ValueError("the compiled rule uses the reserved parameter name preview_sample_size")
            params["preview_sample_size"] = sample_size
            sample = self._fetch(
                cursor,
                f"SELECT p.customer_id FROM customer_profile p WHERE {where} "
                "ORDER BY p.customer_id LIMIT $preview_sample_size",
                params,
            )
            sample_ids = [int(r[0]) for r in sample]
        return preview_from_groups(grouped, sample_ids, as_of=as_of, refresh_id=refresh_id, compiled=compiled)

    @contextlib.contextmanager
    def _cursor(self, refresh_id: str) -> Iterator[Any]:
        entry = self._acquire(refresh_id)
        cursor = entry.conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            self._release(refresh_id)

    def _acquire(self, refresh_id: str) -> _Open:
        duckdb = _duckdb()
        with self._lock:
            entry = self._open.get(refresh_id)
            if entry is None:
                path = refresh_path(self.directory, refresh_id)
                if not path.exists():
                    raise ColumnarCopyMissing(f"refresh {refresh_id} has no columnar copy at {path}")
                config = {"threads": self.threads} if self.threads else {}
                try:
                    conn = duckdb.connect(str(path), read_only=True, config=config)
                except duckdb.IOException as exc:
                    raise ColumnarCopyMissing(f"refresh {refresh_id}: cannot open {path}: {exc}") from exc
                conn.execute("SET TimeZone = 'UTC'")
                entry = self._open[refresh_id] = _Open(conn)
            entry.users += 1
            # The refresh the store resolved last is the one to keep open (ids of refreshes published within
            # the same second do not sort by time); a reader late on an older one only costs a reopen.
            self._current = refresh_id
            self._close_idle()
            return entry

    def _release(self, refresh_id: str) -> None:
        with self._lock:
            self._open[refresh_id].users -= 1
            self._close_idle()

    def _close_idle(self) -> None:
        """Close connections of refreshes other than the last resolved one that no call is using."""
        for refresh_id in [r for r, e in self._open.items() if r != self._current and e.users == 0]:
            self._open.pop(refresh_id).conn.close()


def open_columnar(settings: Any, store: SqlServingStore | None = None, **kwargs: Any) -> ColumnarPreviewStore:
    """The columnar preview of the configured serving store (``mo.serving_store.open_store(settings)``)."""
    from mo.serving_store.store import open_store

    return ColumnarPreviewStore(store or open_store(settings), home=settings.home, **kwargs)
