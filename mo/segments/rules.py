"""The segment rule language: structure (schemas/segments/rule.schema.json) plus the checks a JSON Schema cannot
express, against the published mart contracts.

A rule is JSON a marketer (or the segment centre UI) writes, so every mistake must come back as one readable
list: each problem names the JSON pointer of the bad node and the reason, and all problems are reported at once
(fixing one error per round trip is how people give up on a rule language). The checks read the contracts in
schemas/marts/ rather than restating column lists: a column that is added to customer_profile.yaml becomes
usable in rules with no code change, and one marked ``segmentable: false`` (tokens, the custom tags map itself,
refresh metadata) never can be.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mo.config import SCHEMAS_DIR
from mo.contracts import load_event_schemas
from mo.errors import MoError

RULE_SCHEMA_PATH = SCHEMAS_DIR / "segments" / "rule.schema.json"
PROFILE_CONTRACT_PATH = SCHEMAS_DIR / "marts" / "customer_profile.yaml"
EVENT_DAILY_CONTRACT_PATH = SCHEMAS_DIR / "marts" / "customer_event_daily.yaml"
TIMELINE_CONTRACT_PATH = SCHEMAS_DIR / "marts" / "fct_customer_events.yaml"
TAG_REGISTRY_PATH = SCHEMAS_DIR / "tags" / "registry.yaml"

ATTR_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "between", "is_null", "not_null", "contains")
TAG_OPS = ("eq", "ne", "in", "is_null", "not_null")
COUNT_OPS = ("gte", "gt", "eq", "lte", "lt")
ORDERED_OPS = ("gt", "gte", "lt", "lte", "between")
NUMERIC_TYPES = ("int", "bigint", "double")
TEMPORAL_TYPES = ("date", "timestamp")
SCALAR_TYPES = (*NUMERIC_TYPES, *TEMPORAL_TYPES, "string", "boolean")


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule: where (JSON pointer, "" for the root; ``source`` the file, if any) and why."""

    path: str
    reason: str
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}#{self.path}" if self.source else self.path or "/"
        return f"{where}: {self.reason}"


class RuleError(MoError):
    """A segment rule is invalid; ``problems`` lists every bad node with its JSON pointer and the reason."""

    what = "segment rule"

    def __init__(
        self,
        problems: list[RuleProblem] | RuleProblem | str,
        reason: str | None = None,
        *,
        source: str | Path | None = None,
    ):
        if isinstance(problems, str):
            problems = [RuleProblem(problems, reason or "invalid")]
        elif isinstance(problems, RuleProblem):
            problems = [problems]
        self.problems: list[RuleProblem] = [
            p if p.source or source is None else RuleProblem(p.path, p.reason, str(source)) for p in problems
        ]
        listed = "; ".join(str(p) for p in self.problems)
        if len(self.problems) == 1:
            message = f"invalid {self.what}: {listed}"
        else:
            message = f"invalid {self.what} ({len(self.problems)} problems): {listed}"
        super().__init__(message)


@dataclass(frozen=True)
class ProfileColumn:
    name: str
    type: str
    nullable: bool
    enum: tuple[str, ...] | None
    segmentable: bool


@cache
def profile_columns(path: str = str(PROFILE_CONTRACT_PATH)) -> dict[str, ProfileColumn]:
    """customer_profile columns from its contract, keyed by name (the identifier whitelist of the compiler)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {
        c["name"]: ProfileColumn(
            name=c["name"],
            type=c["type"],
            nullable=bool(c.get("nullable", True)),
            enum=tuple(str(v) for v in c["enum"]) if c.get("enum") else None,
            segmentable=bool(c.get("segmentable", True)) and c["type"] in SCALAR_TYPES,
        )
        for c in raw["columns"]
    }


@cache
def known_event_types() -> frozenset[str]:
    """Event types a rule may count: the stream events (schemas/events) and the timeline types that
    fct_customer_events derives from silver, listed in its contract's event_type description."""
    types = {schema.get("title", name) for name, schema in load_event_schemas().items()}
    raw = yaml.safe_load(TIMELINE_CONTRACT_PATH.read_text(encoding="utf-8"))
    for column in raw["columns"]:
        if column["name"] == "event_type":
            listed = str(column.get("description", "")).removeprefix("e.g.")
            types.update(t.strip() for t in listed.split(",") if re.fullmatch(r"[a-z][a-z0-9_]*", t.strip()))
    return frozenset(types)


def known_custom_tags(path: Path = TAG_REGISTRY_PATH) -> dict[str, tuple[str, ...] | None] | None:
    """Custom tag name -> closed value set (None when open), from the tag registry; None when there is no
    registry file, in which case any well-formed tag name is accepted."""
    if not path.exists():
        return None
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    tags: dict[str, tuple[str, ...] | None] = {}
    for entry in raw.get("tags", []):
        if entry.get("type") == "custom":
            values = entry.get("values") or (["true", "false"] if entry.get("value_type") == "boolean" else None)
            tags[entry["name"]] = tuple(_tag_text(v) for v in values) if values else None
    return tags


def _tag_text(value: Any) -> str:
    # custom_tags is map<string,string>: booleans travel as 'true'/'false'.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@cache
def rule_schema() -> dict:
    return json.loads(RULE_SCHEMA_PATH.read_text(encoding="utf-8"))


def _pointer(parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _schema_problems(rule: Any) -> list[RuleProblem]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(rule_schema())
    problems = []
    for error in validator.iter_errors(rule):
        # The if/else chain in the schema selects one branch per node, so errors land on the exact node.
        message = error.message
        if "all | any | not | attr | tag | event" in message:
            keys = ", ".join(sorted(error.instance)) if isinstance(error.instance, dict) else ""
            message = f"not a rule node (keys: {keys or 'none'}); expected one of all, any, not, attr, tag, event"
        elif error.validator == "additionalProperties" and error.path is not None:
            message = message.replace("Additional properties are not allowed", "unknown key")
        elif error.validator == "not" and isinstance(error.instance, dict) and "value" in error.instance:
            message = f"{error.instance.get('op')} takes no value"
            problems.append(RuleProblem(_pointer([*error.absolute_path, "value"]), message))
            continue
        problems.append(RuleProblem(_pointer(error.absolute_path), message))
    return problems


def _fmt_enum(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def parse_temporal(value: Any, column_type: str) -> dt.date | dt.datetime | None:
    """ISO text of a date / timestamp value, or None when it is not one (relative dates are handled apart)."""
    if not isinstance(value, str):
        return None
    try:
        if column_type == "date":
            return dt.date.fromisoformat(value)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def is_relative_date(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"days_from_as_of"}


def _value_problem(column: ProfileColumn, value: Any, op: str) -> str | None:
    """Why ``value`` cannot be compared with ``column`` (None when it can)."""
    t = column.type
    if is_relative_date(value):
        if t not in TEMPORAL_TYPES:
            return f"a relative date applies to date and timestamp columns; {column.name} is {t}"
        return None
    if t in ("int", "bigint"):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{value!r} is not an integer ({column.name} is {t})"
    elif t == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{value!r} is not a number ({column.name} is {t})"
    elif t == "boolean":
        if not isinstance(value, bool):
            return f"{value!r} is not true or false ({column.name} is boolean)"
    elif t in TEMPORAL_TYPES:
        if parse_temporal(value, t) is None:
            shape = "YYYY-MM-DD" if t == "date" else "YYYY-MM-DD[THH:MM:SS]"
            return f"{value!r} is not a {t} ({shape}) nor {{days_from_as_of: N}} ({column.name} is {t})"
    elif t == "string":
        if not isinstance(value, str):
            return f"{value!r} is not a string ({column.name} is string)"
        if column.enum is not None and value not in column.enum:
            return f"{value!r} is not one of the values of {column.name} ({_fmt_enum(column.enum)})"
    return None


def _attr_problems(node: dict, path: str) -> Iterator[RuleProblem]:
    columns = profile_columns()
    name, op = node.get("attr"), node.get("op")
    column = columns.get(name) if isinstance(name, str) else None
    if column is None:
        yield RuleProblem(f"{path}/attr", f"{name!r} is not a column of customer_profile")
        return
    if not column.segmentable:
        yield RuleProblem(f"{path}/attr", f"{name} is not segmentable (see schemas/marts/customer_profile.yaml)")
        return
    if op not in ATTR_OPS:
        return
    if op in ORDERED_OPS and column.type in ("boolean",):
        yield RuleProblem(f"{path}/op", f"{op} does not apply to boolean column {name}; use eq or ne")
        return
    if op in ORDERED_OPS and column.type == "string" and column.enum is not None:
        yield RuleProblem(f"{path}/op", f"{op} does not apply to {name}, whose values have no order; use in")
        return
    if op == "contains" and column.type != "string":
        yield RuleProblem(f"{path}/op", f"contains applies to string columns; {name} is {column.type}")
        return
    if op in ("is_null", "not_null") or "value" not in node:
        return
    value = node["value"]
    if op in ("in", "not_in", "between") and isinstance(value, list):
        for i, item in enumerate(value):
            if op != "between" and is_relative_date(item):
                yield RuleProblem(f"{path}/value/{i}", f"{op} takes literal values, not relative dates")
                continue
            reason = _value_problem(column, item, op)
            if reason:
                yield RuleProblem(f"{path}/value/{i}", reason)
        if op == "between" and len(value) == 2 and not any(_value_problem(column, v, op) for v in value):
            low, high = value
            comparable = not is_relative_date(low) and not is_relative_date(high)
            if column.type in TEMPORAL_TYPES and comparable:
                low, high = parse_temporal(low, column.type), parse_temporal(high, column.type)
            elif is_relative_date(low) and is_relative_date(high):
                low, high, comparable = low["days_from_as_of"], high["days_from_as_of"], True
            if comparable and low > high:  # type: ignore[operator]
                yield RuleProblem(f"{path}/value", f"between needs low <= high, got {value[0]!r} > {value[1]!r}")
    elif op == "contains":
        if column.enum is not None:
            yield RuleProblem(f"{path}/op", f"contains does not apply to {name}, which has fixed values; use eq or in")
    elif not isinstance(value, list):
        reason = _value_problem(column, value, op)
        if reason:
            yield RuleProblem(f"{path}/value", reason)


def _tag_problems(
    node: dict, path: str, custom_tags: Mapping[str, tuple[str, ...] | None] | None
) -> Iterator[RuleProblem]:
    name = node.get("tag")
    if custom_tags is None or node.get("op") not in TAG_OPS:
        return
    if not isinstance(name, str) or name not in custom_tags:
        known = ", ".join(sorted(custom_tags)) or "none"
        yield RuleProblem(f"{path}/tag", f"{name!r} is not a custom tag in the tag registry (custom tags: {known})")
        return
    allowed = custom_tags[name]
    if allowed is None or "value" not in node:
        return
    values = node["value"] if isinstance(node["value"], list) else [node["value"]]
    for i, item in enumerate(values):
        if isinstance(item, str) and item not in allowed:
            where = f"{path}/value/{i}" if isinstance(node["value"], list) else f"{path}/value"
            yield RuleProblem(where, f"{item!r} is not one of the values of tag {name} ({_fmt_enum(allowed)})")


def _semantic_problems(
    node: Any, path: str, custom_tags: Mapping[str, tuple[str, ...] | None] | None, skip: set[str]
) -> Iterator[RuleProblem]:
    if not isinstance(node, dict):
        return
    if isinstance(node.get("all"), list) or isinstance(node.get("any"), list):
        key = "all" if "all" in node else "any"
        for i, child in enumerate(node[key]):
            yield from _semantic_problems(child, f"{path}/{key}/{i}", custom_tags, skip)
    elif "not" in node:
        yield from _semantic_problems(node["not"], f"{path}/not", custom_tags, skip)
    elif "attr" in node:
        yield from _attr_problems(node, path)
    elif "tag" in node:
        yield from _tag_problems(node, path, custom_tags)
    elif "event" in node:
        event = node.get("event")
        if isinstance(event, str) and event not in known_event_types():
            known = ", ".join(sorted(known_event_types()))
            yield RuleProblem(f"{path}/event", f"{event!r} is not a known event type ({known})")


def rule_problems(
    rule: Any, *, custom_tags: Mapping[str, tuple[str, ...] | None] | None | bool = True
) -> list[RuleProblem]:
    """Every problem of ``rule``, structural and semantic, in document order; empty when it is valid.

    ``custom_tags``: True reads the tag registry; a mapping is used as the registry; None accepts any tag name.
    """
    registry = known_custom_tags() if custom_tags is True else (custom_tags or None)
    structural = _schema_problems(rule)
    # Semantic checks are defensive about shape; a key with a structural error is reported once.
    broken = {p.path for p in structural}
    semantic = [p for p in _semantic_problems(rule, "", registry, broken) if p.path not in broken]
    seen: set[tuple[str, str]] = set()
    problems = []
    for problem in [*structural, *semantic]:
        if (problem.path, problem.reason) not in seen:
            seen.add((problem.path, problem.reason))
            problems.append(problem)
    return sorted(problems, key=lambda p: _path_key(p.path))


def _path_key(path: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in path.split("/")[1:]]


def validate_rule(rule: Any, *, custom_tags: Mapping[str, tuple[str, ...] | None] | None | bool = True, source=None):
    """Raise RuleError listing every problem of ``rule``; return the rule when it is valid."""
    problems = rule_problems(rule, custom_tags=custom_tags)
    if problems:
        raise RuleError(problems, source=source)
    return rule


def load_rule_file(path: Path) -> dict:
    """A rule from a .json or .yaml file (a segment definition file's ``rule`` is read by definitions.py)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RuleError("", f"not valid JSON/YAML: {exc}", source=path) from None
    return data
