"""The serving store's tables, read from schemas/serving/serving.yaml and the mart contracts it points at.

Nothing here restates a column list: the mart copies take their columns from schemas/marts/<mart>.yaml,
the store's own tables from schemas/serving/serving.yaml, and the DDL for each dialect is generated from
those. Identifiers are checked once here, so the SQL built from them elsewhere needs no quoting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import pyarrow as pa
import yaml

from mo.config import SCHEMAS_DIR
from mo.errors import ContractViolation

Dialect = Literal["postgresql", "sqlite"]

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# Contract type -> column type in each serving database. SQLite keeps dates and timestamps as ISO-8601 text
# (UTC, 'YYYY-MM-DD' and Python's isoformat(sep=" "): 'YYYY-MM-DD HH:MM:SS[.ffffff]'), which compares
# correctly as text with what the rule compiler binds and is what SQLite's date functions read; booleans 0/1.
SQL_TYPES: dict[str, dict[Dialect, str]] = {
    "bigint": {"postgresql": "bigint", "sqlite": "INTEGER"},
    "int": {"postgresql": "integer", "sqlite": "INTEGER"},
    "string": {"postgresql": "text", "sqlite": "TEXT"},
    "boolean": {"postgresql": "boolean", "sqlite": "INTEGER"},
    "date": {"postgresql": "date", "sqlite": "TEXT"},
    "timestamp": {"postgresql": "timestamptz", "sqlite": "TEXT"},
    "double": {"postgresql": "double precision", "sqlite": "REAL"},
    "json": {"postgresql": "jsonb", "sqlite": "TEXT"},
}
# The Arrow type of each contract type in the batches a publish takes (mo.serving_store.extract yields these).
ARROW_TYPES: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "int": pa.int32(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "double": pa.float64(),
    "json": pa.string(),
}


@dataclass(frozen=True)
class ServingColumn:
    name: str
    type: str  # a key of SQL_TYPES; complex mart types (map<..>, array<..>) become "json"
    nullable: bool
    mart_type: str  # the type in the source contract (what Spark reads)

    def sql_type(self, dialect: Dialect) -> str:
        return SQL_TYPES[self.type][dialect]


@dataclass(frozen=True)
class ServingTable:
    name: str
    description: str
    columns: tuple[ServingColumn, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...]
    from_mart: str | None = None
    # analytics contract only: the dbt model in the lake's marts schema this table is a copy of (None: computed
    # by the platform in Python, mo/analytics.py)
    model: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class ServingContract:
    schema: str
    event_retention_days: int
    tables: dict[str, ServingTable]  # published (swapped) tables, in publish order
    refreshes: ServingTable  # the audit table, never swapped


def _serving_type(mart_type: str, where: str) -> str:
    if mart_type in SQL_TYPES:
        return mart_type
    if mart_type.startswith(("map<", "array<", "struct<")):
        return "json"
    raise ContractViolation(f"{where}: type {mart_type!r} has no serving column type")


def _check_identifier(name: str, where: str) -> str:
    if not IDENTIFIER.match(name):
        raise ContractViolation(f"{where}: {name!r} is not a lowercase SQL identifier")
    return name


def _columns(raw: list[dict], where: str) -> tuple[ServingColumn, ...]:
    return tuple(
        ServingColumn(
            name=_check_identifier(c["name"], where),
            type=_serving_type(c["type"], f"{where}.{c['name']}"),
            nullable=bool(c.get("nullable", True)),
            mart_type=c["type"],
        )
        for c in raw
    )


def _keys(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _table(name: str, raw: dict, marts_dir: Path, where: str) -> ServingTable:
    mart = raw.get("from_mart")
    if mart:
        mart_path = marts_dir / f"{mart}.yaml"
        if not mart_path.exists():
            raise ContractViolation(f"{where}: from_mart {mart!r} has no contract at {mart_path}")
        mart_raw = yaml.safe_load(mart_path.read_text(encoding="utf-8"))
        columns = _columns(mart_raw["columns"], mart_path.name)
        primary_key = _keys(mart_raw.get("primary_key"))
    else:
        columns = _columns(raw["columns"], where)
        primary_key = _keys(raw.get("primary_key"))
    names = {c.name for c in columns}
    indexes = tuple(tuple(ix) for ix in raw.get("indexes") or ())
    for col in [*primary_key, *(c for ix in indexes for c in ix)]:
        if col not in names:
            raise ContractViolation(f"{where}: key or index column {col!r} is not a column of {name}")
    return ServingTable(
        name=_check_identifier(name, where),
        description=raw.get("description", ""),
        columns=columns,
        primary_key=primary_key,
        indexes=indexes,
        from_mart=mart,
        model=_check_identifier(raw["model"], f"{where}.model") if raw.get("model") else None,
    )


@cache
def _load(path: str, marts_dir: str) -> ServingContract:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    name = Path(path).name
    try:
        tables = {t: _table(t, spec, Path(marts_dir), f"{name}: tables.{t}") for t, spec in raw["tables"].items()}
        # A second contract (schemas/serving/analytics.yaml) keeps its audit rows in the serving store's shape.
        refreshes_raw = raw.get("refreshes") or _serving_refreshes_raw()
        refreshes = _table("refreshes", refreshes_raw, Path(marts_dir), f"{name}: refreshes")
        return ServingContract(
            schema=_check_identifier(raw["schema"], name),
            event_retention_days=int(raw.get("event_retention_days", 0)),
            tables=tables,
            refreshes=refreshes,
        )
    except KeyError as exc:
        raise ContractViolation(f"{name}: missing key {exc}") from None


def _serving_refreshes_raw() -> dict:
    raw = yaml.safe_load((SCHEMAS_DIR / "serving" / "serving.yaml").read_text(encoding="utf-8"))
    return raw["refreshes"]


def load_analytics_contract(path: Path | None = None) -> ServingContract:
    """The analytics contract (schemas/serving/analytics.yaml): the pre-aggregated marts the dashboards read,
    published by the same atomic view swap into schema ``analytics``."""
    return _load(str(path or SCHEMAS_DIR / "serving" / "analytics.yaml"), str(SCHEMAS_DIR / "marts"))


def load_serving_contract(path: Path | None = None, marts_dir: Path | None = None) -> ServingContract:
    """The serving contract (schemas/serving/serving.yaml with the mart contracts it refers to)."""
    return _load(str(path or SCHEMAS_DIR / "serving" / "serving.yaml"), str(marts_dir or SCHEMAS_DIR / "marts"))


def create_table_sql(table: ServingTable, qualified_name: str, dialect: Dialect, *, with_primary_key: bool) -> str:
    """CREATE TABLE for one physical table. Bulk loads create it without the key and add the key afterwards
    (PostgreSQL), which is faster than maintaining the index row by row and checks uniqueness once."""
    lines = [f"{c.name} {c.sql_type(dialect)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
    if with_primary_key and table.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"CREATE TABLE {qualified_name} (\n    " + ",\n    ".join(lines) + "\n)"
