"""Expectation suites for silver tables, derived from the source contracts in schemas/sources/.

Nothing here restates a column list: every check comes from a contract field, so a column added to a
contract is checked from the next run on. Checks use only non-PII columns, because silver carries PII
as ``<column>_token`` / ``<column>_masked`` instead of the contract column.

Per table, in the order they appear in the suite and in Data Docs:

- the contract's non-PII columns are present (``columns``);
- the row count equals the live row count in the source at extraction (``row_count``; only for tables
  synced in this run, since only those have a fresh source count);
- the primary key is unique and not null (``primary_key``);
- non-nullable columns are not null (``not_null``);
- enum columns hold only the contract's values; a null passes where the column is nullable, and the
  not-null check catches it where it is not (``enum``);
- no soft-deleted row is in the live state (``live``);
- every ``references`` resolves in the parent's live state (``reference``), self-references included.

Referential integrity is checked inside the child's own validation: the gate adds one column per
reference holding the foreign key of rows whose parent is missing (null otherwise), computed with a
join against the parent's distinct keys, and the suite expects that column to be null. The child's row
count is unchanged, so one validation per table covers everything, and a failure reports how many rows
are orphaned plus sample keys without collecting any column to the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mo.contracts import ColumnContract, TableContract

if TYPE_CHECKING:  # importing Great Expectations takes seconds: only the gate run pays for it
    import great_expectations as gx

ORPHAN_SUFFIX = "__orphan"
SOURCE_COUNT_PARAMETER = "source_row_count"

KINDS = ("columns", "row_count", "primary_key", "not_null", "enum", "live", "reference")


def suite_name(table: str) -> str:
    return f"silver.{table}"


def count_suite_name(table: str) -> str:
    """The row-count reconciliation's own suite: it always runs on the whole table, while the table's main
    suite may run on the rows a sync changed (see :func:`quality.gates.run_silver_gate`)."""
    return f"silver.{table}.count"


def orphan_column(fk: str) -> str:
    """The generated column that holds ``fk`` where its parent row is missing."""
    return f"{fk}{ORPHAN_SUFFIX}"


def parent_of(column: ColumnContract) -> tuple[str, str]:
    """(parent table, parent column) of a ``references: <table>.<column>`` contract entry."""
    table, _, key = column.references.partition(".")  # type: ignore[union-attr]
    return table, key


def checked_columns(contract: TableContract) -> list[ColumnContract]:
    """Contract columns that appear under their own name in silver (PII ones are tokenised or masked)."""
    return [c for c in contract.columns if not c.pii]


@dataclass(frozen=True)
class Check:
    """One expectation of a table's suite with the name a failure is reported under."""

    label: str  # e.g. "expect_column_values_to_be_in_set(status)"
    kind: str  # one of KINDS
    expectation: gx.expectations.Expectation = field(compare=False)
    column: str | None = None
    reference: ColumnContract | None = None


def _label(expectation_type: str, argument: str) -> str:
    return f"{expectation_type}({argument})"


def build_checks(
    contract: TableContract,
    *,
    reconcile_count: bool,
    parents_present: set[str] | frozenset[str] | None = None,
) -> list[Check]:
    """The checks of one table's suite.

    ``reconcile_count`` adds the row-count reconciliation with the source count passed at run time as
    the suite parameter ``source_row_count`` (False: the table was not synced in this run).
    ``parents_present`` names the tables whose candidate state is available; a reference to any other
    table is not checked (None: every parent is assumed present, as when listing the checks).
    """
    import great_expectations as gx

    E = gx.expectations
    checks: list[Check] = []
    columns = checked_columns(contract)

    def add(kind: str, expectation, label: str, **extra) -> None:
        # The label travels with the expectation (meta) so results map back to it whatever their order.
        expectation.meta = {"check": kind, "label": label}
        checks.append(Check(label=label, kind=kind, expectation=expectation, **extra))

    add(
        "columns",
        E.ExpectTableColumnsToMatchSet(column_set=[c.name for c in columns], exact_match=False),
        _label("expect_table_columns_to_match_set", "contract columns"),
    )
    if reconcile_count:
        # A suite parameter, not a literal: the suite stays the same from run to run, so it is stored
        # and rendered once, and each run passes the count it extracted.
        add(
            "row_count",
            E.ExpectTableRowCountToEqual(
                value={"$PARAMETER": SOURCE_COUNT_PARAMETER},
                description="Row count equals the live row count in the source at extraction",
            ),
            _label("expect_table_row_count_to_equal", "source"),
        )
    pk = contract.primary_key
    add(
        "primary_key",
        E.ExpectColumnValuesToBeUnique(column=pk),
        _label("expect_column_values_to_be_unique", pk),
        column=pk,
    )
    not_null = [pk] + [c.name for c in columns if not c.nullable and c.name != pk]
    for name in not_null:
        add(
            "not_null",
            E.ExpectColumnValuesToNotBeNull(column=name),
            _label("expect_column_values_to_not_be_null", name),
            column=name,
        )
    for c in columns:
        if c.enum:
            add(
                "enum",
                E.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.enum)),
                _label("expect_column_values_to_be_in_set", c.name),
                column=c.name,
            )
    if contract.soft_delete in {c.name for c in columns}:
        add(
            "live",
            E.ExpectColumnValuesToBeNull(
                column=contract.soft_delete,
                description=f"Only live rows: {contract.soft_delete} is null in every row",
            ),
            _label("expect_column_values_to_be_null", contract.soft_delete),
            column=contract.soft_delete,
        )
    for c in columns:
        if not c.references:
            continue
        parent, key = parent_of(c)
        if parents_present is not None and parent not in parents_present:
            continue
        add(
            "reference",
            E.ExpectColumnValuesToBeNull(
                column=orphan_column(c.name),
                description=f"Every {contract.table}.{c.name} matches a {parent}.{key} (orphan values listed)",
            ),
            _label("referential_integrity", f"{c.name} -> {c.references}"),
            column=c.name,
            reference=c,
        )
    return checks


def build_suite(contract: TableContract, checks: list[Check], name: str | None = None) -> gx.ExpectationSuite:
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=name or suite_name(contract.table),
        expectations=[c.expectation for c in checks],
        meta={"derived_from": f"schemas/sources/{contract.table}.yaml"},
    )


def expectations_for(contract: TableContract) -> list[str]:
    """Every check the gate can run on a table (row count and all references included), as labels."""
    return [c.label for c in build_checks(contract, reconcile_count=True)]


def main() -> None:
    """Print every table's checks (``python -m quality.suites``), e.g. to review a contract change."""
    from mo.contracts import load_source_contracts

    for table, contract in load_source_contracts().items():
        print(f"{suite_name(table)}:")
        for label in expectations_for(contract):
            print(f"  - {label}")


if __name__ == "__main__":
    main()
