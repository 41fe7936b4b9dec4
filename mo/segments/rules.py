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
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mo.config import SCHEMAS_DIR
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

# Size limits, checked before anything walks the rule recursively (the JSON Schema validator, the semantic
# checks, the compiler) or hands it to a database. A rule is typed by any marketer, so its cost must be bounded
# by what every engine compiles: SQLite refuses expressions deeper than 1000 and caps parser nesting, statements
# at 32766 bound parameters; PostgreSQL plans each leaf and each event subquery separately. The compiler keeps
# SQL depth logarithmic in the width of an all/any (see compiler._compose), so these limits, not the engines,
# decide what is accepted; tests/segments/test_rule_limits.py runs rules at every limit on every engine.
MAX_RULE_BYTES = 64 * 1024  # compact UTF-8 JSON of the whole rule
MAX_RULE_DEPTH = 20  # levels of nodes: a leaf alone is 1, {"not": leaf} is 2
MAX_RULE_LEAVES = 500  # attr, tag and event conditions
# Event conditions compile to correlated subqueries; DuckDB's planning time grows faster than quadratically with
# their number (on 300 customers: 25 take 0.2 s, 50 take 1 s, 100 take 5 s, 200 take 44 s).
MAX_RULE_EVENT_CONDITIONS = 20
MAX_RULE_VALUES = 10_000  # scalar values in the rule (each is a bound parameter)
MAX_STRING_LENGTH = 1_000  # characters of one string value
# A rule or definition file: the rule's JSON plus a definition's text fields and YAML indentation.
MAX_FILE_BYTES = 4 * MAX_RULE_BYTES
# Plain JSON nesting (a value that is a list of lists ...) beside the node levels: a node level is at most
# two containers (a node object and its all/any list), a leaf adds its value list and a relative date object.
_MAX_JSON_DEPTH = 2 * MAX_RULE_DEPTH + 3
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Dates and timestamps exactly as documented (schemas/segments/README.md): YYYY-MM-DD, and for timestamps
# optionally THH:MM:SS with up to 6 fraction digits and a zone (Z or +HH:MM; read as UTC when absent).
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?)?")


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule: where (JSON pointer, "" for the root; ``source`` the file, if any) and why."""

    path: str
    reason: str
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}#{self.path}" if self.source else self.path or "/"
        return _printable(f"{where}: {self.reason}")


def _printable(text: str) -> str:
    """A message that every terminal, log and JSON encoder accepts, whatever the rule held (NUL, lone surrogates)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


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
    """Event types a rule may count: the ``event_type`` enum of the timeline contract
    (schemas/marts/fct_customer_events.yaml), which dbt enforces on fct_customer_events with accepted_values and
    which covers every stream event contract (schemas/events) and every type derived from silver."""
    raw = yaml.safe_load(TIMELINE_CONTRACT_PATH.read_text(encoding="utf-8"))
    column = next(c for c in raw["columns"] if c["name"] == "event_type")
    return frozenset(str(t) for t in column["enum"])


@cache
def event_retention_days() -> int:
    """How many days of customer_event_daily the serving store keeps (``event_retention_days`` in
    schemas/serving/serving.yaml): the longest event window a rule may ask for, so a preview never counts a
    window whose early days it does not hold."""
    from mo.serving_store.contract import load_serving_contract

    return load_serving_contract().event_retention_days


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


@cache
def _rule_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(rule_schema())


def _schema_problems(rule: Any) -> list[RuleProblem]:
    problems = []
    for error in _rule_validator().iter_errors(rule):
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
    if not (DATE_TEXT if column_type == "date" else TIMESTAMP_TEXT).fullmatch(value):
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


def is_whole_day(value: Any) -> bool:
    """A bound that names a day rather than an instant (a relative date or ``YYYY-MM-DD``): on a timestamp
    column it compares on the date, so ``lte`` that day includes the whole day."""
    return is_relative_date(value) or (isinstance(value, str) and DATE_TEXT.fullmatch(value) is not None)


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
            shape = "YYYY-MM-DD" if t == "date" else "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM]"
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
        days, kept = node.get("within_days"), event_retention_days()
        if isinstance(days, int) and not isinstance(days, bool) and days > kept:
            yield RuleProblem(
                f"{path}/within_days",
                f"{days} days is longer than the {kept} days of events the serving store keeps "
                "(event_retention_days in schemas/serving/serving.yaml)",
            )


def _scalar_problem(value: Any) -> str | None:
    """Why a JSON scalar cannot travel to every engine unchanged (None when it can)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"the integer is outside the 64-bit range ({INT64_MIN} to {INT64_MAX})"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN and Infinity are not numbers a rule can compare"
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            return f"a string of {len(value)} characters is longer than {MAX_STRING_LENGTH} (MAX_STRING_LENGTH)"
        if "\x00" in value:
            return "a string contains a NUL character"
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            return "a string contains a lone surrogate (not valid Unicode text)"
    return None


def _json_size(value: Any) -> int:
    """Bytes of a scalar in compact UTF-8 JSON."""
    if isinstance(value, bool) or value is None:
        return 5 if value is False else 4
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 2 + value.count('"') + value.count("\\")
    return len(str(value))


def _items(values: Any, path: str, level: int, depth: int, in_value: bool) -> Iterator[tuple[Any, str, int, int, bool]]:
    for i, item in enumerate(values):
        yield item, f"{path}/{i}", level, depth, in_value


def limit_problems(rule: Any) -> tuple[list[RuleProblem], list[RuleProblem]]:
    """(size problems, value problems) of ``rule``, by one iterative walk that stops as soon as the rule is larger
    than MAX_RULE_BYTES: no recursion, so a rule nested 100,000 deep or holding 100,000 leaves costs as little as
    one at the limit. Size problems (bytes, depth, leaves, values) stop validation there; value problems (numbers
    outside 64-bit or not finite, strings with NUL, lone surrogates or too long) are reported with the rest."""
    size_problems: list[RuleProblem] = []
    value_problems: list[RuleProblem] = []
    reported: set[str] = set()  # each size limit once, at the first node past it
    size = leaves = events = values = 0

    def over(kind: str, path: str, reason: str) -> None:
        if kind not in reported:
            reported.add(kind)
            size_problems.append(RuleProblem(path, reason))

    # Each entry: (value, pointer, node level or 0 when not in a node position, JSON depth, inside a value).
    stack: list[Iterator[tuple[Any, str, int, int, bool]]] = [iter([(rule, "", 1, 1, False)])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        value, path, level, depth, in_value = item
        if level > MAX_RULE_DEPTH:
            over("depth", path, f"nested deeper than {MAX_RULE_DEPTH} levels of all/any/not (MAX_RULE_DEPTH)")
            continue
        if depth > _MAX_JSON_DEPTH:
            over("json depth", path, f"nested deeper than {_MAX_JSON_DEPTH} levels of lists and objects")
            continue
        if isinstance(value, dict):
            size += 1 + 2 * len(value)  # braces, a colon and a comma (or brace) per key
            group = level and any(k in value for k in ("all", "any", "not"))
            if level and not group:
                leaves += 1
                if leaves > MAX_RULE_LEAVES:
                    over("leaves", path, f"more than {MAX_RULE_LEAVES} conditions (MAX_RULE_LEAVES)")
                if "event" in value:
                    events += 1
                    if events > MAX_RULE_EVENT_CONDITIONS:
                        over(
                            "events",
                            path,
                            f"more than {MAX_RULE_EVENT_CONDITIONS} event conditions (MAX_RULE_EVENT_CONDITIONS)",
                        )
            children = []
            for key, child in value.items():
                key_text = str(key)
                size += _json_size(key_text)
                child_path = f"{path}/{key_text.replace('~', '~0').replace('/', '~1')}"
                reason = _scalar_problem(key_text)
                if reason:
                    value_problems.append(RuleProblem(child_path, f"key: {reason}"))
                child_level = level + 1 if group and key == "not" else 0
                children.append((child, child_path, child_level, depth + 1, in_value or key == "value"))
                if group and key in ("all", "any") and isinstance(child, list):
                    children[-1] = (child, child_path, -(level + 1), depth + 1, False)
            stack.append(iter(children))
        elif isinstance(value, list | tuple):
            size += 1 + max(len(value), 1)
            # A negative level marks the list of an all/any: its items are nodes one level down.
            item_level = -level if level < 0 else 0
            stack.append(_items(value, path, item_level, depth + 1, in_value))
        else:
            size += _json_size(value)
            if in_value and not isinstance(value, bool):
                values += 1
                if values > MAX_RULE_VALUES:
                    over("values", path, f"more than {MAX_RULE_VALUES} values (MAX_RULE_VALUES)")
            reason = _scalar_problem(value)
            if reason:
                value_problems.append(RuleProblem(path, reason))
        if size > MAX_RULE_BYTES:
            size_problems.append(
                RuleProblem("", f"the rule is larger than {MAX_RULE_BYTES} bytes of JSON (MAX_RULE_BYTES)")
            )
            break
    return size_problems, value_problems


def rule_problems(
    rule: Any, *, custom_tags: Mapping[str, tuple[str, ...] | None] | None | bool = True
) -> list[RuleProblem]:
    """Every problem of ``rule``, structural and semantic, in document order; empty when it is valid.

    ``custom_tags``: True reads the tag registry; a mapping is used as the registry; None accepts any tag name.
    """
    oversized, bad_values = limit_problems(rule)
    if oversized:
        return oversized
    registry = known_custom_tags() if custom_tags is True else (custom_tags or None)
    # A bad scalar is reported once, by what is wrong with it, not by what the schema or the column expected.
    bad = {p.path for p in bad_values}
    structural = [p for p in _schema_problems(rule) if p.path not in bad]
    # Semantic checks are defensive about shape; a key with a structural error is reported once.
    broken = {p.path for p in structural} | bad
    semantic = [p for p in _semantic_problems(rule, "", registry, broken) if p.path not in broken]
    seen: set[tuple[str, str]] = set()
    problems = []
    for problem in [*bad_values, *structural, *semantic]:
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
    return read_document(path, RuleError)


def read_document(path: Path, error: type[RuleError]) -> Any:
    """A JSON or YAML document from a file, refusing (``error``, pointer "") a file larger than MAX_FILE_BYTES
    or nested too deeply for the parsers, before either reads it into memory or recurses through it."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise error("", f"the file is {size} bytes, more than {MAX_FILE_BYTES} (MAX_FILE_BYTES)", source=path)
    text = path.read_text(encoding="utf-8")
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        return json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise error("", f"not valid {kind}: {exc}", source=path) from None
    except RecursionError:
        raise error("", f"nested too deeply to read as {kind}", source=path) from None
