"""One compiler from segment rules to SQL, for Spark (batch membership over the lake) and for the serving
database (PostgreSQL, or SQLite on the embedded default) where the segment preview runs; the ``duckdb``
dialect serves the columnar preview copy (mo/serving_store/columnar.py).

Safety is structural rather than by escaping: every value (including event types, custom tag names and the
event window bounds) is a named bound parameter (``:p0``, ``:p1`` ...), and the only identifiers in the SQL
text are contract column names (a whitelist read from schemas/marts/) and table names the caller passes,
both checked against a strict pattern and quoted. So a value such as ``x' OR '1'='1`` is just a string the
database compares with.

Semantics are the same in every dialect, which the tests check on the same data:
- A leaf on a missing value is false, never unknown (``COALESCE(leaf, FALSE)``): ``not {preferred_channel eq
  app}`` includes customers without a preferred channel, as a marketer reading it expects, and each leaf's
  truth value is a plain boolean that membership can record as a matched clause.
- Event leaves count customer_event_daily rows in the ``within_days`` calendar days ending on the as-of date
  (``as_of - within_days + 1 <= event_date <= as_of``), so "in the last 30 days" on 2026-03-31 starts on
  2026-03-02; no events count as 0, so ``count lt 1`` means "none in the window".
- On a timestamp column a day (``{"days_from_as_of": N}`` or ``"YYYY-MM-DD"``) stands for the whole day, so the
  comparison is on the date: ``lte`` D is before the end of D, ``gte`` D from its start, ``eq`` D within it,
  ``gt`` D from the next day on, ``lt`` D before it; ``between`` and ``in`` likewise. Full timestamps compare as
  instants.
- ``contains`` is a case-sensitive substring test (``instr``/``strpos``; LIKE is case-insensitive in SQLite).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mo.segments.rules import (
    is_relative_date,
    is_whole_day,
    parse_temporal,
    profile_columns,
    validate_rule,
)

Dialect = Literal["spark", "postgresql", "sqlite", "duckdb"]
DIALECTS: tuple[str, ...] = ("spark", "postgresql", "sqlite", "duckdb")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYMBOL = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_LABEL_SYMBOL = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True)
class Clause:
    """One leaf of a compiled rule.

    ``sql`` is the leaf's boolean expression (never NULL). ``negated`` is true under an odd number of NOTs: the
    leaf then supports membership when it is false, which ``holds_sql`` and ``reason`` express.
    """

    path: str
    label: str
    sql: str
    negated: bool = False

    @property
    def holds_sql(self) -> str:
        return f"(NOT {self.sql})" if self.negated else self.sql

    @property
    def reason(self) -> str:
        """'<path>: <label>' as recorded in membership.matched_clauses ("why is this customer in")."""
        return f"{self.path}: {'not ' if self.negated else ''}{self.label}"


@dataclass(frozen=True)
class CompiledRule:
    where_sql: str
    params: dict[str, Any]
    clauses: list[Clause]
    dialect: str = "spark"
    rule: dict = field(default_factory=dict, repr=False)

    def where_over(self, leaf_sql: Mapping[str, str]) -> str:
        """The rule's boolean expression with each leaf replaced by ``leaf_sql[path]`` (for example a column
        that already holds the leaf's value), so a query can evaluate each leaf once."""
        return _compose(self.rule, "", lambda path, _node: leaf_sql[path])


def quote_identifier(name: str, dialect: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f"`{name}`" if dialect == "spark" else f'"{name}"'


def quote_table(name: str, dialect: str) -> str:
    """A possibly qualified table name (catalog.schema.table), each part checked and quoted."""
    from mo.segments.rules import RuleError

    parts = name.split(".")
    if not all(_IDENTIFIER.match(part) for part in parts) or len(parts) > 3:
        raise RuleError("", f"table name {name!r} is not a plain (qualified) identifier")
    return ".".join(quote_identifier(part, dialect) for part in parts)


# Children of one all/any joined in one flat list at most; longer lists nest in groups of this size, so the
# expression's depth grows with the logarithm of the width: SQLite (and Spark's parser) build a chain of
# binary ANDs/ORs as deep as the list is long, and SQLite refuses expressions deeper than 1000.
_FLAT_GROUP = 8


def _join(parts: list[str], operator: str) -> str:
    if len(parts) == 1:
        return parts[0]
    while len(parts) > _FLAT_GROUP:
        parts = [_join(parts[i : i + _FLAT_GROUP], operator) for i in range(0, len(parts), _FLAT_GROUP)]
    return "(" + f" {operator} ".join(parts) + ")"


def _compose(node: dict, path: str, leaf: Callable[[str, dict], str]) -> str:
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        parts = [_compose(child, f"{path}/{key}/{i}", leaf) for i, child in enumerate(node[key])]
        return _join(parts, "AND" if key == "all" else "OR")
    if "not" in node:
        return f"(NOT {_compose(node['not'], f'{path}/not', leaf)})"
    return leaf(path, node)


def _leaves(node: dict, path: str = "", negated: bool = False):
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        for i, child in enumerate(node[key]):
            yield from _leaves(child, f"{path}/{key}/{i}", negated)
    elif "not" in node:
        yield from _leaves(node["not"], f"{path}/not", not negated)
    else:
        yield path, node, negated


def rule_leaves(rule: dict):
    """(JSON pointer, leaf node, negated) of every leaf of a validated rule, in document order."""
    return _leaves(rule)


class _Binder:
    """Names parameters p0, p1 ... and converts values to what each dialect's driver binds correctly."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, kind: str = "value") -> str:
        name = f"p{len(self.params)}"
        # DuckDB's Python API binds named parameters written $name (it has no :name form).
        marker = f"${name}" if self.dialect == "duckdb" else f":{name}"
        if kind == "date":
            assert isinstance(value, dt.date)
            self.params[name] = value.isoformat() if self.dialect == "sqlite" else value
        elif kind == "timestamp":
            assert isinstance(value, dt.datetime)
            text = value.isoformat(sep=" ")
            if self.dialect == "spark":
                # A string cast in SQL is read in the session time zone (UTC); a Python datetime would be
                # converted with the Python process's local zone on the way in.
                self.params[name] = text
                marker = f"CAST({marker} AS TIMESTAMP)"
            else:
                # SQLite compares ISO text ('YYYY-MM-DD HH:MM:SS[.ffffff]', SQLAlchemy's DateTime storage).
                self.params[name] = text if self.dialect == "sqlite" else value
        elif kind == "bool" and self.dialect == "sqlite":
            self.params[name] = 1 if value else 0
        else:
            self.params[name] = value
        return marker


def _temporal_value(value: Any, column_type: str, as_of: dt.date) -> tuple[Any, str]:
    if is_relative_date(value):
        day = as_of + dt.timedelta(days=int(value["days_from_as_of"]))
        return (day, "date") if column_type == "date" else (dt.datetime.combine(day, dt.time()), "timestamp")
    parsed = parse_temporal(value, column_type)
    if column_type == "timestamp" and not isinstance(parsed, dt.datetime):
        parsed = dt.datetime.combine(parsed, dt.time())  # type: ignore[arg-type]
    return parsed, column_type


def _label_value(value: Any) -> str:
    if is_relative_date(value):
        days = int(value["days_from_as_of"])
        return "as_of" if days == 0 else f"as_of{days:+d}d"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _day_range(value: Any, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The instants [start, end) of the day a relative date or YYYY-MM-DD names."""
    if is_relative_date(value):
        day = as_of + dt.timedelta(days=int(value["days_from_as_of"]))
    else:
        day = dt.date.fromisoformat(value)
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)


def _attr_leaf(node: dict, binder: _Binder, as_of: dt.date, dialect: str) -> tuple[str, str]:
    column = profile_columns()[node["attr"]]
    col = f"p.{quote_identifier(column.name, dialect)}"
    op = node["op"]
    value: Any = node.get("value")

    def bind(v: Any) -> str:
        if column.type in ("date", "timestamp"):
            return binder.bind(*_temporal_value(v, column.type, as_of))
        if column.type == "boolean":
            return binder.bind(v, "bool")
        if column.type == "double":
            return binder.bind(float(v))
        return binder.bind(v)

    # On a timestamp column a day (relative date or YYYY-MM-DD) stands for the whole day: the comparison is on
    # the date. Written as half-open ranges on the column so indexes and zone maps still apply.
    whole_day = column.type == "timestamp"

    def day_bound(v: Any, edge: Literal["start", "end"]) -> str:
        start, end = _day_range(v, as_of)
        return binder.bind(start if edge == "start" else end, "timestamp")

    def on_day(v: Any) -> str:
        return f"({col} >= {day_bound(v, 'start')} AND {col} < {day_bound(v, 'end')})"

    if op == "is_null":
        return f"({col} IS NULL)", f"{column.name} is null"
    if op == "not_null":
        return f"({col} IS NOT NULL)", f"{column.name} is not null"
    if op in _SYMBOL:
        if whole_day and is_whole_day(value):
            sql = {
                "eq": lambda: on_day(value),
                "ne": lambda: f"(NOT {on_day(value)})",
                "gt": lambda: f"({col} >= {day_bound(value, 'end')})",
                "gte": lambda: f"({col} >= {day_bound(value, 'start')})",
                "lt": lambda: f"({col} < {day_bound(value, 'start')})",
                "lte": lambda: f"({col} < {day_bound(value, 'end')})",
            }[op]()
        else:
            sql = f"({col} {_SYMBOL[op]} {bind(value)})"
        label = f"{column.name} {_LABEL_SYMBOL[op]} {_label_value(value)}"
    elif op in ("in", "not_in"):
        if whole_day and any(is_whole_day(v) for v in value):
            matches = [on_day(v) if is_whole_day(v) else f"({col} = {bind(v)})" for v in value]
            any_match = matches[0] if len(matches) == 1 else _join(matches, "OR")
            sql = any_match if op == "in" else f"(NOT {any_match})"
        else:
            markers = ", ".join(bind(v) for v in value)
            sql = f"({col} {'IN' if op == 'in' else 'NOT IN'} ({markers}))"
        label = f"{column.name} {'in' if op == 'in' else 'not in'} ({', '.join(_label_value(v) for v in value)})"
    elif op == "between":
        low, high = value
        if whole_day and (is_whole_day(low) or is_whole_day(high)):
            low_sql = f"{col} >= {day_bound(low, 'start') if is_whole_day(low) else bind(low)}"
            high_sql = f"{col} < {day_bound(high, 'end')}" if is_whole_day(high) else f"{col} <= {bind(high)}"
            sql = f"({low_sql} AND {high_sql})"
        else:
            sql = f"({col} BETWEEN {bind(low)} AND {bind(high)})"
        label = f"{column.name} between {_label_value(low)} and {_label_value(high)}"
    elif op == "contains":
        position = "strpos" if dialect == "postgresql" else "instr"
        sql = f"({position}({col}, {binder.bind(value)}) > 0)"
        label = f"{column.name} contains {_label_value(value)}"
    else:  # pragma: no cover - validation rejects unknown operators
        raise ValueError(op)
    return f"COALESCE({sql}, FALSE)", label


def _tag_value_sql(binder: _Binder, name: str, dialect: str) -> str:
    if dialect == "spark":
        return f"try_element_at(p.`custom_tags`, {binder.bind(name)})"
    if dialect == "postgresql":
        return f'(CAST(p."custom_tags" AS jsonb) ->> {binder.bind(name)})'
    # The JSON path is a bound parameter too; the name is a checked identifier, quoted as a JSON path key.
    json_path = '$."' + name + '"'
    if dialect == "duckdb":
        return f'json_extract_string(p."custom_tags", {binder.bind(json_path)})'
    return f'json_extract(p."custom_tags", {binder.bind(json_path)})'


def _tag_leaf(node: dict, binder: _Binder, dialect: str) -> tuple[str, str]:
    name, op = node["tag"], node["op"]
    value: Any = node.get("value")
    expr = _tag_value_sql(binder, name, dialect)
    if op == "is_null":
        return f"({expr} IS NULL)", f"tag {name} is null"
    if op == "not_null":
        return f"({expr} IS NOT NULL)", f"tag {name} is not null"
    if op == "in":
        markers = ", ".join(binder.bind(v) for v in value)
        sql = f"({expr} IN ({markers}))"
        label = f"tag {name} in ({', '.join(_label_value(v) for v in value)})"
    else:
        sql = f"({expr} {_SYMBOL[op]} {binder.bind(value)})"
        label = f"tag {name} {_LABEL_SYMBOL[op]} {_label_value(value)}"
    return f"COALESCE({sql}, FALSE)", label


def _event_leaf(node: dict, binder: _Binder, as_of: dt.date, dialect: str, events: str) -> tuple[str, str]:
    days = int(node["within_days"])
    count = node.get("count") or {"op": "gte", "value": 1}
    q = lambda name: quote_identifier(name, dialect)  # noqa: E731
    start = as_of - dt.timedelta(days=days - 1)
    total = (
        f"COALESCE((SELECT SUM(e.{q('event_count')}) FROM {events} e"
        f" WHERE e.{q('customer_id')} = p.{q('customer_id')}"
        f" AND e.{q('event_type')} = {binder.bind(node['event'])}"
        f" AND e.{q('event_date')} BETWEEN {binder.bind(start, 'date')} AND {binder.bind(as_of, 'date')}), 0)"
    )
    sql = f"({total} {_SYMBOL[count['op']]} {binder.bind(int(count['value']))})"
    if count == {"op": "gte", "value": 1}:
        label = f"{node['event']} in last {days} days"
    else:
        label = f"{node['event']} count {_LABEL_SYMBOL[count['op']]} {count['value']} in last {days} days"
    return sql, label


def compile_rule(
    rule: dict,
    *,
    dialect: Dialect,
    as_of: dt.date,
    profile: str = "customer_profile",
    events: str = "customer_event_daily",
    custom_tags: Mapping[str, tuple[str, ...] | None] | None | bool = True,
) -> CompiledRule:
    """Validate ``rule`` (RuleError lists every bad node) and compile it to a WHERE expression over ``profile``
    aliased ``p``, with event leaves as correlated subqueries on ``events``, for ``dialect``.

    Run it as ``select p.customer_id from <profile> p where <where_sql>`` with ``params``: Spark
    ``spark.sql(query, args=params)``; PostgreSQL / SQLite ``conn.execute(sqlalchemy.text(query), params)``.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    validate_rule(rule, custom_tags=custom_tags)
    quote_table(profile, dialect)  # the caller writes the FROM clause; refuse unsafe names here too
    events_sql = quote_table(events, dialect)
    binder = _Binder(dialect)
    clauses: dict[str, Clause] = {}
    for path, node, negated in _leaves(rule):
        if "attr" in node:
            sql, label = _attr_leaf(node, binder, as_of, dialect)
        elif "tag" in node:
            sql, label = _tag_leaf(node, binder, dialect)
        else:
            sql, label = _event_leaf(node, binder, as_of, dialect, events_sql)
        clauses[path] = Clause(path=path, label=label, sql=sql, negated=negated)
    where_sql = _compose(rule, "", lambda path, _node: clauses[path].sql)
    return CompiledRule(
        where_sql=where_sql,
        params=binder.params,
        clauses=list(clauses.values()),
        dialect=dialect,
        rule=rule,
    )


def member_query(compiled: CompiledRule, profile: str = "customer_profile") -> str:
    """``select p.customer_id from <profile> p where <rule>`` in the compiled rule's dialect."""
    table = quote_table(profile, compiled.dialect)
    return f"SELECT p.{quote_identifier('customer_id', compiled.dialect)} FROM {table} p WHERE {compiled.where_sql}"
