"""Candidate silver frames built from the contracts: valid by construction, so a test breaks one thing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from mo.contracts import ColumnContract, TableContract

ROWS = 4


def _value(column: ColumnContract, table: str, row: int) -> Any:
    if column.enum:
        return column.enum[row % len(column.enum)]
    if column.references:
        parent = column.references.split(".")[0]
        # Every row points at parent id 1, which every parent frame has; self-references stay empty.
        return None if parent == table else 1
    kind = column.type
    if kind in ("bigint", "int"):
        return row + 1
    if kind == "string":
        return f"{column.name}-{row + 1}"
    if kind == "boolean":
        return row % 2 == 0
    if kind == "timestamp":
        return dt.datetime(2026, 1, 1, 8, 0) + dt.timedelta(hours=row)
    if kind == "date":
        return dt.date(2026, 1, 1) + dt.timedelta(days=row)
    if kind == "double":
        return 1.5 * row
    if kind.startswith("decimal("):
        return Decimal(f"{row + 1}.25")
    raise AssertionError(f"no sample value for type {kind}")


def silver_schema(contract: TableContract) -> list[tuple[str, str]]:
    """Silver's columns: the contract's, with a PII column replaced by its token (what the gate must ignore)."""
    return [(f"{c.name}_token" if c.pii else c.name, "string" if c.pii else c.type) for c in contract.columns]


def silver_rows(contract: TableContract, rows: int = ROWS) -> list[dict[str, Any]]:
    out = []
    for row in range(rows):
        record = {}
        for c in contract.columns:
            if c.pii:
                record[f"{c.name}_token"] = f"tok-{row}"
            elif c.name == contract.soft_delete:
                record[c.name] = None  # live rows only
            elif c.nullable and row == 0:
                record[c.name] = None  # a null must pass wherever the contract allows one (enums, references)
            else:
                record[c.name] = _value(c, contract.table, row)
        out.append(record)
    return out


def make_frame(spark, contract: TableContract, rows: list[dict[str, Any]]):
    schema = silver_schema(contract)
    ddl = ", ".join(f"`{name}` {kind}" for name, kind in schema)
    return spark.createDataFrame([tuple(r[name] for name, _ in schema) for r in rows], ddl)


def persistent_rdds(spark) -> int:
    """How many RDDs the session holds cached (a cached DataFrame's buffers are one, once computed)."""
    return spark.sparkContext._jsc.getPersistentRDDs().size()
