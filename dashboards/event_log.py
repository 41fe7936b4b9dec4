"""Superset's event logger for the middle office (superset_config.py sets it as ``EVENT_LOGGER``).

Superset's stock logger writes one row into its metadata database, in its own commit, for every API call and
for each of a chart-data request's inner steps (about six rows per chart drawn, twelve charts to a dashboard):
30-40 % of a dashboard's chart-data work in Superset's process. This logger writes only what the platform's
audit copies (:func:`mo.superset_events.audited_as`: dashboard views, exports, chart rows) and the front end's
page-open events that Superset's home page lists as recent activity; the rest is counted in the stats logger only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flask import has_request_context
from superset.extensions import stats_logger_manager
from superset.utils.log import DBEventLogger, collect_request_payload

try:
    from mo.superset_events import RECENT_ACTIVITY_EVENTS, audited_as
except ImportError:  # a workstation: the platform's package is beside this folder (the image puts it on PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from mo.superset_events import RECENT_ACTIVITY_EVENTS, audited_as

FRONT_END_EVENTS = "log"  # the action of the front end's batch of events (/superset/log/)


class AuditedEventLogger(DBEventLogger):
    """Superset's database event logger, keeping only the events the platform audits or Superset lists."""

    def log_with_context(  # type: ignore[override]
        self,
        action: str,
        duration: Any = None,
        object_ref: str | None = None,
        log_to_statsd: bool = True,
        database: Any = None,
        **payload_override: Any,
    ) -> None:
        if action != FRONT_END_EVENTS:
            payload = collect_request_payload() if has_request_context() else {}
            payload.update(payload_override)
            if audited_as(action, payload) is None:
                if log_to_statsd:
                    stats_logger_manager.instance.incr(action)
                return
        super().log_with_context(action, duration, object_ref, log_to_statsd, database, **payload_override)

    def log(self, user_id: Any, action: str, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if action == FRONT_END_EVENTS:
            records = [
                r
                for r in kwargs.get("records") or []
                if isinstance(r, dict) and r.get("event_name") in RECENT_ACTIVITY_EVENTS
            ]
            if not records:
                return
            kwargs["records"] = records
        super().log(user_id, action, *args, **kwargs)
