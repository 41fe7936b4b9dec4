"""Data contracts from schemas/: the single description of source tables and events other code reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from mo.config import SCHEMAS_DIR
from mo.errors import ContractViolation

COLUMN_TYPES = {"bigint", "int", "string", "boolean", "timestamp", "date", "double"}


@dataclass(frozen=True)
class ColumnContract:
    name: str
    type: str  # bigint | int | string | boolean | timestamp | date | double | decimal(p,s)
    nullable: bool = True
    enum: tuple[str, ...] | None = None
    pii: str | None = None  # name | id_number | phone | identifier | plate | address
    references: str | None = None  # "<table>.<column>"

    @property
    def spark_type(self) -> str:
        return self.type


@dataclass(frozen=True)
class TableContract:
    table: str
    description: str
    primary_key: str
    watermark: str
    soft_delete: str
    partitioned_read: bool
    schema_evolution: str  # strict | additive
    columns: tuple[ColumnContract, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnContract:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.table}.{name}")

    @property
    def pii_columns(self) -> list[ColumnContract]:
        return [c for c in self.columns if c.pii]

    @property
    def foreign_keys(self) -> list[ColumnContract]:
        return [c for c in self.columns if c.references and c.references.split(".")[0] != self.table]


def _parse_table(path: Path) -> TableContract:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        columns = tuple(
            ColumnContract(
                name=c["name"],
                type=c["type"],
                nullable=bool(c.get("nullable", True)),
                enum=tuple(c["enum"]) if c.get("enum") else None,
                pii=c.get("pii"),
                references=c.get("references"),
            )
            for c in raw["columns"]
        )
        contract = TableContract(
            table=raw["table"],
            description=raw.get("description", ""),
            primary_key=raw["primary_key"],
            watermark=raw["watermark"],
            soft_delete=raw["soft_delete"],
            partitioned_read=bool(raw.get("partitioned_read", False)),
            schema_evolution=raw.get("schema_evolution", "strict"),
            columns=columns,
        )
    except KeyError as exc:
        raise ContractViolation(f"{path.name}: missing key {exc}") from None
    for c in contract.columns:
        if c.type not in COLUMN_TYPES and not c.type.startswith("decimal("):
            raise ContractViolation(f"{path.name}: column {c.name} has unknown type {c.type!r}")
    if contract.schema_evolution not in ("strict", "additive"):
        raise ContractViolation(f"{path.name}: schema_evolution must be strict or additive")
    return contract


@cache
def _load_sources(directory: str) -> dict[str, TableContract]:
    contracts = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        contract = _parse_table(path)
        contracts[contract.table] = contract
    return _in_dependency_order(contracts)


def _in_dependency_order(contracts: dict[str, TableContract]) -> dict[str, TableContract]:
    ordered: dict[str, TableContract] = {}

    def visit(name: str, stack: tuple[str, ...] = ()) -> None:
        if name in ordered:
            return
        if name in stack:
            raise ContractViolation(f"foreign keys form a cycle: {' -> '.join(stack + (name,))}")
        for fk in contracts[name].foreign_keys:
            parent = fk.references.split(".")[0]  # type: ignore[union-attr]
            if parent not in contracts:
                raise ContractViolation(f"{name}.{fk.name} references unknown table {parent}")
            visit(parent, stack + (name,))
        ordered[name] = contracts[name]

    for name in sorted(contracts):
        visit(name)
    return ordered


def load_source_contracts(directory: Path | None = None) -> dict[str, TableContract]:
    """Source table contracts keyed by table, parents before children."""
    return _load_sources(str(directory or SCHEMAS_DIR / "sources"))


@cache
def load_event_schemas(directory: str | None = None) -> dict[str, dict]:
    """JSON Schemas of events keyed by event_type (schemas/events/<event_type>.schema.json)."""
    base = Path(directory) if directory else SCHEMAS_DIR / "events"
    schemas = {}
    for path in sorted(base.glob("*.schema.json")):
        schemas[path.name.removesuffix(".schema.json")] = json.loads(path.read_text(encoding="utf-8"))
    return schemas
