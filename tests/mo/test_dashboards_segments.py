"""The Segments and Sales recordings dashboards: their analytics marts against the lake and the source, and both
dashboards in the machine's Chromium as the admin and as one branch's analyst.

Reads the session's dashboards world and its Superset (tests/conftest.py ``dashboards_world``, ``dashboards``;
tests/dashboards_world.py). Screenshots go to the test's folder (and to docs/images/dashboards/ with
MO_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import create_engine, text

from tests.dashboards_world import big_number, chart_errors, expect_charts, open_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CURRENT_SIZES = "当前分群规模 Current segment sizes"
BY_AGENT = "各代理人审核状态 Reviews by agent"


def _rows(url: str, sql: str, **params) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).all()
    finally:
        engine.dispose()


def _lake_runs(spark, world) -> dict[str, tuple]:
    """segment_id -> (as_of_date, members) of each segment's latest run, counted from the lake's membership."""
    catalog = world.settings.catalog_name
    rows = spark.sql(
        f"""SELECT segment_id, as_of_date, customers FROM (
                SELECT r.segment_id, r.as_of_date, COUNT(m.customer_id) AS customers,
                       ROW_NUMBER() OVER (PARTITION BY r.segment_id ORDER BY r.as_of_date DESC, r.computed_at DESC,
                                          r.run_id DESC) AS n
                FROM {catalog}.segments.runs r
                LEFT JOIN {catalog}.segments.membership m
                  ON m.run_id = r.run_id AND m.segment_id = r.segment_id AND m.as_of_date = r.as_of_date
                GROUP BY r.segment_id, r.as_of_date, r.computed_at, r.run_id) WHERE n = 1"""
    ).collect()
    return {r.segment_id: (r.as_of_date, r.customers) for r in rows}


def _source_recordings(source_url: str, branch_id: int | None = None) -> list:
    """(org_id, review_status, qc_sampled, qc_sample_ratio) per live recording, in ``branch_id``'s subtree."""
    return _rows(
        source_url,
        "SELECT r.org_id, r.review_status, r.qc_sampled, p.qc_sample_ratio FROM sales_recordings r "
        "JOIN products p ON p.id = r.product_id JOIN organizations o ON o.id = r.org_id "
        "WHERE r.deleted_at IS NULL AND (:org IS NULL OR o.id = :org OR o.parent_id = :org)",
        org=branch_id,
    )


# --- the marts ------------------------------------------------------------------------------------------------


def test_segment_marts_equal_the_lakes_membership(spark, dashboards_world):
    world = dashboards_world
    lake = _lake_runs(spark, world)
    assert lake, "the world's build evaluated no segment"
    sizes = _rows(world.analytics_url, "SELECT segment_id, as_of_date, customers FROM segment_sizes "
                  "WHERE is_latest_for_segment = 1")  # fmt: skip
    assert {r.segment_id: (str(r.as_of_date), r.customers) for r in sizes} == {
        s: (str(d), n) for s, (d, n) in lake.items()
    }
    # Every dimension of a segment's distribution adds up to its size; every province has a map code.
    distribution = _rows(world.analytics_url, "SELECT segment_id, dimension, value, province_iso_code, customers "
                         "FROM segment_distribution")  # fmt: skip
    totals: Counter = Counter()
    for r in distribution:
        totals[(r.segment_id, r.dimension)] += r.customers
        if r.dimension == "province" and r.value != "unknown":
            assert r.province_iso_code and r.province_iso_code.startswith("CN-"), r
    assert all(n == lake[segment][1] for (segment, _), n in totals.items()), totals
    overlap = _rows(world.analytics_url, "SELECT segment_id, other_segment_id FROM segment_overlap")
    evaluated = len(lake)
    assert len(overlap) == evaluated * (evaluated - 1)
    catalog = world.settings.catalog_name
    models = {(r.model_id, r.version, r.auc) for r in spark.sql(f"SELECT * FROM {catalog}.segments.models").collect()}
    quality = _rows(world.analytics_url, "SELECT model_id, model_version, auc FROM segment_model_quality")
    assert models and {tuple(r) for r in quality} == models


def test_recordings_mart_equals_the_sources_recordings(dashboards_world):
    world = dashboards_world
    source = _source_recordings(world.source_url)
    expected: dict[int, Counter] = defaultdict(Counter)
    for r in source:
        expected[r.org_id][r.review_status] += 1
    published = _rows(
        world.analytics_url,
        "SELECT org_id, SUM(pending) AS pending, SUM(rejected) AS rejected, SUM(completed) AS completed, "
        "SUM(recordings) AS recordings FROM recordings_review GROUP BY org_id",
    )
    assert {r.org_id: {"pending": r.pending, "rejected": r.rejected, "completed": r.completed} for r in published} == {
        org: {s: c[s] for s in ("pending", "rejected", "completed")} for org, c in expected.items()
    }
    assert sum(r.recordings for r in published) == len(source)
    # QC coverage: the completed recordings drawn for QC, against the sample the products' ratios ask for.
    completed = [r for r in source if r.review_status == "completed"]
    sampled = sum(1 for r in completed if r.qc_sampled)
    target = sum(float(r.qc_sample_ratio) for r in completed)
    (mart,) = _rows(world.analytics_url, "SELECT SUM(qc_sampled) AS sampled, SUM(qc_target_samples) AS target, "
                    "SUM(completed) AS completed FROM recordings_review")  # fmt: skip
    assert (mart.sampled, mart.completed) == (sampled, len(completed))
    assert mart.target == pytest.approx(target)
    # Row-level security has a key on every row: the organisation's path from the head office.
    paths = _rows(world.analytics_url, "SELECT DISTINCT org_path FROM recordings_review")
    assert paths and all(p.org_path.startswith("/1/") and p.org_path.endswith("/") for p in paths)


# --- in the browser -------------------------------------------------------------------------------------------


def _percent(page, name: str) -> str:
    return page.locator(f'[data-test-chart-name="{name}"] .header-line').inner_text().strip()


def test_the_segments_dashboard_renders_with_the_lakes_segments(spark, browser, dashboards, tmp_path):
    lake = _lake_runs(spark, dashboards.world)
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "segments", tmp_path / "segments.png")
    try:
        expect_charts(page, 13)
        assert chart_errors(page) == [] and errors == []
        assert "客户分群 Segments" in page.inner_text("body")
        assert big_number(page, "分群数 Segments") == len(lake)
        assert page.locator('[data-test-chart-name="分群省份分布 Segments by province"] svg path').count() > 20
        sizes = page.locator(f'[data-test-chart-name="{CURRENT_SIZES}"] tbody tr').all_inner_texts()
        names = dict(_rows(dashboards.analytics_url, "SELECT segment_id, segment_name FROM segment_sizes "
                           "WHERE is_latest_for_segment = 1"))  # fmt: skip
        shown = {row.split("\t")[0]: int(row.split("\t")[3].replace(",", "")) for row in sizes}
        assert shown == {names[s]: n for s, (_, n) in lake.items()}
    finally:
        page.close()


def test_the_recordings_dashboard_renders_with_the_sources_figures(browser, dashboards, tmp_path):
    source = _source_recordings(dashboards.source_url)
    shot = tmp_path / "recordings.png"
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "sales-recordings", shot)
    try:
        expect_charts(page, 11)
        assert chart_errors(page) == [] and errors == []
        assert "双录质检 Sales recordings" in page.inner_text("body")
        assert big_number(page, "双录 Recordings") == len(source)
        status = Counter(r.review_status for r in source)
        assert big_number(page, "待审核 Pending") == status["pending"]
        assert big_number(page, "已驳回 Rejected") == status["rejected"]
        assert big_number(page, "已完成 Completed") == status["completed"]
        sampled = sum(1 for r in source if r.review_status == "completed" and r.qc_sampled)
        assert _percent(page, "质检抽样率 QC sampled share") == f"{sampled / status['completed']:.1%}"
        agents = page.locator(f'[data-test-chart-name="{BY_AGENT}"]').inner_text()
        assert dashboards.branch_name in agents or any(b in agents for b in dashboards.other_branches)
    finally:
        page.close()


def test_a_branch_analyst_sees_only_that_branchs_recordings(browser, dashboards, tmp_path):
    everyone = len(_source_recordings(dashboards.source_url))
    branch = _source_recordings(dashboards.source_url, dashboards.branch_id)
    user = dashboards.analyst
    page, errors = open_dashboard(browser, dashboards, user, "sales-recordings", tmp_path / "recordings-analyst.png")
    try:
        assert chart_errors(page) == [] and errors == []
        assert 0 < len(branch) < everyone
        assert big_number(page, "双录 Recordings") == len(branch)
        agents = page.locator(f'[data-test-chart-name="{BY_AGENT}"]').inner_text()
        assert dashboards.branch_name in agents
        assert [b for b in dashboards.other_branches if b in agents] == []
    finally:
        page.close()
