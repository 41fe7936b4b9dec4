"""The record of segment refresh runs is replaced run by run whatever files hold it."""

from __future__ import annotations

import datetime as dt

import pytest

from mo.segments.membership import ensure_tables, record_runs
from spark_jobs.session import register_catalog

AS_OF = dt.date(2026, 3, 31)
AT = dt.datetime(2026, 3, 31, 6, 0, tzinfo=dt.UTC)


def _row(run_id: str, segment_id: str, members: int) -> tuple:
    return (run_id, AS_OF, segment_id, 1, "dynamic", members, AT)


@pytest.mark.spark
def test_a_run_is_recorded_again_after_compaction_merged_runs_into_one_file(spark, settings):
    from pyspark.sql import functions as F

    register_catalog(spark, settings)
    ensure_tables(spark, settings)
    table = f"{settings.catalog_name}.segments.runs"
    record_runs(spark, settings, "daily-a", [_row("daily-a", "s1", 10), _row("daily-a", "s2", 20)])
    record_runs(spark, settings, "daily-c", [_row("daily-c", "s1", 30)])
    spark.sql(
        f"CALL {settings.catalog_name}.system.rewrite_data_files(table => 'segments.runs', "
        "options => map('min-input-files', '1', 'rewrite-all', 'true'))"
    )
    files = spark.table(table).select(F.input_file_name().alias("f")).distinct().count()
    assert files == 1, "compaction should have put both runs in one file"

    record_runs(spark, settings, "daily-a", [_row("daily-a", "s1", 11)])  # the same run, refreshed again
    record_runs(spark, settings, "daily-b", [_row("daily-b", "s1", 12)])  # a new run, inside the file's range

    rows = sorted((r.run_id, r.segment_id, r.member_count) for r in spark.table(table).collect())
    assert rows == [("daily-a", "s1", 11), ("daily-b", "s1", 12), ("daily-c", "s1", 30)]
