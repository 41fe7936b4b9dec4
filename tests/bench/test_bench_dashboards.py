"""The dashboards bench's own logic (bench/bench_dashboards.py): percentiles, the dashboards it reads from the
bundle, the target check and the tables it writes into docs/benchmarks.md."""

from __future__ import annotations

import math

from bench import bench_dashboards as bench
from bench.bench_dashboards import DashboardFigures, english, percentile, render_loads, render_queries


def test_percentile_is_nearest_rank():
    values = [3.0, 1.0, 2.0, 5.0, 4.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.95) == 5.0  # with five loads the p95 is the slowest
    assert percentile(values, 0.2) == 1.0
    assert percentile(values, 0.0) == 1.0
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([7.0], 0.95) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_english_half_of_a_bilingual_title():
    assert english("理赔服务 Claims service") == "Claims service"
    assert english("各层行数 Rows per layer (source, bronze, silver)") == "Rows per layer (source, bronze, silver)"
    assert english("客户") == "客户"


def test_every_dashboard_of_the_bundle_with_its_chart_slots_and_filters():
    found = {d["slug"]: d for d in bench._bundle_dashboards()}
    assert set(found) == set(bench.SILVER_FIGURES)  # one figure from silver per dashboard
    # the counts the browser tests expect (tests/mo/test_dashboards.py)
    assert (found["claims-service"]["charts"], found["platform-health"]["charts"], found["customers"]["charts"]) == (
        6,
        9,
        5,
    )
    assert found["claims-service"]["filters"] and not found["platform-health"]["filters"]


def test_silver_figures_name_charts_of_their_dashboard():
    from mo.dashboards import read_bundle

    files = read_bundle()
    charts = {c["uuid"]: english(c["slice_name"]) for rel, c in files.items() if rel.startswith("charts/")}
    for rel, d in files.items():
        if not rel.startswith("dashboards/"):
            continue
        on_it = {
            charts[v["meta"]["uuid"]]
            for v in d["position"].values()
            if isinstance(v, dict) and v.get("type") == "CHART"
        }
        assert bench.SILVER_FIGURES[d["slug"]][0] in on_it, d["slug"]
    chart, sql = bench.silver_sql("platform-health", "lake", "2026-01-01", "run")
    assert "lake.bronze.claims" in sql and "lake.silver.claims" in sql
    chart, sql = bench.silver_sql("claims-service", "lake", "2026-01-01", "run")
    assert "date'2026-01-01'" in sql and "{" not in sql


def _figures(forced: list[float], cold: float = 1.0) -> DashboardFigures:
    fig = DashboardFigures("理赔服务 Claims service", 6, cold, forced, [0.4, 0.5])
    fig.chart_api_s = {"未结 Open claims": 0.05, "按状态 Open claims by status and age": 0.2}
    fig.chart_sql_s = {"按状态 Open claims by status and age": 0.01}
    fig.compared = "按状态 Open claims by status and age"
    fig.silver_s = 1.0
    return fig


def test_target_needs_the_cold_load_and_the_p95_within_three_seconds():
    assert _figures([1.0, 2.0, 2.9]).met
    assert not _figures([1.0, 2.0, 3.1]).met
    assert not _figures([1.0, 2.0], cold=3.5).met


def test_tables():
    fig = _figures([1.0, 2.0, 2.5])
    loads = render_loads("SQLite", [fig], 3)
    assert loads[-1] == "| Claims service | 6 | 1.00 | 2.00 | 2.50 | 0.40 | yes |"  # nearest rank: the lower of two
    assert "3 loads" in loads[0]
    queries = render_queries("SQLite", [fig])
    assert queries[-1] == (
        "| Claims service | Open claims by status and age | 200 | 10.0 | Open claims by status and age | 200 "
        "| 1,000 | 5.0x |"
    )
    fig.compared = None
    assert render_queries("SQLite", [fig])[-1].endswith("| - | - | - | - |")


def test_the_chart_a_request_is_for():
    url = "http://127.0.0.1:1/api/v1/chart/data?form_data=%7B%22slice_id%22%3A42%7D&dashboard_id=3"
    assert bench.slice_of(url, {}) == 42
    assert bench.slice_of("http://127.0.0.1:1/api/v1/chart/data", {"form_data": {"slice_id": 7}}) == 7
    assert bench.slice_of("http://127.0.0.1:1/api/v1/chart/data", {"form_data": {}}) is None  # a filter's values


def test_where_the_time_goes():
    fig = _figures([1.0, 2.0, 2.5])
    fig.phases = [
        bench.Phases(0.8, 1.5, 2.0, 0.3, 0.6),
        bench.Phases(1.0, 1.4, 2.4, 0.4, 0.9),
        bench.Phases(0.9, 1.9, 2.2, 0.5, 0.7),
    ]
    assert bench.render_phases("SQLite", [fig])[-1] == "| Claims service | 0.40 | 0.70 | 0.90 | 0.70 | 0.50 | 2.20 |"
