"""A tiny source world for sync tests: rows written straight into a migrated source DB, shaped by the contracts.

Values come from each column's contract (type, enum, pii kind, references), so the helper follows the
contracts instead of restating them. Time is an explicit clock the test moves, so watermarks and
late-arriving rows are exact.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from mo.contracts import ColumnContract, TableContract, load_source_contracts
from mo.oltp.models import Base
from spark_jobs.lake import silver_columns
from spark_jobs.pii import mask, token

T0 = datetime(2026, 3, 2, 8, 0, 0, 123456)
SURNAMES = "张王李赵刘陈杨黄周吴"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军"]
PLACES = [("浙江", "杭州"), ("广东", "深圳"), ("四川", "成都"), ("北京", "北京")]
AUDIT = ("created_at", "updated_at", "deleted_at")


class SourceWorld:
    """Writes rows per contract and keeps the clock; ``live_rows`` reads back what silver must equal."""

    def __init__(self, engine: Engine, *, start: datetime = T0, seed: int = 7) -> None:
        self.engine = engine
        self.contracts: dict[str, TableContract] = load_source_contracts()
        self.clock = start
        self.rng = random.Random(seed)
        self.next_id: dict[str, int] = defaultdict(lambda: 1)
        self.ids: dict[str, list[int]] = defaultdict(list)

    def tick(self, minutes: float = 1) -> datetime:
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def _value(self, table: str, col: ColumnContract, row_id: int) -> Any:
        rng = self.rng
        if col.references:
            parent = col.references.split(".")[0]
            choices = [i for i in self.ids[parent] if not (parent == table and i == row_id)]
            if parent == table or not choices:
                return None if col.nullable else row_id
            return rng.choice(choices)
        if col.enum:
            return rng.choice(col.enum)
        if col.pii == "name":
            return rng.choice(SURNAMES) + rng.choice(GIVEN)
        if col.pii == "id_number":
            return f"3301{rng.randint(10**11, 10**12 - 1)}{rng.randint(0, 9)}" + rng.choice("0123456789X")
        if col.pii == "phone":
            return f"13{rng.randint(0, 9)}{rng.randint(10**7, 10**8 - 1)}"
        if col.pii == "identifier":
            return f"id{rng.getrandbits(48):012x}"
        if col.pii == "plate":
            return f"浙A·{rng.randint(10000, 99999)}"
        if col.pii == "address":
            return f"浙江省杭州市西湖区文三路{rng.randint(1, 999)}号"
        if col.type == "string":
            if col.name in ("province", "incident_province"):
                return rng.choice(PLACES)[0]
            if col.name in ("city", "incident_city"):
                return rng.choice(PLACES)[1]
            return f"{col.name[:4]}-{row_id}"
        if col.type in ("int", "bigint"):
            return rng.randint(1, 100_000)
        if col.type == "boolean":
            return rng.random() < 0.5
        if col.type == "double":
            return round(rng.uniform(0, 1000), 3)
        if col.type.startswith("decimal("):
            precision, scale = (int(x) for x in col.type[len("decimal(") : -1].split(","))
            whole = min(precision - scale, 7)
            return Decimal(rng.randint(0, 10 ** (whole + scale) - 1)).scaleb(-scale)
        if col.type == "date":
            return date(2020, 1, 1) + timedelta(days=rng.randint(0, 2000))
        if col.type == "timestamp":
            return self.clock - timedelta(hours=rng.randint(1, 500), microseconds=rng.randint(0, 999_999))
        raise AssertionError(f"no generator for {table}.{col.name} {col.type}")

    def row(self, table: str, row_id: int, at: datetime, **overrides: Any) -> dict[str, Any]:
        contract = self.contracts[table]
        values: dict[str, Any] = {}
        for col in contract.columns:
            if col.name == contract.primary_key:
                values[col.name] = row_id
            elif col.name in AUDIT:
                values[col.name] = None if col.name == contract.soft_delete else at
            elif col.nullable and not col.references and self.rng.random() < 0.2:
                values[col.name] = None  # some nulls in every nullable column
            else:
                values[col.name] = self._value(table, col, row_id)
        values.update(overrides)
        return values

    def insert(self, table: str, count: int = 1, *, at: datetime | None = None, **overrides: Any) -> list[int]:
        rows = []
        for _ in range(count):
            row_id = self.next_id[table]
            self.next_id[table] += 1
            rows.append(self.row(table, row_id, at or self.tick(), **overrides))
            self.ids[table].append(row_id)
        with self.engine.begin() as conn:
            conn.execute(insert(Base.metadata.tables[table]), rows)
        return [r["id"] for r in rows]

    def update(self, table: str, row_id: int, *, at: datetime | None = None, **values: Any) -> None:
        """Change a row (new values for every plain column unless given) and bump its updated_at."""
        contract = self.contracts[table]
        if not values:
            fresh = self.row(table, row_id, self.clock)
            values = {
                c.name: fresh[c.name]
                for c in contract.columns
                if c.name not in (contract.primary_key, *AUDIT) and not c.references
            }
        values["updated_at"] = at or self.tick()
        with self.engine.begin() as conn:
            t = Base.metadata.tables[table]
            conn.execute(update(t).where(t.c.id == row_id).values(**values))

    def soft_delete(self, table: str, row_id: int, *, at: datetime | None = None) -> None:
        when = at or self.tick()
        self.update(table, row_id, at=when, deleted_at=when)

    def seed(self, customers: int = 12) -> None:
        """Every contract table, parents first, with enough rows to exercise partitioned reads."""
        self.insert("organizations", 3)
        self.insert("agents", 4)
        self.insert("products", 3)
        self.insert("customers", customers)
        self.insert("policies", customers + 4)
        self.insert("claims", customers // 2)
        self.insert("sales_recordings", customers // 2)
        self.insert("consents", customers)
        self.insert("complaints", max(customers // 4, 1))

    def live_rows(self, table: str) -> list[dict[str, Any]]:
        t = Base.metadata.tables[table]
        contract = self.contracts[table]
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c[contract.soft_delete].is_(None)).order_by(t.c.id)).mappings()
            return [dict(r) for r in rows]


def expected_silver(contract: TableContract, rows: list[dict[str, Any]], key: bytes) -> list[dict[str, Any]]:
    """What silver must hold for these live source rows: PII as tokens and masks, nothing in clear."""
    out = []
    for row in rows:
        shaped: dict[str, Any] = {}
        for col in contract.columns:
            if not col.pii:
                shaped[col.name] = row[col.name]
                continue
            if f"{col.name}_token" in dict(silver_columns(contract)):
                shaped[f"{col.name}_token"] = token(key, col.pii, row[col.name])
            if f"{col.name}_masked" in dict(silver_columns(contract)):
                shaped[f"{col.name}_masked"] = mask(col.pii, row[col.name])
        out.append({k: canonical(v) for k, v in shaped.items()})
    return out


def canonical(value: Any) -> Any:
    """One comparable form for values from SQLAlchemy and from Spark."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def frame_rows(df, order_by: str = "id") -> list[dict[str, Any]]:
    """Rows of a Spark frame with timestamps as UTC text (PySpark would convert them to local time)."""
    from pyspark.sql import functions as F

    cols = [
        F.date_format(F.col(f"`{name}`"), "yyyy-MM-dd HH:mm:ss.SSSSSS").alias(name)
        if typ == "timestamp"
        else F.col(f"`{name}`")
        for name, typ in df.dtypes
    ]
    rows = df.select(*cols).orderBy(order_by).collect()
    return [{k: canonical(v) for k, v in r.asDict().items()} for r in rows]


@dataclass
class Failure:
    table: str
    expectation: str
    detail: str


@dataclass
class Verdict:
    passed: bool
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(f"silver.{f.table}: {f.expectation} failed: {f.detail}" for f in self.failures) or "passed"


def count_gate(spark, settings, tables, source_counts, scopes=None, pending=None) -> Verdict:
    """Candidate silver of every synced table must hold exactly the source's live rows (by count), the
    ids the source changed after the run's view (``pending``) left out as the real gate does."""
    pending = pending or {}

    def counted(name):
        if name not in pending:
            return tables[name].count()
        return tables[name].join(pending[name].withColumnRenamed("k", "id"), "id", "left_anti").count()

    observed = {name: counted(name) for name in source_counts}
    failures = [
        Failure(name, "expect_table_row_count_to_equal(source)", f"{observed[name]} != {expected}")
        for name, expected in source_counts.items()
        if observed[name] != expected
    ]
    return Verdict(not failures, failures)


@contextmanager
def writes_while_extracting(table: str, write: Callable[[], None]) -> Iterator[None]:
    """Within the block, ``write()`` runs against the source right after ``table``'s window is planned and
    before its rows are read: what an application writing to the source during a sync does."""
    import spark_jobs.sync as sync

    planned = sync.plan_window

    def plan_then_write(engine, contract, lower, **kwargs):
        window = planned(engine, contract, lower, **kwargs)
        if contract.table == table:
            write()
        return window

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync, "plan_window", plan_then_write)
        yield
