"""The marts gate validates what build_profiles would publish against schemas/marts/ contracts."""

from __future__ import annotations

import datetime as dt

import pytest

from quality.marts import build_mart_checks, load_mart_contracts, run_marts_gate
from tests.quality.silver_frames import persistent_rdds

pytestmark = pytest.mark.spark


def _value(column, i: int):
    if column.enum:
        return column.enum[i % len(column.enum)]
    return {
        "bigint": i + 1,
        "int": i,
        "double": float(i),
        "boolean": i % 2 == 0,
        "date": dt.date(2025, 1, 1) + dt.timedelta(days=i),
        "timestamp": dt.datetime(2025, 1, 1, 12) + dt.timedelta(hours=i),
        "map<string,string>": {"renewal_focus": "yes"},
    }.get(column.type, f"v{i}")


def _frame(spark, table: str, rows: int, **overrides):
    contract = load_mart_contracts()[table]
    ddl = ", ".join(f"`{c.name}` {c.type}" for c in contract.columns)
    data = []
    for i in range(rows):
        row = {c.name: _value(c, i) for c in contract.columns}
        row.update({k: v(i) if callable(v) else v for k, v in overrides.items()})
        data.append(tuple(row[c.name] for c in contract.columns))
    return spark.createDataFrame(data, ddl)


def test_every_mart_contract_gives_key_and_enum_checks():
    contracts = load_mart_contracts()
    assert {"customer_profile", "customer_event_daily", "fct_customer_events"} <= set(contracts)
    labels = [c.label for c in build_mart_checks(contracts["customer_event_daily"], reconcile_count=False)]
    assert "expect_compound_columns_to_be_unique(customer_id, event_type, event_date)" in labels
    profile = [c.label for c in build_mart_checks(contracts["customer_profile"], reconcile_count=True)]
    assert "expect_column_values_to_be_in_set(customer_tier)" in profile
    assert "expect_table_row_count_to_equal(one row per live customer)" in profile


def test_a_clean_mart_passes(spark, settings):
    frames = {
        "customer_profile": _frame(spark, "customer_profile", 12),
        "customer_event_daily": _frame(spark, "customer_event_daily", 5),
    }
    for frame in frames.values():
        frame.count()
    cached_before = persistent_rdds(spark)
    result = run_marts_gate(spark, settings, frames, {"customer_profile": 12})
    assert result.passed, result.summary()
    assert persistent_rdds(spark) == cached_before  # no mart left cached


def test_duplicates_bad_enums_and_a_wrong_count_are_named(spark, settings):
    profile = _frame(spark, "customer_profile", 10, customer_id=lambda i: 1 if i < 2 else i, customer_tier="diamond")
    result = run_marts_gate(spark, settings, {"customer_profile": profile}, {"customer_profile": 11})
    assert not result.passed
    summary = result.summary()
    assert "marts.customer_profile: expect_column_values_to_be_unique(customer_id) failed: 2 rows" in summary
    assert "expect_column_values_to_be_in_set(customer_tier) failed: 10 unexpected values: ['diamond']" in summary
    assert "row count 10 != 11" in summary


def test_the_campaign_marts_are_gated_with_the_invariants_of_their_sql():
    """Contracts from their serving copies (schemas/serving/serving.yaml); sound invariants (checked on marts dbt
    built in tests/campaigns/test_results_lake.py)."""
    contracts = load_mart_contracts()
    results = [c.label for c in build_mart_checks(contracts["mart_campaign_results"], reconcile_count=False)]
    key = "period_type, period_start, campaign_id, channel, product_line"
    assert f"expect_compound_columns_to_be_unique({key})" in results
    assert {"sent >= 0", "decided + waiting = audience", "delivered <= sent", "clicked <= opened",
            "sent <= decided - suppressed", "treated + holdout <= audience"} <= set(results)  # fmt: skip
    reasons = next(label for label in results if label.startswith("suppressed_erased + "))
    assert reasons.endswith(" = suppressed") and "suppressed_other" in reasons
    uplift = [c.label for c in build_mart_checks(contracts["mart_campaign_uplift"], reconcile_count=False)]
    assert {"ci_low <= difference", "difference <= ci_high", "treated_rate in [0, 1]",
            "expect_column_values_to_be_in_set(uplift_scope)"} <= set(uplift)  # fmt: skip
