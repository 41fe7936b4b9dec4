"""The masking of SQL text before it reaches the audit log (the copy itself runs against the real Superset in
tests/mo/test_dashboards.py)."""

from __future__ import annotations

import pytest

from mo.dashboards_audit import mask_sql


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        ("SELECT * FROM t WHERE phone = '13812345678'", "SELECT * FROM t WHERE phone = '138****5678'"),
        ("WHERE phone = 8613812345678", "WHERE phone = 138****5678"),
        ("WHERE id_number = '11010519491231002x'", "WHERE id_number = '110***********002X'"),
        ("WHERE card = 6222020200112233445", "WHERE card = 622************3445"),
        ("WHERE name = '张三丰' AND city = '上海市浦东新区'", "WHERE name = '张**' AND city = '上**'"),
        ("WHERE name = 'O''Brien 王'", "WHERE name = 'O**'"),
        # ids, amounts, dates and ASCII literals stay readable
        ("WHERE customer_id = 1234567890 AND day = '2026-12-06' AND status = 'paid'", None),
        ("SELECT SUM(open_claims) FROM claims_open_20261206", None),
    ],
)
def test_sql_text_keeps_no_phone_id_number_card_or_name(sql, kept):
    assert mask_sql(sql) == (kept if kept is not None else sql)


@pytest.mark.parametrize(
    ("action", "payload", "audited"),
    [
        ("DashboardRestApi.get", {"path": "/api/v1/dashboard/3"}, "dashboards.view"),
        ("DashboardRestApi.export", {"rison": [3]}, "dashboards.export"),
        ("SqlLabRestApi.export_csv", {}, "dashboards.export"),
        # a dashboard's chart drawn: result type "full" as JSON; the dashboard's view stands for it
        ("ChartDataRestApi.data", {"result_format": "json", "result_type": "full"}, None),
        ("ChartDataRestApi.data", {"result_format": "csv", "result_type": "full"}, "dashboards.export"),
        ("ChartDataRestApi.data", {"result_format": "XLSX"}, "dashboards.export"),
        ("ChartDataRestApi.data", {"format": "csv"}, "dashboards.export"),  # GET /api/v1/chart/<id>/data/
        ("ChartDataRestApi.data", {"result_format": "json", "result_type": "samples"}, "dashboards.chart_rows"),
        ("ChartDataRestApi.data", {"result_type": "drill_detail"}, "dashboards.chart_rows"),
        ("ChartDataRestApi.data", {"type": "results"}, "dashboards.chart_rows"),
        ("ChartDataRestApi.data_from_cache", {"result_type": "samples"}, "dashboards.chart_rows"),
        # Superset's timings of a request's inner steps, listings and the front end's events
        ("ChartDataRestApi.json_dumps", {"result_format": "csv"}, None),
        ("execute_sql", {"result_type": "samples"}, None),
        ("DashboardRestApi.get_charts", {}, None),
        ("log", {"event_name": "mount_dashboard"}, None),
    ],
)
def test_superset_keeps_and_the_audit_copies_exactly_the_audited_events(action, payload, audited):
    from mo.superset_events import audited_as

    assert audited_as(action, payload) == audited
