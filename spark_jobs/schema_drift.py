"""Compare a source table's live schema with its contract before anything is extracted.

A sync must never silently load a column whose meaning changed or drop one that vanished:

- a contract column missing from the source, or present with a type that cannot hold the contract
  type (``premium`` as VARCHAR where the contract says decimal(18,2)) -> :class:`ContractViolation`
  naming table, column, both types;
- a source column the contract does not list -> :class:`ContractViolation` naming it, unless the
  contract says ``schema_evolution: additive``. Then the column is carried through with a type derived
  from the source type and added to bronze and silver with ``ALTER TABLE ... ADD COLUMN`` (Iceberg
  schema evolution, no rewrite). An added column has no PII classification: a team that adds a column
  holding personal data must first list it in the contract (strict tables stop the sync until then).

The comparison reads the SQLAlchemy inspector, so it works the same on SQLite, MariaDB and PostgreSQL.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine, inspect
from sqlalchemy import types as sqltypes

from mo.contracts import ColumnContract, TableContract
from mo.errors import ContractViolation


def _compatible(contract_type: str, source_type: sqltypes.TypeEngine) -> bool:
    if contract_type in ("bigint", "int"):
        return isinstance(source_type, sqltypes.Integer)
    if contract_type == "string":
        return isinstance(source_type, sqltypes.String | sqltypes.Enum)
    if contract_type == "boolean":
        # MariaDB has no boolean type: BOOLEAN is TINYINT(1) and reflects as an integer
        return isinstance(source_type, sqltypes.Boolean | sqltypes.Integer)
    if contract_type == "timestamp":
        return isinstance(source_type, sqltypes.DateTime)
    if contract_type == "date":
        return isinstance(source_type, sqltypes.Date) and not isinstance(source_type, sqltypes.DateTime)
    if contract_type == "double":
        return isinstance(source_type, sqltypes.Float | sqltypes.Numeric)
    if contract_type.startswith("decimal("):
        if isinstance(source_type, sqltypes.Float) or not isinstance(source_type, sqltypes.Numeric):
            return False
        precision, scale = (int(x) for x in contract_type[len("decimal(") : -1].split(","))
        # a wider source would overflow, another scale would round: both change amounts silently
        if source_type.scale is not None and source_type.scale != scale:
            return False
        return source_type.precision is None or source_type.precision <= precision
    return False


def spark_type_for(source_type: sqltypes.TypeEngine) -> str:
    """The Spark type an added (uncontracted) source column is carried as."""
    if isinstance(source_type, sqltypes.Boolean):
        return "boolean"
    if isinstance(source_type, sqltypes.Integer):
        return "bigint"
    if isinstance(source_type, sqltypes.Float):
        return "double"
    if isinstance(source_type, sqltypes.Numeric):
        if source_type.precision is not None and source_type.scale is not None:
            return f"decimal({source_type.precision},{source_type.scale})"
        return "decimal(38,10)"
    if isinstance(source_type, sqltypes.DateTime):
        return "timestamp"
    if isinstance(source_type, sqltypes.Date):
        return "date"
    return "string"


def check_source_schema(engine: Engine, contract: TableContract) -> TableContract:
    """The contract the sync should use for this table, or ContractViolation on drift it must not absorb.

    For ``additive`` tables the returned contract has the source's extra columns appended (nullable,
    no PII kind); otherwise it is ``contract`` itself.
    """
    inspector = inspect(engine)
    table = contract.table
    if not inspector.has_table(table):
        raise ContractViolation(f"source table {table} does not exist (contract schemas/sources/{table}.yaml)")
    source_cols = {c["name"].lower(): c for c in inspector.get_columns(table)}
    for col in contract.columns:
        found = source_cols.get(col.name.lower())
        if found is None:
            raise ContractViolation(f"source column {table}.{col.name} is missing: the contract requires it")
        if not _compatible(col.type, found["type"]):
            raise ContractViolation(
                f"source column {table}.{col.name}: contract says {col.type}, source has {found['type']}"
            )
    known = {c.name.lower() for c in contract.columns}
    extra = [c for name, c in source_cols.items() if name not in known]
    if not extra:
        return contract
    if contract.schema_evolution != "additive":
        names = ", ".join(f"{table}.{c['name']} ({c['type']})" for c in extra)
        raise ContractViolation(
            f"source column {names} is not in the contract (schema_evolution: strict); "
            f"add it to schemas/sources/{table}.yaml"
        )
    added = tuple(ColumnContract(name=c["name"], type=spark_type_for(c["type"]), nullable=True) for c in extra)
    return dataclasses.replace(contract, columns=contract.columns + added)
