"""A plain-Python reading of the rule language, written apart from the compiler, so the SQL of every target is
checked against what the rule means and not only against the other targets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mo.segments.rules import profile_columns

_CMP = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _is_day(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, str) and len(value) == 10)


def _day(value: Any, as_of: dt.date) -> dt.date:
    if isinstance(value, dict):
        return as_of + dt.timedelta(days=value["days_from_as_of"])
    return dt.date.fromisoformat(value)


def _on_timestamp(op: str, actual: dt.datetime, value: Any, as_of: dt.date) -> bool:
    """A day compared with a timestamp compares on the timestamp's date; an instant compares as an instant."""
    if _is_day(value):
        return _CMP[op](actual.date(), _day(value, as_of))
    return _CMP[op](actual, _value(value, "timestamp", as_of))


def _value(value: Any, column_type: str, as_of: dt.date) -> Any:
    if isinstance(value, dict):
        day = as_of + dt.timedelta(days=value["days_from_as_of"])
        return day if column_type == "date" else dt.datetime.combine(day, dt.time())
    if column_type == "date":
        return dt.date.fromisoformat(value)
    if column_type == "timestamp":
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return value


def holds(rule: dict, profile: dict, events: dict[tuple[int, str], list[tuple[dt.date, int]]], as_of: dt.date) -> bool:
    if "all" in rule:
        return all(holds(r, profile, events, as_of) for r in rule["all"])
    if "any" in rule:
        return any(holds(r, profile, events, as_of) for r in rule["any"])
    if "not" in rule:
        return not holds(rule["not"], profile, events, as_of)
    if "event" in rule:
        start = as_of - dt.timedelta(days=rule["within_days"] - 1)
        total = sum(n for day, n in events.get((profile["customer_id"], rule["event"]), []) if start <= day <= as_of)
        count = rule.get("count", {"op": "gte", "value": 1})
        return _CMP[count["op"]](total, count["value"])
    if "tag" in rule:
        actual = profile["custom_tags"].get(rule["tag"])
        column_type = "string"
    else:
        actual = profile[rule["attr"]]
        column_type = profile_columns()[rule["attr"]].type
    op, value = rule["op"], rule.get("value")
    if op == "is_null":
        return actual is None
    if op == "not_null":
        return actual is not None
    if actual is None:
        return False
    if column_type == "timestamp":
        if op in ("in", "not_in"):
            found = any(_on_timestamp("eq", actual, v, as_of) for v in value)
            return found if op == "in" else not found
        if op == "between":
            return _on_timestamp("gte", actual, value[0], as_of) and _on_timestamp("lte", actual, value[1], as_of)
        return _on_timestamp(op, actual, value, as_of)
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "between":
        return _value(value[0], column_type, as_of) <= actual <= _value(value[1], column_type, as_of)
    if op == "contains":
        return value in actual
    return _CMP[op](actual, _value(value, column_type, as_of))


def expected_members(rule: dict, profiles: list[dict], event_rows: list[dict], as_of: dt.date) -> set[int]:
    events: dict[tuple[int, str], list[tuple[dt.date, int]]] = {}
    for e in event_rows:
        events.setdefault((e["customer_id"], e["event_type"]), []).append((e["event_date"], e["event_count"]))
    return {p["customer_id"] for p in profiles if holds(rule, p, events, as_of)}
