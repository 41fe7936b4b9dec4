"""Suites are derived from the contracts (no Spark needed to check what they contain)."""

from __future__ import annotations

import pytest

from mo.contracts import load_source_contracts
from mo.errors import QualityGateFailed
from quality import GateFailure, GateResult, expectations_for
from quality.gates import _exception_message
from quality.suites import build_checks, orphan_column

CONTRACTS = load_source_contracts()


@pytest.mark.parametrize("table", list(CONTRACTS))
def test_checks_follow_the_contract(table):
    contract = CONTRACTS[table]
    labels = expectations_for(contract)

    assert len(labels) == len(set(labels))
    assert labels[:2] == [
        "expect_table_columns_to_match_set(contract columns)",
        "expect_table_row_count_to_equal(source)",
    ]
    assert f"expect_column_values_to_be_unique({contract.primary_key})" in labels
    for column in contract.columns:
        mentioned = [label for label in labels if f"({column.name})" in label or f"({column.name} ->" in label]
        if column.pii:
            assert mentioned == [], f"{column.name} is PII: silver has no such column"
            continue
        assert (f"expect_column_values_to_not_be_null({column.name})" in labels) is (not column.nullable)
        assert (f"expect_column_values_to_be_in_set({column.name})" in labels) is bool(column.enum)
        if column.references:
            assert f"referential_integrity({column.name} -> {column.references})" in labels


def test_self_references_and_soft_delete_are_checked():
    assert "referential_integrity(parent_id -> organizations.id)" in expectations_for(CONTRACTS["organizations"])
    assert "referential_integrity(renewal_of -> policies.id)" in expectations_for(CONTRACTS["policies"])
    assert "expect_column_values_to_be_null(deleted_at)" in expectations_for(CONTRACTS["claims"])


def test_absent_parents_and_unsynced_tables_leave_their_checks_out():
    checks = build_checks(CONTRACTS["claims"], reconcile_count=False, parents_present={"claims", "customers"})
    labels = [c.label for c in checks]
    assert "referential_integrity(customer_id -> customers.id)" in labels
    assert "referential_integrity(policy_id -> policies.id)" not in labels
    assert not any(label.startswith("expect_table_row_count") for label in labels)
    orphan_check = next(c for c in checks if c.kind == "reference")
    assert orphan_check.expectation.column == orphan_column("customer_id")


def test_summary_has_one_line_per_failure_and_raises_the_gate_error():
    result = GateResult(
        passed=False,
        failures=[
            GateFailure("policies", "expect_column_values_to_be_in_set(status)", "2 unexpected values: ['bogus']"),
            GateFailure("claims", "expect_table_row_count_to_equal(source)", "row count 99 != source 100"),
        ],
        docs_path=None,
    )
    assert result.summary() == (
        "silver.policies: expect_column_values_to_be_in_set(status) failed: 2 unexpected values: ['bogus']\n"
        "silver.claims: expect_table_row_count_to_equal(source) failed: row count 99 != source 100"
    )
    with pytest.raises(QualityGateFailed, match="silver.policies: .*; silver.claims: .*row count 99"):
        result.raise_for_failure()
    GateResult(passed=True, failures=[], docs_path=None).raise_for_failure()


def test_exception_messages_are_read_in_both_shapes():
    flat = {"raised_exception": True, "exception_message": "boom\ntraceback", "exception_traceback": "..."}
    by_metric = {"MetricConfigurationID(...)": flat}
    assert _exception_message(flat) == "boom"
    assert _exception_message(by_metric) == "boom"
    assert _exception_message({"raised_exception": False, "exception_message": None}) is None
    assert _exception_message(None) is None
