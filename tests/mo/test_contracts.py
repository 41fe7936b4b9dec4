"""The source contracts in schemas/ and the OLTP models describe the same tables."""

from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String

from mo.contracts import load_source_contracts
from mo.oltp.models import SOURCE_TABLES, Base


def _contract_type(column) -> str:
    t = column.type
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, DateTime):
        return "timestamp"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, Numeric):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, Integer):
        return "bigint" if column.name == "id" or column.foreign_keys or "Big" in type(t).__name__ else "int"
    if isinstance(t, String):
        return "string"
    raise AssertionError(f"unmapped type {t!r}")


def test_every_source_table_has_a_contract():
    assert set(load_source_contracts()) == set(SOURCE_TABLES)


def test_contract_columns_match_models():
    for name, contract in load_source_contracts().items():
        table = Base.metadata.tables[name]
        model = [(c.name, _contract_type(c), bool(c.nullable)) for c in table.columns]
        declared = [(c.name, c.type, c.nullable) for c in contract.columns]
        assert declared == model, name


def test_contract_foreign_keys_match_models():
    for name, contract in load_source_contracts().items():
        table = Base.metadata.tables[name]
        model = {c.name: f"{fk.column.table.name}.{fk.column.name}" for c in table.columns for fk in c.foreign_keys}
        declared = {c.name: c.references for c in contract.columns if c.references}
        assert declared == model, name


def test_contracts_list_parents_before_children():
    order = list(load_source_contracts())
    for name, contract in load_source_contracts().items():
        for fk in contract.foreign_keys:
            assert order.index(fk.references.split(".")[0]) < order.index(name)


def test_every_table_has_watermark_and_soft_delete_columns():
    for contract in load_source_contracts().values():
        names = contract.column_names
        assert {"created_at", "updated_at", "deleted_at", contract.primary_key} <= set(names)
