"""Which of Superset's logged events the platform audits: one rule for both sides of the audit.

Superset's process keeps only these events in its event log (dashboards/event_log.py, Superset's
``EVENT_LOGGER``), and the audit copy (:mod:`mo.dashboards_audit`) turns them into audit entries. Every other
event (chart data that only draws a dashboard's charts, the front end's own events, listings) is not written:
each written event costs Superset a commit to its metadata database inside the request, which was 30-40 % of a
dashboard's chart-data work (docs/benchmarks.md, dashboards).

Standard library only: Superset's environment imports this module (its image copies it beside mo/dashboards.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VIEW = "dashboards.view"
EXPORT = "dashboards.export"
CHART_ROWS = "dashboards.chart_rows"

DASHBOARD_GET = "DashboardRestApi.get"
EXPORT_ACTIONS = frozenset(
    {
        "DashboardRestApi.export",
        "ChartRestApi.export",
        "DatasetRestApi.export",
        "DatabaseRestApi.export",
        "SavedQueryRestApi.export",
        "SqlLabRestApi.export_csv",
        "SqlLabRestApi.export_streaming_csv",
    }
)
CHART_DATA_ACTIONS = frozenset(
    {"ChartDataRestApi.data", "ChartDataRestApi.data_from_cache", "ChartDataRestApi.get_data"}
)
EXPORT_FORMATS = frozenset({"csv", "xlsx"})
# Rows out of a chart: its samples, drill to detail, and the "view query results" table. A dashboard's charts
# draw with result type "full": the dashboard's view stands for them.
ROW_RESULT_TYPES = frozenset({"samples", "drill_detail", "results"})
# The front end's own events (action "log", one record each) that Superset's home page lists as recent activity.
RECENT_ACTIVITY_EVENTS = frozenset({"mount_dashboard", "mount_explorer"})


def _field(payload: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = payload.get(name)
        if value:
            return str(value).lower()
    return ""


def audited_as(action: str, payload: Mapping[str, Any]) -> str | None:
    """The audit action a Superset event stands for (``dashboards.view``, ``.export``, ``.chart_rows``), or None
    when the platform does not audit it. ``payload``: the event's request payload as Superset logs it (URL
    parameters and JSON body; a chart-data request's ``result_format`` and ``result_type``, or ``format`` and
    ``type`` on the GET form)."""
    if action == DASHBOARD_GET:
        return VIEW
    if action in EXPORT_ACTIONS:
        return EXPORT
    if action in CHART_DATA_ACTIONS:
        if _field(payload, "result_format", "format") in EXPORT_FORMATS:
            return EXPORT
        if _field(payload, "result_type", "type") in ROW_RESULT_TYPES:
            return CHART_ROWS
    return None
