"""`mo reconcile`: compare silver with the source by content, find the rows that differ, repair exactly those.

The sync's gate compares counts; a row changed in the source without a new ``updated_at``, inserted with
one older than the look-back, or deleted outside the soft delete keeps the counts equal (or is missed by
the watermark altogether) and silver silently differs. This module compares content, the way data-diff
tools do, cheaply enough to run daily on the largest tables:

1. **Row hashes on both sides.** Each live row (``deleted_at`` null, ``updated_at`` up to the table's
   published watermark: a row changed after it is the next sync's business) is encoded canonically as text
   (:func:`field_sql` in the source's SQL, :func:`field_col` in Spark) and hashed with MD5; the first 16 hex
   digits make a 64-bit number ``h``. The source computes it in SQL, the MD5 once per row (SQLite, which has
   no MD5, through a function registered on the Python connection), so only aggregates cross the wire;
   Spark keeps ``h`` as two 32-bit halves whose sums cannot overflow.
2. **Ranges.** The id space ``[lo, hi)`` is cut into ``MO_RECONCILE_PARTS`` ranges; per range each side
   returns ``count(*)`` and ``sum(h)`` modulo 2^64. Equal pairs: the range agrees. A range that differs is
   cut again, until it holds at most ``MO_RECONCILE_LEAF_ROWS`` rows on either side; then both sides list
   (id, h) for it and the ids are compared one by one. A difference costs one query per level (all
   differing ranges of a level in one ``UNION ALL``). The first level spans the source's ids; silver's
   rows outside them are caught in the same Spark job. Cost when nothing differs: one hashing scan per
   table on each side, the source's running ahead in the background over all tables (two at a time) while
   Spark takes them one by one; silver is cached (only the differing ranges) only when something differs.
3. **Pending, not different.** A differing id whose source row has ``updated_at`` after the watermark
   was changed in the source since the last sync: the next sync takes it, so it is reported as pending.
4. **Repair** (``--repair``): the differing ids of each table go through the sync's gated full-refresh
   path restricted to those ids (:func:`spark_jobs.sync.run_sync` with ``repair_ids``): read from the
   source, compared with bronze, written as a bronze batch, merged on audit branches, gated, published.
   There is no second write path.

Canonical encoding (identical in the three SQL dialects and Spark): a NULL is ``N``; a string is
``<characters>:<text>``, so NULL, the empty string and the text ``N`` all differ and no separator can be
forged; any other value is ``<text>;``, whose text is made of digits, ``-``, ``.``, ``:`` and spaces, so it
never holds the ``;`` nor starts with ``N`` (its length is not needed, and not computing it spares the
source a second formatting of every date, timestamp and decimal). Text per type: strings as they are;
integers in decimal; booleans ``1``/``0``; decimals with exactly the contract's scale (``12.50``); dates
``YYYY-MM-DD``; timestamps ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC, as the sync stores them). The row's text
is its columns' encodings in contract order.

PII: silver holds tokens and masks, the source clear values. The source cannot compute the tokens (the
HMAC key must not be sent to the source database, where statement logs would keep it, and SQLite has no
HMAC), and re-tokenising in Spark would mean reading every clear value from the source, which is the full
refresh this replaces. So both sides hash the clear text, Spark taking it from ``silver_restricted``. A
row's hash is the sum (modulo 2^64) of two: its plain part's (the columns silver holds as they are) and
its PII part's (key and PII columns). Spark hashes silver's rows and the restricted table's rows apart and
adds them up per range (or per id), which gives the same sums as joining the two tables on id without the
join's shuffle of both (the largest part of Spark's time on the PII tables). Tokens and masks are not
compared with the source; they are derived from the restricted clear values in the same step that writes
both, and a repair rewrites both.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, text

from mo.config import Settings
from mo.contracts import ColumnContract, TableContract, load_source_contracts
from mo.errors import ConfigError, MoError
from spark_jobs.extract import format_ts, jdbc_source
from spark_jobs.lake import ensure_ops_table, ops_table, quote, restricted_table, silver_table
from spark_jobs.watermarks import _frame, read_watermarks, utcnow

log = logging.getLogger(__name__)

RECONCILE_RUNS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("table", "string"),
    ("reconciled_at", "timestamp"),
    ("status", "string"),  # in_sync | differs | repaired | repair_failed | skipped
    ("watermark", "timestamp"),  # rows up to this updated_at were compared
    ("source_rows", "bigint"),
    ("silver_rows", "bigint"),
    ("rows_differing", "bigint"),  # ids whose content differs (pending ones left out)
    ("differing_ids", "array<bigint>"),  # the first MAX_RECORDED_IDS of them
    ("rows_pending", "bigint"),  # differing ids the source changed after the watermark (next sync's)
    ("ids_repaired", "bigint"),
    ("ranges_compared", "bigint"),
    ("seconds", "double"),
    ("repair_run_id", "string"),
    ("detail", "string"),
)
MAX_RECORDED_IDS = 1000
# A statement never carries more than this many ranges (UNION ALL branches) or ids (IN lists).
MAX_RANGES_PER_QUERY = 200
# First-level hashing queries the source runs at once (each a scan of one table on one connection; the
# full refresh reads with several connections too).
SOURCE_QUERIES_AHEAD = 2

Gate = Callable[..., Any]


# --- canonical encoding: SQL side ------------------------------------------------------------------


def _concat(dialect: str, parts: Sequence[str]) -> str:
    if dialect == "mysql":
        return f"CONCAT({', '.join(parts)})"
    return "(" + " || ".join(parts) + ")"


def _value_text_sql(column: ColumnContract, dialect: str) -> str:
    """The canonical text of a non-null value of ``column`` as a SQL expression."""
    c, kind = column.name, column.type
    if kind == "string":
        return f"CAST({c} AS TEXT)" if dialect == "sqlite" else c
    if kind in ("int", "bigint"):
        return {
            "postgresql": f"CAST({c} AS TEXT)",
            "mysql": f"CAST({c} AS CHAR)",
            "sqlite": f"CAST(CAST({c} AS INTEGER) AS TEXT)",
        }[dialect]
    if kind == "boolean":
        truth = c if dialect == "postgresql" else f"{c} <> 0"
        return f"CASE WHEN {truth} THEN '1' ELSE '0' END"
    if kind.startswith("decimal("):
        precision, scale = (int(x) for x in kind[len("decimal(") : -1].split(","))
        return {
            "postgresql": f"CAST(round(CAST({c} AS NUMERIC), {scale}) AS TEXT)",
            "mysql": f"CAST(CAST({c} AS DECIMAL({precision},{scale})) AS CHAR)",
            # SQLite keeps NUMERIC as REAL or INTEGER: printed with the scale, as Spark prints the decimal
            "sqlite": f"printf('%.{scale}f', {c})",
        }[dialect]
    if kind == "date":
        return {
            "postgresql": f"to_char({c}, 'YYYY-MM-DD')",
            "mysql": f"DATE_FORMAT({c}, '%Y-%m-%d')",
            "sqlite": f"substr(CAST({c} AS TEXT), 1, 10)",
        }[dialect]
    if kind == "timestamp":
        if dialect == "postgresql":
            return f"to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if dialect == "mysql":
            return f"DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"
        # SQLAlchemy writes 'YYYY-MM-DD HH:MM:SS.ffffff'; other writers may leave out the fraction or the T
        t = f"replace(CAST({c} AS TEXT), 'T', ' ')"
        return f"CASE WHEN length({t}) = 19 THEN {t} || '.000000' ELSE substr({t} || '000000', 1, 26) END"
    raise ConfigError(f"no canonical encoding for {column.name} of type {kind}: reconcile cannot compare it")


def field_sql(column: ColumnContract, dialect: str) -> str:
    """``N`` for NULL, else ``<characters>:<text>`` for a string, ``<text>;`` for other types (see the
    module doc), as a SQL expression."""
    value = _value_text_sql(column, dialect)
    if column.type != "string":
        encoded = _concat(dialect, [value, "';'"])
        return f"CASE WHEN {column.name} IS NULL THEN 'N' ELSE {encoded} END"
    length = {"postgresql": f"CAST(length({value}) AS TEXT)", "mysql": f"CHAR_LENGTH({value})"}.get(
        dialect, f"length({value})"
    )
    encoded = _concat(dialect, [length, "':'", value])
    return f"CASE WHEN {column.name} IS NULL THEN 'N' ELSE {encoded} END"


def plain_part(contract: TableContract) -> list[ColumnContract]:
    """The columns silver holds as the source does (the key among them), in contract order."""
    return [c for c in contract.columns if not c.pii]


def pii_part(contract: TableContract) -> list[ColumnContract]:
    """The key and the PII columns (held in clear by the restricted table), in contract order; none
    without PII. The key is in it so that two rows swapping their PII change the sums."""
    if not contract.pii_columns:
        return []
    return [contract.column(contract.primary_key), *contract.pii_columns]


def text_sql(columns: Sequence[ColumnContract], dialect: str) -> str:
    return _concat(dialect, [field_sql(c, dialect) for c in columns])


def _hash64_sql(row_text: str, dialect: str) -> str:
    """The row's hash: its MD5's first 16 hex digits as a 64-bit integer (signed in PostgreSQL and SQLite,
    unsigned in MariaDB: equal modulo 2^64, which is how they are compared).

    The text and its MD5 appear once in the expression: MariaDB merges derived tables into the outer query
    and neither it nor PostgreSQL shares a repeated expression, so a hash referred to twice (two 32-bit
    halves, say) is computed twice per row; that doubled the source side's time."""
    if dialect == "postgresql":
        return f"CAST(CAST('x' || substr(md5({row_text}), 1, 16) AS BIT(64)) AS BIGINT)"
    if dialect == "mysql":
        return f"CAST(CONV(SUBSTR(MD5({row_text}), 1, 16), 16, 10) AS UNSIGNED)"
    return f"mo_hash64({row_text})"


def _hash_sum_sql(expr: str, dialect: str) -> str:
    """The sum of row hashes, exact (MariaDB and PostgreSQL sum bigints as decimals; SQLite's integers would
    overflow, so a Python aggregate sums modulo 2^64 there)."""
    return f"mo_sum64({expr})" if dialect == "sqlite" else f"sum({expr})"


def live_filter_sql(contract: TableContract, bound: datetime) -> str:
    """Rows silver should hold after a sync up to ``bound``: not soft-deleted, updated up to it."""
    return f"{contract.soft_delete} IS NULL AND {contract.watermark} <= '{format_ts(bound)}'"


def hashed_rows_sql(contract: TableContract, dialect: str, where: str) -> str:
    """SELECT id, h, hp of the rows matching ``where``: the hashes (:func:`_hash64_sql`) of the row's plain
    part and of its PII part (0 without PII); the row's hash is their sum (:func:`source_row_hash`).
    Added in Python or summed apart, never in SQL, where a 64-bit sum would overflow."""
    h = _hash64_sql(text_sql(plain_part(contract), dialect), dialect)
    hp = _hash64_sql(text_sql(pii_part(contract), dialect), dialect) if contract.pii_columns else "0"
    return f"SELECT {contract.primary_key} AS id, {h} AS h, {hp} AS hp FROM {contract.table} WHERE {where}"


def source_row_hash(h, hp) -> int:
    """A row of :func:`hashed_rows_sql` as the number compared."""
    return u64(int(h) + int(hp))


def u64(value) -> int:
    """A hash or a sum of hashes from any side, as the number compared: modulo 2^64."""
    return int(value or 0) % 2**64


def _int_div(dialect: str) -> str:
    return "DIV" if dialect == "mysql" else "/"


def digests_sql(contract: TableContract, dialect: str, bound: datetime, ranges: Sequence[Range], parts: int) -> str:
    """Per range (its index ``r``) and part of it: rows, sum(h), sum(hp). One UNION ALL branch per range."""
    branches = []
    for index, r in enumerate(ranges):
        pk = contract.primary_key
        where = f"{live_filter_sql(contract, bound)} AND {pk} >= {r.lo} AND {pk} < {r.hi}"
        part = f"(id - {r.lo}) * {parts} {_int_div(dialect)} {r.width}"
        branches.append(
            f"SELECT {index} AS r, part, count(*) AS n, {_hash_sum_sql('h', dialect)} AS s, "
            f"{_hash_sum_sql('hp', dialect)} AS sp FROM "
            f"(SELECT {part} AS part, h, hp FROM ({hashed_rows_sql(contract, dialect, where)}) h{index}) p{index} "
            "GROUP BY part"
        )
    return " UNION ALL ".join(branches)


def leaf_rows_sql(contract: TableContract, dialect: str, bound: datetime, ranges: Sequence[Range]) -> str:
    pk = contract.primary_key
    spans = " OR ".join(f"({pk} >= {r.lo} AND {pk} < {r.hi})" for r in ranges)
    return hashed_rows_sql(contract, dialect, f"{live_filter_sql(contract, bound)} AND ({spans})")


def source_engine(url: str) -> Engine:
    """An engine on the source whose connections can hash rows: SQLite has no MD5, no hex parsing and no
    sum beyond 64 bits, so its connections get them from Python (deterministic functions)."""
    from mo.oltp.db import make_engine

    engine = make_engine(url)
    if jdbc_source(url).dialect != "sqlite":
        return engine

    def hash64(value):
        if value is None:
            return None
        unsigned = int(hashlib.md5(str(value).encode("utf-8")).hexdigest()[:16], 16)  # noqa: S324 - not security
        return unsigned - 2**64 if unsigned >= 2**63 else unsigned  # SQLite integers are signed 64-bit

    class Sum64:
        def __init__(self) -> None:
            self.total = 0

        def step(self, value) -> None:
            if value is not None:
                self.total = (self.total + value) % 2**64

        def finalize(self) -> str:
            return str(self.total)  # as text: it may not fit a signed 64-bit integer

    @event.listens_for(engine, "connect")
    def _functions(dbapi_conn, _record):
        dbapi_conn.create_function("mo_hash64", 1, hash64, deterministic=True)
        dbapi_conn.create_aggregate("mo_sum64", 1, Sum64)

    return engine


# --- canonical encoding: Spark side ----------------------------------------------------------------


def _value_text_col(column: ColumnContract, col):
    from pyspark.sql import functions as F

    kind = column.type
    if kind == "string":
        return col.cast("string")
    if kind in ("int", "bigint"):
        return col.cast("bigint").cast("string")
    if kind == "boolean":
        return F.when(col, F.lit("1")).otherwise(F.lit("0"))
    if kind.startswith("decimal("):
        return col.cast(kind).cast("string")
    if kind == "date":
        return F.date_format(col, "yyyy-MM-dd")
    if kind == "timestamp":
        return F.date_format(col, "yyyy-MM-dd HH:mm:ss.SSSSSS")  # the session time zone is UTC
    raise ConfigError(f"no canonical encoding for {column.name} of type {kind}: reconcile cannot compare it")


def field_col(column: ColumnContract, col):
    """Spark twin of :func:`field_sql`."""
    from pyspark.sql import functions as F

    value = _value_text_col(column, col)
    if column.type != "string":
        return F.when(col.isNull(), F.lit("N")).otherwise(F.concat(value, F.lit(";")))
    return F.when(col.isNull(), F.lit("N")).otherwise(F.concat(F.length(value).cast("string"), F.lit(":"), value))


def _halves(columns: Sequence[ColumnContract]):
    """The two 32-bit halves of the 64-bit hash of these columns' text (Spark computes the MD5 once)."""
    from pyspark.sql import functions as F

    digest = F.md5(F.concat(*[field_col(c, F.col(quote(c.name))) for c in columns]))
    return tuple(F.conv(F.substring(digest, start, 8), 16, 10).cast("bigint") for start in (1, 9))


def transform_row_hashes(rows, contract: TableContract):
    """(id, h1, h2, n = 1) per row of a frame holding the contract's columns with clear values.

    The row's hash h = h1 * 2^32 + h2 (modulo 2^64) is the source's: its plain part's hash plus its PII
    part's. Spark keeps 32-bit halves so that it sums them as longs (exact up to 2^31 rows) where a
    64-bit sum would overflow."""
    from pyspark.sql import functions as F

    h1, h2 = _halves(plain_part(contract))
    if contract.pii_columns:
        p1, p2 = _halves(pii_part(contract))
        h1, h2 = h1 + p1, h2 + p2
    key = F.col(quote(contract.primary_key)).cast("bigint").alias("id")
    return rows.select(key, h1.alias("h1"), h2.alias("h2"), F.lit(1).alias("n"))


def transform_silver_hashes(silver, restricted, contract: TableContract):
    """(id, h1, h2, n) of silver with no join: silver's rows hash their plain part (n = 1) and, with PII,
    the restricted table's rows their PII part (n = 0). Summed per range, or per id, they make the same
    numbers as the rows in clear; joining the two tables on id cost Spark a shuffle of both."""
    from pyspark.sql import functions as F

    key = F.col(quote(contract.primary_key)).cast("bigint").alias("id")
    h1, h2 = _halves(plain_part(contract))
    plain = silver.select(key, h1.alias("h1"), h2.alias("h2"), F.lit(1).alias("n"))
    if not contract.pii_columns:
        return plain
    p1, p2 = _halves(pii_part(contract))
    return plain.unionByName(restricted.select(key, p1.alias("h1"), p2.alias("h2"), F.lit(0).alias("n")))


def transform_range_digests(hashes, ranges: Sequence[Range], parts: int):
    """Spark twin of :func:`digests_sql` over a frame of (id, h1, h2, n): columns r, part, n, s1, s2
    (sum(h) = s1 * 2^32 + s2)."""
    from pyspark.sql import functions as F

    bounds = hashes.sparkSession.createDataFrame(
        [(i, r.lo, r.hi) for i, r in enumerate(ranges)], "r int, lo bigint, hi bigint"
    )
    joined = hashes.join(F.broadcast(bounds), (F.col("id") >= F.col("lo")) & (F.col("id") < F.col("hi")))
    part = F.expr(f"(id - lo) * {parts} div (hi - lo)")
    return joined.groupBy("r", part.alias("part")).agg(
        F.sum("n").alias("n"), F.sum("h1").alias("s1"), F.sum("h2").alias("s2")
    )


def transform_first_level(hashes, root: Range, parts: int):
    """The first level over a frame of (id, h1, h2, n): per part of ``root`` (0 .. parts - 1) and for the ids
    below it (part -1) and above it (part ``parts``): n, s1, s2 and the lowest and highest id (lo, hi)."""
    from pyspark.sql import functions as F

    part = (
        F.when(F.col("id") < root.lo, F.lit(-1))
        .when(F.col("id") >= root.hi, F.lit(parts))
        .otherwise(F.expr(f"(id - {root.lo}) * {parts} div {root.width}"))
    )
    return hashes.groupBy(part.alias("part")).agg(
        F.sum("n").alias("n"),
        F.sum("h1").alias("s1"),
        F.sum("h2").alias("s2"),
        F.min("id").alias("lo"),
        F.max("id").alias("hi"),
    )


# --- bisection (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Ids ``lo <= id < hi``."""

    lo: int
    hi: int

    @property
    def width(self) -> int:
        return self.hi - self.lo

    def split(self, parts: int) -> list[Range]:
        """The sub-ranges whose ids have part index k = (id - lo) * parts div width, k = 0..parts-1.

        Part k starts at the first id with (id - lo) * parts >= k * width, i.e. lo + ceil(k * width / parts);
        parts that hold no id (a range narrower than ``parts``) are left out.
        """
        starts = [self.lo + -(-k * self.width // parts) for k in range(parts + 1)]
        return [Range(a, b) for a, b in zip(starts, starts[1:], strict=False) if b > a]

    def part(self, parts: int, k: int) -> Range:
        start = self.lo + -(-k * self.width // parts)
        end = self.lo + -(-(k + 1) * self.width // parts)
        return Range(start, end)


Digest = tuple[int, int]  # rows, sum(h) modulo 2^64


def differing_parts(
    source: dict[tuple[int, int], Digest], silver: dict[tuple[int, int], Digest]
) -> list[tuple[int, int, int]]:
    """(range index, part, larger row count) of every part whose digests differ (a part missing on one side
    has no rows there)."""
    empty: Digest = (0, 0)
    out = []
    for key in sorted(set(source) | set(silver)):
        a, b = source.get(key, empty), silver.get(key, empty)
        if a != b:
            out.append((key[0], key[1], max(a[0], b[0])))
    return out


def spark_row_hash(row) -> int:
    """A row of :func:`transform_row_hashes` (or per-id sums of :func:`transform_silver_hashes`) as the
    64-bit hash the source computes."""
    return u64((row["h1"] << 32) + row["h2"])


def differing_ids(source: dict[int, int], silver: dict[int, int]) -> list[int]:
    return sorted(i for i in set(source) | set(silver) if source.get(i) != silver.get(i))


# --- one table -------------------------------------------------------------------------------------


@dataclass
class TableReconciliation:
    table: str
    status: str
    watermark: datetime | None = None
    source_rows: int = 0
    silver_rows: int = 0
    differing: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    ranges_compared: int = 0
    seconds: float = 0.0
    repaired: int = 0
    repair_run_id: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "watermark": format_ts(self.watermark) if self.watermark else None,
            "source_rows": self.source_rows,
            "silver_rows": self.silver_rows,
            "rows_differing": len(self.differing),
            "differing_ids": self.differing[:MAX_RECORDED_IDS],
            "rows_pending": len(self.pending),
            "ids_repaired": self.repaired,
            "ranges_compared": self.ranges_compared,
            "seconds": round(self.seconds, 2),
            "repair_run_id": self.repair_run_id,
            "detail": self.detail,
        }


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _source_digests(engine, contract, dialect, bound, ranges, parts) -> dict[tuple[int, int], Digest]:
    out: dict[tuple[int, int], Digest] = {}
    with engine.connect() as conn:
        for offset, chunk in (
            (o, ranges[o : o + MAX_RANGES_PER_QUERY]) for o in range(0, len(ranges), MAX_RANGES_PER_QUERY)
        ):
            for r, part, n, s, sp in conn.execute(text(digests_sql(contract, dialect, bound, chunk, parts))):
                out[(offset + int(r), int(part))] = (int(n), source_row_hash(s or 0, sp or 0))
    return out


def _silver_digests(hashes, ranges, parts) -> dict[tuple[int, int], Digest]:
    out: dict[tuple[int, int], Digest] = {}
    for offset in range(0, len(ranges), MAX_RANGES_PER_QUERY):
        chunk = ranges[offset : offset + MAX_RANGES_PER_QUERY]
        for row in transform_range_digests(hashes, chunk, parts).collect():
            out[(offset + row["r"], row["part"])] = (row["n"], u64(((row["s1"] or 0) << 32) + (row["s2"] or 0)))
    return out


def _leaf_rows(engine, contract, dialect, bound, hashes, ranges) -> tuple[dict, dict]:
    from pyspark.sql import functions as F

    source: dict[int, int] = {}
    silver: dict[int, int] = {}
    with engine.connect() as conn:
        for chunk in _chunks(ranges, MAX_RANGES_PER_QUERY):
            for i, h, hp in conn.execute(text(leaf_rows_sql(contract, dialect, bound, chunk))):
                source[int(i)] = source_row_hash(h, hp)
            per_id = hashes.where(_spans(chunk)).groupBy("id").agg(F.sum("h1").alias("h1"), F.sum("h2").alias("h2"))
            for row in per_id.collect():
                silver[row["id"]] = spark_row_hash(row)
    return source, silver


def _pending(engine, contract: TableContract, bound: datetime, ids: list[int]) -> set[int]:
    """Of ``ids``, those the source changed after ``bound`` (the next sync takes them)."""
    pending: set[int] = set()
    pk, wm = contract.primary_key, contract.watermark
    with engine.connect() as conn:
        for chunk in _chunks(ids, 10_000):
            listed = ", ".join(str(int(i)) for i in chunk)
            statement = f"SELECT {pk} FROM {contract.table} WHERE {pk} IN ({listed}) AND {wm} > '{format_ts(bound)}'"
            pending.update(int(r[0]) for r in conn.execute(text(statement)))
    return pending


def silver_hashes(spark, settings: Settings, contract: TableContract):
    """(id, h1, h2, n) of silver, PII in clear from the restricted table (:func:`transform_silver_hashes`)."""
    silver = spark.table(silver_table(settings, contract.table))
    restricted = spark.table(restricted_table(settings, contract.table)) if contract.pii_columns else None
    return transform_silver_hashes(silver, restricted, contract)


@dataclass
class FirstLevel:
    """A table's first level, its source side asked for ahead (see :func:`reconcile`): the source's id span
    (``None``: the table holds no row) and the future of its digests."""

    root: Range | None
    source: Future | None


def start_first_level(pool, engine, contract: TableContract, dialect: str, bound: datetime, parts: int) -> FirstLevel:
    pk = contract.primary_key
    with engine.connect() as conn:  # the key's index answers this without a scan
        lo, hi = conn.execute(text(f"SELECT min({pk}), max({pk}) FROM {contract.table}")).one()
    if lo is None:
        return FirstLevel(None, None)
    root = Range(int(lo), int(hi) + 1)
    return FirstLevel(root, pool.submit(_source_digests, engine, contract, dialect, bound, [root], parts))


def _spans(ranges: Sequence[Range]):
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a | b, [(F.col("id") >= r.lo) & (F.col("id") < r.hi) for r in ranges])


def reconcile_table(
    spark,
    settings: Settings,
    engine: Engine,
    dialect: str,
    contract: TableContract,
    bound: datetime,
    first: FirstLevel | None = None,
) -> TableReconciliation:
    """Compare one table's silver with the source up to ``bound``; returns the differing and pending ids.

    The first level covers the source's id span; silver's ids outside it (the source holds no row there)
    are counted in the same Spark job and listed. Only when something differs is silver hashed again,
    restricted to the differing ranges and cached for the levels below: a table that agrees costs one
    pass over silver and one hashing query in the source.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.perf_counter()
    parts, leaf = max(settings.reconcile_parts, 2), max(settings.reconcile_leaf_rows, 1)
    result = TableReconciliation(contract.table, "in_sync", watermark=bound)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-source")
    hashes = silver_hashes(spark, settings, contract)
    cached = None
    try:
        if first is None:
            first = start_first_level(pool, engine, contract, dialect, bound, parts)
        level: list[Range] = []
        leaves: list[Range] = []

        def descend(source, silver, ranges: list[Range]) -> list[Range]:
            nxt: list[Range] = []
            for r, part, rows in differing_parts(source, silver):
                sub = ranges[r].part(parts, part)
                (leaves if rows <= leaf or sub.width <= parts else nxt).append(sub)
            return nxt

        if first.root is None or first.source is None:  # the source holds no row: all of silver differs
            stats = hashes.agg(F.sum("n").alias("n"), F.min("id").alias("lo"), F.max("id").alias("hi")).first()
            result.silver_rows = stats["n"] or 0
            if stats["lo"] is not None:
                leaves.append(Range(stats["lo"], stats["hi"] + 1))
        else:
            result.ranges_compared = 1
            silver: dict[tuple[int, int], Digest] = {}
            for row in transform_first_level(hashes, first.root, parts).collect():
                result.silver_rows += row["n"]
                if 0 <= row["part"] < parts:
                    silver[(0, row["part"])] = (row["n"], u64(((row["s1"] or 0) << 32) + (row["s2"] or 0)))
                else:  # below or above the source's ids: every one of these rows differs
                    leaves.append(Range(row["lo"], row["hi"] + 1))
            source = first.source.result()
            result.source_rows = sum(n for n, _ in source.values())
            level = descend(source, silver, [first.root])
        if level or leaves:
            cached = hashes = hashes.where(_spans(level + leaves)).persist(StorageLevel.MEMORY_AND_DISK)
        while level:
            result.ranges_compared += len(level)
            # the source database and Spark hash at the same time: the level costs the slower of the two
            pending_source = pool.submit(_source_digests, engine, contract, dialect, bound, level, parts)
            silver = _silver_digests(hashes, level, parts)
            level = descend(pending_source.result(), silver, level)
        if leaves:
            source_rows, silver_rows = _leaf_rows(engine, contract, dialect, bound, hashes, leaves)
            found = differing_ids(source_rows, silver_rows)
            pending = _pending(engine, contract, bound, found) if found else set()
            result.differing = [i for i in found if i not in pending]
            result.pending = sorted(pending)
        result.status = "differs" if result.differing else "in_sync"
        return result
    finally:
        pool.shutdown(wait=True)
        if cached is not None:
            cached.unpersist()
        result.seconds = time.perf_counter() - started


# --- the whole run ---------------------------------------------------------------------------------


def reconcile(
    spark,
    settings: Settings,
    tables: list[str] | None = None,
    *,
    repair: bool = False,
    gate: Gate | None = None,
) -> dict[str, Any]:
    """Reconcile every (or the named) contract table; with ``repair``, re-sync the differing ids (gated).

    Returns ``{"run_id", "tables": {table: {...}}, "repair": manifest or None}`` and appends one row per
    table to ``ops.reconcile_runs``.
    """
    from mo.oltp.db import check_connection
    from spark_jobs.session import register_catalog
    from spark_jobs.sync import _contracts

    contracts = _contracts(tables, None)
    url = settings.resolved_source_url
    dialect = jdbc_source(url).dialect
    engine = source_engine(url)
    run_id = f"{utcnow():%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    results: dict[str, TableReconciliation] = {}
    # The source hashes every table's first level in the background, in the order Spark takes them, so the
    # source's work and Spark's overlap across tables, not only within one: the run costs about the
    # slower side's total rather than the sum of each table's slower side.
    ahead = ThreadPoolExecutor(max_workers=SOURCE_QUERIES_AHEAD, thread_name_prefix="reconcile-ahead")
    try:
        check_connection(engine)
        register_catalog(spark, settings)
        marks = read_watermarks(spark, settings)
        todo: dict[str, tuple[TableContract, datetime, FirstLevel]] = {}
        for name, contract in contracts.items():
            bound = marks.get(name)
            if bound is None or not spark.catalog.tableExists(silver_table(settings, name)):
                results[name] = TableReconciliation(name, "skipped", detail="never synced to silver")
                continue
            first = start_first_level(ahead, engine, contract, dialect, bound, max(settings.reconcile_parts, 2))
            todo[name] = (contract, bound, first)
        for name, (contract, bound, first) in todo.items():
            results[name] = reconcile_table(spark, settings, engine, dialect, contract, bound, first)
            r = results[name]
            log.info("%s: %d differing, %d pending (%.1fs)", name, len(r.differing), len(r.pending), r.seconds)
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)
        engine.dispose()
    manifest = None
    to_repair = {name: r.differing for name, r in results.items() if r.differing}
    if repair and to_repair:
        manifest = _repair(spark, settings, to_repair, results, gate)
    record_reconcile_runs(spark, settings, run_id, results)
    return {
        "run_id": run_id,
        "tables": {name: r.as_dict() for name, r in results.items()},
        "repair": manifest,
    }


def _repair(spark, settings, to_repair: dict[str, list[int]], results, gate) -> dict[str, Any] | None:
    from spark_jobs.sync import run_sync

    try:
        manifest = run_sync(
            spark, settings, tables=list(to_repair), gate=gate, full_refresh=list(to_repair), repair_ids=to_repair
        )
    except MoError as exc:
        reason = str(exc).splitlines()[0][:500]
        for name in to_repair:
            results[name].status, results[name].detail = "repair_failed", reason
        return None
    for name, ids in to_repair.items():
        results[name].status, results[name].repaired = "repaired", len(ids)
        results[name].repair_run_id = manifest["run_id"]
    return manifest


def record_reconcile_runs(spark, settings: Settings, run_id: str, results: dict[str, TableReconciliation]) -> None:
    ensure_ops_table(spark, settings, "reconcile_runs", RECONCILE_RUNS_COLUMNS)
    now = utcnow()
    rows = [{"run_id": run_id, "table": name, "reconciled_at": now, **r.as_dict()} for name, r in results.items()]
    _frame(spark, RECONCILE_RUNS_COLUMNS, rows).writeTo(ops_table(settings, "reconcile_runs")).append()


def reconcile_history(spark, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per table, its latest reconciliation (``ops.reconcile_runs``), timestamps as ISO text."""
    name = ops_table(settings, "reconcile_runs")
    if not spark.catalog.tableExists(name):
        return {}
    rows = spark.sql(
        f"""
        SELECT `table`, status, rows_differing, rows_pending, ids_repaired, detail,
               date_format(reconciled_at, "yyyy-MM-dd'T'HH:mm:ss") AS reconciled_at
        FROM (SELECT *, row_number() OVER (PARTITION BY `table` ORDER BY reconciled_at DESC) AS rank FROM {name})
        WHERE rank = 1
        """
    ).collect()
    return {r["table"]: r.asDict() for r in rows}


def reconcile_due(spark, settings: Settings) -> bool:
    """Whether the last reconciliation of any table is older than ``MO_RECONCILE_INTERVAL_HOURS``."""
    history = reconcile_history(spark, settings)
    if not history or set(history) != set(load_source_contracts()):
        return True
    oldest = min(datetime.fromisoformat(r["reconciled_at"]) for r in history.values())
    return (utcnow() - oldest).total_seconds() >= settings.reconcile_interval_hours * 3600


__all__ = [
    "RECONCILE_RUNS_COLUMNS",
    "Range",
    "field_col",
    "field_sql",
    "reconcile",
    "reconcile_due",
    "reconcile_history",
    "reconcile_table",
    "transform_range_digests",
    "transform_row_hashes",
]
