"""`make dashboards`: Superset on a fresh MO_HOME, the bundle imported and exported over its REST API, SQL Lab
read-only, and the Claims dashboard in the machine's Chromium as the admin and as one organisation's analyst.

One Superset (the session fixture `dashboards`: `make dashboards` over the world of tests/dashboards_world.py, built
through build_profiles once, stopped by `make dashboards-stop`) serves
every test here. Screenshots go to the test's output folder (and to docs/images/dashboards/ with
MO_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import requests

from mo.config import REPO_ROOT
from mo.dashboards import Superset, export_dashboards, import_dashboards, inventory, read_bundle
from tests.dashboards_world import ANALYST_PASSWORD, MARKETER_PASSWORD, source_open_claims

DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "images" / "dashboards"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_make_dashboards_serves_superset_with_the_admin_from_a_private_file(dashboards):
    assert requests.get(f"{dashboards.url}/health", timeout=10).text == "OK"
    creds = dashboards.home / "superset-demo-credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    # Nothing secret in the metadata database's folder besides the database itself.
    assert sorted(p.name for p in (dashboards.home / "superset").iterdir() if p.suffix != ".db") == ["superset.pid"]
    with pytest.raises(Exception, match="refused the login"):
        dashboards.client(("admin", "wrong-password"))


def test_import_twice_changes_nothing_and_export_gives_back_the_bundle(dashboards, tmp_path):
    client = dashboards.client()
    before = inventory(client)
    assert before == {"database": 1, "dataset": 11, "chart": 20, "dashboard": 3}
    assert import_dashboards(client, dashboards.analytics_url) == before
    assert import_dashboards(client, dashboards.analytics_url) == before
    changed = export_dashboards(client, tmp_path / "bundle")
    assert len(changed) == len(read_bundle())  # every file written once into the empty folder
    assert read_bundle(tmp_path / "bundle") == read_bundle()
    # A change made in the UI comes back as a diff of that chart's file only.
    chart = next(c for c in client.list_all("chart") if c["slice_name"] == "未结案件 Open claims")
    answer = client.http.put(
        f"{client.url}/api/v1/chart/{chart['id']}", json={"description": "未结 = 未赔付且未拒赔"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert export_dashboards(client, tmp_path / "bundle") == ["charts/Open_claims.yaml"]
    assert read_bundle(tmp_path / "bundle")["charts/Open_claims.yaml"]["description"] == "未结 = 未赔付且未拒赔"
    assert import_dashboards(client, dashboards.analytics_url) == before  # the repository's bundle back in place
    assert export_dashboards(client, tmp_path / "bundle") == ["charts/Open_claims.yaml"]


def _database_id(client: Superset) -> int:
    return next(d["id"] for d in client.list_all("database") if d["database_name"] == "Analytics")


def _sql(client: Superset, database_id: int, sql: str) -> requests.Response:
    return client.http.post(
        f"{client.url}/api/v1/sqllab/execute/",
        json={"database_id": database_id, "sql": sql, "runAsync": False, "schema": "main"},
        timeout=60,
    )


def test_sql_lab_is_read_only_and_keeps_an_analyst_to_their_subtree(dashboards):
    admin = dashboards.client()
    analyst = dashboards.client(("analyst_branch", ANALYST_PASSWORD))
    database_id = _database_id(admin)
    delete = _sql(analyst, database_id, "DELETE FROM claims_open")
    assert delete.status_code >= 400 and "DML" in delete.text, delete.text
    total = "SELECT SUM(open_claims) AS n FROM claims_open"
    assert _sql(admin, database_id, total).json()["data"] == [{"n": source_open_claims(dashboards.source_url, None)}]
    assert _sql(analyst, database_id, total).json()["data"] == [
        {"n": source_open_claims(dashboards.source_url, dashboards.branch_id)}
    ]


def test_a_marketer_has_no_sql_lab_and_no_claims_data(dashboards):
    marketer = dashboards.client(("marketer", MARKETER_PASSWORD))
    database_id = _database_id(dashboards.client())
    answer = _sql(marketer, database_id, "SELECT COUNT(*) FROM customer_lines")
    assert answer.status_code == 403, answer.text
    names = {d["table_name"] for d in marketer.list_all("dataset")}
    assert names == {"customer_consent", "customer_lines", "customer_tag_distribution", "customer_event_volume"}


# --- in the browser -------------------------------------------------------------------------------------------


DRAWN = """() => {
    const slots = [...document.querySelectorAll('[data-test-chart-name]')];
    return slots.length > 0
        && document.querySelectorAll('[data-test="loading-indicator"], .loading').length === 0
        && slots.every(s => s.querySelector('canvas, svg, table, .header-line, [role="alert"]'));
}"""


def _open_dashboard(browser, dashboards, user: tuple[str, str], slug: str, shot: Path):
    """Log in, open the dashboard, wait for every chart to draw; returns the page and the browser's errors."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, locale="zh-CN")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Superset 6.1's navigation bar always loads a telemetry pixel from an outside host (not configurable; the
    # machine is offline): answer it with an empty image so that every other console error still fails the test.
    page.route("https://apachesuperset.gateway.scarf.sh/**", lambda route: route.fulfill(status=204, body=""))
    page.goto(f"{dashboards.url}/login/")
    # The login form is drawn by React: typing before it has settled can be wiped by a re-render.
    page.wait_for_load_state("networkidle", timeout=60_000)
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    assert page.input_value("#username") == user[0] and page.input_value("#password") == user[1]
    page.keyboard.press("Enter")
    try:
        page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    except Exception as exc:
        raise AssertionError(f"login of {user[0]} failed; the page says: {page.inner_text('body')[:500]}") from exc
    page.goto(f"{dashboards.url}/superset/dashboard/{slug}/")
    # The dashboard draws its charts, then draws them again once its native filters are ready: wait for the
    # network to settle, then for every chart slot to hold a drawn chart and nothing to be loading.
    page.wait_for_load_state("networkidle", timeout=90_000)
    page.wait_for_function(DRAWN, timeout=90_000)
    page.wait_for_load_state("networkidle", timeout=90_000)
    page.wait_for_function(DRAWN, timeout=90_000)
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("MO_UPDATE_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / shot.name)
    return page, errors


def _chart_errors(page) -> list[str]:
    return page.locator('[data-test-chart-name] [role="alert"], [data-test="error-alert"]').all_inner_texts()


def _big_number(page, name: str) -> int:
    text_ = page.locator(f'[data-test-chart-name="{name}"] .header-line').inner_text()
    return int(text_.replace(",", "").strip())


def test_the_claims_dashboard_renders_for_the_admin_with_the_sources_figures(browser, dashboards, tmp_path):
    page, errors = _open_dashboard(browser, dashboards, dashboards.admin, "claims-service", tmp_path / "claims.png")
    try:
        assert page.locator("[data-test-chart-name]").count() == 6
        assert _chart_errors(page) == [] and errors == []
        assert "理赔服务 Claims service" in page.inner_text("body")
        assert _big_number(page, "未结案件 Open claims") == source_open_claims(dashboards.source_url, None)
        table = page.locator('[data-test-chart-name="各机构与产品线的理赔时效 SLA by organisation and product line"]')
        shown = table.inner_text()
        assert dashboards.branch_name in shown and any(b in shown for b in dashboards.other_branches)
    finally:
        page.close()


def test_an_organisations_analyst_sees_only_that_subtree(browser, dashboards, tmp_path):
    analyst = ("analyst_branch", ANALYST_PASSWORD)
    page, errors = _open_dashboard(browser, dashboards, analyst, "claims-service", tmp_path / "claims-analyst.png")
    try:
        assert _chart_errors(page) == [] and errors == []
        expected = source_open_claims(dashboards.source_url, dashboards.branch_id)
        assert 0 < expected < source_open_claims(dashboards.source_url, None)
        assert _big_number(page, "未结案件 Open claims") == expected
        table = page.locator('[data-test-chart-name="各机构与产品线的理赔时效 SLA by organisation and product line"]')
        shown = table.inner_text()
        assert dashboards.branch_name in shown
        assert [b for b in dashboards.other_branches if b in shown] == []
    finally:
        page.close()


def test_the_platform_health_dashboard_renders(browser, dashboards, tmp_path):
    page, errors = _open_dashboard(browser, dashboards, dashboards.admin, "platform-health", tmp_path / "health.png")
    try:
        assert page.locator("[data-test-chart-name]").count() == 9
        assert _chart_errors(page) == [] and errors == []
        assert "数据平台健康 Data platform health" in page.inner_text("body")
        freshness = page.locator('[data-test-chart-name="各表新鲜度与质量关卡 Freshness and gates per table"]')
        assert "claims" in freshness.inner_text() and "policies" in freshness.inner_text()
        steps = page.locator('[data-test-chart-name="构建步骤耗时 Build step times"]').inner_text()
        assert "dashboards-world" in steps and "analytics_marts" in steps
    finally:
        page.close()


def test_the_customers_dashboard_renders(browser, dashboards, tmp_path):
    page, errors = _open_dashboard(browser, dashboards, dashboards.admin, "customers", tmp_path / "customers.png")
    try:
        assert page.locator("[data-test-chart-name]").count() == 5
        assert _chart_errors(page) == [] and errors == []
        assert "客户 Customers" in page.inner_text("body")
    finally:
        page.close()
