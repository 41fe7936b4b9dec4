"""`make dashboards`: Superset on a fresh MO_HOME, the bundle imported and exported over its REST API, SQL Lab
read-only, and the Claims dashboard in the machine's Chromium as the admin and as one organisation's analyst.

One Superset (the session fixture `dashboards`: `make dashboards` over the world of tests/dashboards_world.py, built
through build_profiles once, stopped by `make dashboards-stop`) serves
every test here. Screenshots go to the test's output folder (and to docs/images/dashboards/ with
MO_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import stat

import pytest
import requests
from sqlalchemy import create_engine, text

from mo.dashboards import Superset, export_dashboards, import_dashboards, inventory, read_bundle
from mo.oltp.db import make_engine
from tests.dashboards_world import (
    ANALYST_PASSWORD,
    DRAWN,
    MARKETER_PASSWORD,
    big_number,
    chart_errors,
    expect_charts,
    open_dashboard,
    source_open_claims,
)

# The first test also waits for the session world (build_profiles on a busy machine) and `make dashboards`.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(2400)]


def test_make_dashboards_serves_superset_with_the_admin_from_a_private_file(dashboards):
    assert requests.get(f"{dashboards.url}/health", timeout=10).text == "OK"
    creds = dashboards.home / "superset-demo-credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    # Nothing secret in the metadata database's folder besides the database itself; the shared cache's files
    # (native filters' state, explore links) are the owner's only.
    folder = dashboards.home / "superset"
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".db") == ["cache", "superset.pid"]
    cached = [p for p in (folder / "cache").rglob("*") if p.is_file()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in cached), cached
    with pytest.raises(Exception, match="refused the login"):
        dashboards.client(("admin", "wrong-password"))


def test_import_twice_changes_nothing_and_export_gives_back_the_bundle(dashboards, tmp_path):
    client = dashboards.client()
    before = inventory(client)
    files = read_bundle()
    assert before == {kind: sum(rel.startswith(f"{kind}s/") for rel in files) for kind in before}
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
    assert names == {
        "customer_consent",
        "customer_lines",
        "campaign_funnel",
        "campaign_uplift",
        "campaign_contact_pressure",
        "customer_tag_distribution",
        "customer_event_volume",
    }


# --- in the browser -------------------------------------------------------------------------------------------


def test_the_claims_dashboard_renders_for_the_admin_with_the_sources_figures(browser, dashboards, tmp_path):
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "claims-service", tmp_path / "claims.png")
    try:
        expect_charts(page, 6)
        assert chart_errors(page) == [] and errors == []
        assert "理赔服务 Claims service" in page.inner_text("body")
        assert big_number(page, "未结案件 Open claims") == source_open_claims(dashboards.source_url, None)
        table = page.locator('[data-test-chart-name="各机构与产品线的理赔时效 SLA by organisation and product line"]')
        shown = table.inner_text()
        assert dashboards.branch_name in shown and any(b in shown for b in dashboards.other_branches)
    finally:
        page.close()


def test_an_organisations_analyst_sees_only_that_subtree(browser, dashboards, tmp_path):
    analyst = ("analyst_branch", ANALYST_PASSWORD)
    page, errors = open_dashboard(browser, dashboards, analyst, "claims-service", tmp_path / "claims-analyst.png")
    try:
        assert chart_errors(page) == [] and errors == []
        expected = source_open_claims(dashboards.source_url, dashboards.branch_id)
        assert 0 < expected < source_open_claims(dashboards.source_url, None)
        assert big_number(page, "未结案件 Open claims") == expected
        table = page.locator('[data-test-chart-name="各机构与产品线的理赔时效 SLA by organisation and product line"]')
        shown = table.inner_text()
        assert dashboards.branch_name in shown
        assert [b for b in dashboards.other_branches if b in shown] == []
    finally:
        page.close()


def test_the_platform_health_dashboard_renders(browser, dashboards, tmp_path):
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "platform-health", tmp_path / "health.png")
    try:
        expect_charts(page, 9)
        assert chart_errors(page) == [] and errors == []
        assert "数据平台健康 Data platform health" in page.inner_text("body")
        freshness = page.locator('[data-test-chart-name="各表新鲜度与质量关卡 Freshness and gates per table"]')
        assert "claims" in freshness.inner_text() and "policies" in freshness.inner_text()
        steps = page.locator('[data-test-chart-name="构建步骤耗时 Build step times"]').inner_text()
        assert "dashboards-world" in steps and "analytics_marts" in steps
    finally:
        page.close()


def test_the_customers_dashboard_renders(browser, dashboards, tmp_path):
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "customers", tmp_path / "customers.png")
    try:
        expect_charts(page, 5)
        assert chart_errors(page) == [] and errors == []
        assert "客户 Customers" in page.inner_text("body")
    finally:
        page.close()


# --- the platform's audit -------------------------------------------------------------------------------------


def _superset_audit(dashboards) -> list[dict]:
    engine = create_engine(dashboards.source_url)
    with engine.connect() as conn:
        rows = (
            conn.execute(text("SELECT * FROM audit_log WHERE request_id LIKE 'superset:%' ORDER BY id"))
            .mappings()
            .all()
        )
    engine.dispose()
    return [dict(r) for r in rows]


def test_dashboard_views_sql_and_exports_reach_the_platform_audit_without_clear_pii(dashboards):
    from mo.dashboards_audit import sync_audit

    admin = dashboards.client()
    analyst = dashboards.client(("analyst_branch", ANALYST_PASSWORD))
    database_id = _database_id(admin)
    claims = next(d for d in admin.list_all("dashboard") if d["dashboard_title"] == "理赔服务 Claims service")
    analyst.get(f"/api/v1/dashboard/{claims['id']}")  # what the dashboard page asks for when it opens
    phone, id_number = "13812345678", "11010519491231002X"
    lookup = (
        f"SELECT COUNT(*) AS n FROM claims_open WHERE status <> '张三丰' AND open_claims <> {phone} "
        f"AND status <> '{id_number}'"
    )
    assert _sql(analyst, database_id, lookup).status_code == 200
    assert _sql(analyst, database_id, "DELETE FROM claims_open").status_code >= 400
    admin.get_bytes("/api/v1/dashboard/export/", q=f"!({claims['id']})")
    # a chart drawn (what a dashboard asks for: JSON, result type "full") and the same chart's rows (samples)
    dataset = next(d["id"] for d in admin.list_all("dataset") if d["table_name"] == "claims_open")
    for result_type in ("full", "samples"):
        answer = analyst.http.post(
            f"{analyst.url}/api/v1/chart/data",
            json={
                "datasource": {"id": dataset, "type": "table"},
                "queries": [{"columns": ["status"], "metrics": ["count"], "row_limit": 10}],
                "result_format": "json",
                "result_type": result_type,
            },
            timeout=60,
        )
        assert answer.status_code == 200, answer.text[:300]

    audit = create_engine(dashboards.source_url)
    superset = create_engine(f"sqlite:///{dashboards.home / 'superset' / 'superset.db'}")
    try:
        # Superset's own event log keeps what the audit copies, not a row per chart drawn or per inner step
        with superset.connect() as conn:
            logged = conn.execute(text("SELECT action, json FROM logs")).all()
        drawn = [a for a, j in logged if a.startswith("ChartDataRestApi") and '"full"' in (j or "")]
        inner = [a for a, _ in logged if a in ("execute_sql", "ChartDataRestApi.json_dumps", "_get_data_response")]
        assert drawn == [] and inner == [], (drawn, inner)
        assert {"DashboardRestApi.get", "ChartDataRestApi.data"} <= {a for a, _ in logged}
        first = sync_audit(audit, superset)
        assert first.copied["logs"] > 0 and first.copied["query"] >= 2
        again = sync_audit(audit, superset)  # idempotent: nothing new, nothing copied twice
        assert again.copied == {"logs": 0, "query": 0} and again.watermark == first.watermark
    finally:
        audit.dispose()
        superset.dispose()

    entries = _superset_audit(dashboards)
    assert len({e["request_id"] for e in entries}) == len(entries)
    mine = [e for e in entries if e["actor"] == "user:analyst_branch"]
    views = [e for e in mine if e["action"] == "dashboards.view"]
    assert views and views[-1]["resource"] == f"dashboard {claims['id']} 理赔服务 Claims service"
    assert views[-1]["role"] == "analyst" and views[-1]["outcome"] == "ok"
    sql = [e for e in mine if e["action"] == "dashboards.sql"]
    looked_up = next(e for e in sql if "claims_open WHERE status" in e["detail"])
    assert looked_up["outcome"] == "ok" and looked_up["resource"].startswith(f"database {database_id} Analytics")
    assert "138****5678" in looked_up["detail"] and "'张**'" in looked_up["detail"]
    assert "110***********002X" in looked_up["detail"] and "rows: 1" in looked_up["detail"]
    deleted = next(e for e in sql if "DELETE FROM claims_open" in e["detail"])
    assert deleted["outcome"] in ("denied", "invalid") and "error:" in deleted["detail"]
    rows_out = [e for e in mine if e["action"] == "dashboards.chart_rows"]
    assert [e["detail"] for e in rows_out] == ["result type samples"]
    exports = [e for e in entries if e["action"] == "dashboards.export" and e["actor"] == "user:admin"]
    assert any("DashboardRestApi.export" in e["resource"] for e in exports)
    every_text = json.dumps(entries, default=str, ensure_ascii=False)
    assert phone not in every_text and id_number not in every_text and "张三丰" not in every_text


# --- Chinese and English UI -----------------------------------------------------------------------------------


def test_the_ui_switches_between_chinese_and_english_and_titles_show_in_both(browser, dashboards, tmp_path):
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "customers", tmp_path / "customers-zh.png")
    try:
        for lang, menu, absent in (("en", "Dashboards", "看板"), ("zh", "看板", "Dashboards")):
            page.goto(f"{dashboards.url}/lang/{lang}")
            page.goto(f"{dashboards.url}/superset/dashboard/customers/")
            page.wait_for_load_state("networkidle", timeout=90_000)
            page.wait_for_function(DRAWN, timeout=90_000)
            page.screenshot(path=str(tmp_path / f"customers-{lang}.png"), full_page=True)
            menu_text = page.locator('[role="menubar"], .ant-menu, header').first.inner_text()
            assert menu in menu_text and absent not in menu_text, (lang, menu_text[:300])
            body = page.inner_text("body")
            assert "客户 Customers" in body, (lang, body[:500])
            assert "各渠道授权覆盖率 Consent coverage per channel" in body, (lang, body[:800])
        assert chart_errors(page) == [] and errors == []
    finally:
        page.close()


# --- users from the serving API's accounts --------------------------------------------------------------------


def _superset_users(dashboards) -> dict[str, tuple[bool, set[str]]]:
    engine = create_engine(f"sqlite:///{dashboards.home / 'superset' / 'superset.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.username, u.active, r.name FROM ab_user u LEFT JOIN ab_user_role ur ON ur.user_id = u.id "
                "LEFT JOIN ab_role r ON r.id = ur.role_id"
            )
        ).all()
    engine.dispose()
    users: dict[str, tuple[bool, set[str]]] = {}
    for username, active, role in rows:
        users.setdefault(username, (bool(active), set()))[1].add(role)
    return users


def test_sync_users_follows_the_serving_accounts_audited_and_copies_no_password(dashboards):
    from datetime import datetime
    from types import SimpleNamespace

    from mo.dashboards_users import sync_users
    from mo.oltp.api_tables import StaffUser

    staff = StaffUser.__table__
    source = make_engine(dashboards.source_url)
    now = datetime(2026, 1, 1)
    accounts = [
        ("sync_analyst", "analyst", dashboards.branch_id, False),
        ("sync_marketer", "marketer", None, False),
        ("sync_handler", "claims_handler", None, False),  # no dashboards for this role
        ("sync_gone", "analyst", None, True),  # disabled in the serving API
        ("sync_steady", "analyst", None, False),  # unchanged between the two runs: nothing done, nothing audited
    ]
    with source.begin() as conn:
        conn.execute(
            staff.insert(),
            [
                {"username": u, "display_name": u.title(), "password_hash": "$argon2id$not-a-superset-hash",
                 "role": r, "org_id": o, "disabled": d, "failed_logins": 0, "created_at": now, "updated_at": now}
                for u, r, o, d in accounts
            ],
        )  # fmt: skip
    settings = SimpleNamespace(home=dashboards.home, resolved_source_url=dashboards.source_url)
    try:
        first = sync_users(settings, actor="test")
        assert sorted((c["username"], c["change"]) for c in first) == [
            ("sync_analyst", "created"),
            ("sync_marketer", "created"),
            ("sync_steady", "created"),
        ]
        users = _superset_users(dashboards)
        assert users["sync_analyst"] == (True, {"mo_analyst", f"mo_org_{dashboards.branch_id}"})
        assert users["sync_marketer"] == (True, {"mo_marketer"})
        assert "sync_handler" not in users and "sync_gone" not in users
        assert users["analyst_branch"][0] and users["marketer"][0]  # users made by hand are left alone
        with pytest.raises(Exception, match="refused the login"):  # no password was copied or is known
            dashboards.client(("sync_analyst", "$argon2id$not-a-superset-hash"))

        with source.begin() as conn:
            conn.execute(staff.update().where(staff.c.username == "sync_marketer").values(disabled=True))
            conn.execute(staff.update().where(staff.c.username == "sync_analyst").values(role="marketer", org_id=None))
        second = sync_users(settings, actor="test")
        assert sorted((c["username"], c["change"]) for c in second) == [
            ("sync_analyst", "updated roles"),
            ("sync_marketer", "disabled"),
        ]
        users = _superset_users(dashboards)
        assert users["sync_analyst"] == (True, {"mo_marketer"}) and users["sync_marketer"][0] is False
        assert users["sync_steady"] == (True, {"mo_analyst"})

        with source.connect() as conn:
            audited = conn.execute(
                text("SELECT actor, resource, detail FROM audit_log WHERE action = 'dashboards.user_sync' ORDER BY id")
            ).all()
        assert [(a.actor, a.resource) for a in audited] == [
            ("cli:test", "superset user sync_analyst"),
            ("cli:test", "superset user sync_marketer"),
            ("cli:test", "superset user sync_steady"),
            ("cli:test", "superset user sync_analyst"),
            ("cli:test", "superset user sync_marketer"),
        ]
        assert audited[3].detail == "updated roles; role marketer; organisation None"
    finally:
        source.dispose()
