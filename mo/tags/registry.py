"""The tag registry as data: load it, validate it, and hand its custom rules to dbt.

Why a registry file rather than code: a marketer adds a rule-based tag by adding an entry to
``schemas/tags/registry.yaml``; the next profile build evaluates it (the dbt macro
``dbt/macros/tags/custom_tags.sql`` compiles each rule to a CASE expression over customer_profile columns).
The same file lists every built-in tag (a column of the mart), so it is the one catalogue a marketer browses.

Validation happens in two layers. The JSON Schema (``registry.schema.json``) checks the shape; the checks
here need the profile contract (``schemas/marts/customer_profile.yaml``): built-in entries must match the
mart's columns one for one (name, group, value type, closed value set), custom rules may only refer to
segmentable profile columns with values of the column's type, and case values must be of the tag's value
type. dbt checks the column names again at compile time, so a registry passed to dbt by other means still
cannot refer to an unknown column. Every error names the file, the tag and the JSON path of the bad node.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mo.config import SCHEMAS_DIR
from mo.errors import ContractViolation

REGISTRY_PATH = SCHEMAS_DIR / "tags" / "registry.yaml"
REGISTRY_SCHEMA_PATH = SCHEMAS_DIR / "tags" / "registry.schema.json"
PROFILE_CONTRACT_PATH = SCHEMAS_DIR / "marts" / "customer_profile.yaml"

# Column groups of customer_profile that are not tags (identity, bookkeeping, the custom map itself).
NON_TAG_GROUPS = frozenset({"identity", "meta", "custom"})
# Profile column type -> registry value_type.
VALUE_TYPE_OF_COLUMN = {
    "bigint": "int",
    "int": "int",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}
ORDERING_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})


class TagRegistryError(ContractViolation):
    """The tag registry does not match its schema or the customer_profile contract."""


@dataclass(frozen=True)
class ProfileColumn:
    name: str
    type: str
    group: str
    nullable: bool
    segmentable: bool
    enum: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class TagDefinition:
    name: str
    description: str
    owner: str
    type: str  # builtin | custom
    value_type: str
    group: str
    refresh: str
    rule: dict[str, Any]
    values: tuple[Any, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "type": self.type,
            "value_type": self.value_type,
            "group": self.group,
            "refresh": self.refresh,
            "rule": self.rule,
        }
        if self.values is not None:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True)
class TagRegistry:
    path: Path
    tags: tuple[TagDefinition, ...] = field(default_factory=tuple)

    @property
    def builtin(self) -> list[TagDefinition]:
        return [t for t in self.tags if t.type == "builtin"]

    @property
    def custom(self) -> list[TagDefinition]:
        return [t for t in self.tags if t.type == "custom"]

    def get(self, name: str) -> TagDefinition:
        for t in self.tags:
            if t.name == name:
                return t
        raise KeyError(name)


def load_profile_columns(path: Path | None = None) -> dict[str, ProfileColumn]:
    """The columns of the customer_profile contract, by name, in contract order."""
    data = yaml.safe_load((path or PROFILE_CONTRACT_PATH).read_text(encoding="utf-8"))
    columns: dict[str, ProfileColumn] = {}
    for c in data["columns"]:
        enum = c.get("enum")
        columns[c["name"]] = ProfileColumn(
            name=c["name"],
            type=c["type"],
            group=c.get("group", ""),
            nullable=bool(c.get("nullable", True)),
            segmentable=bool(c.get("segmentable", True)) and c.get("group") not in NON_TAG_GROUPS,
            enum=tuple(enum) if enum is not None else None,
        )
    return columns


def _iso_dates(node: Any) -> Any:
    """YAML reads an unquoted 2025-01-31 as a date; the registry's values are JSON, so make it a string."""
    if isinstance(node, dict):
        return {k: _iso_dates(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_iso_dates(v) for v in node]
    if isinstance(node, dt.date | dt.datetime):
        return node.isoformat()
    return node


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p) for p in path) if path else "/"


def _entry_label(document: Any, path: list[Any]) -> str:
    """'tag 'renewal_focus'' for a path under /tags/<i>, else 'registry'."""
    if len(path) >= 2 and path[0] == "tags" and isinstance(path[1], int):
        try:
            name = document["tags"][path[1]].get("name")
        except (AttributeError, IndexError, KeyError, TypeError):
            name = None
        return f"tag {name!r}" if name else f"tag #{path[1]}"
    return "registry"


def _schema_errors(document: Any) -> list[str]:
    schema = json.loads(REGISTRY_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        # oneOf failures (a condition node) say little; the closest sub-error says what is wrong.
        best = jsonschema.exceptions.best_match([error])
        path = list(best.absolute_path)
        messages.append(f"{_entry_label(document, path)} at {_pointer(path)}: {best.message}")
    return messages


def _is_date(value: Any) -> bool:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def value_matches(value_type: str, value: Any) -> bool:
    """Whether a JSON scalar is a value of a registry value_type (bool is not a number here)."""
    if value_type == "boolean":
        return isinstance(value, bool)
    if value_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if value_type == "double":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if value_type == "date":
        return isinstance(value, str) and _is_date(value)
    if value_type == "timestamp":
        return isinstance(value, str) and _is_timestamp(value)
    return isinstance(value, str)


def iter_leaves(condition: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, leaf) for every attribute leaf of a condition."""
    if "all" in condition or "any" in condition:
        key = "all" if "all" in condition else "any"
        for i, child in enumerate(condition[key]):
            yield from iter_leaves(child, f"{path}/{key}/{i}")
    elif "not" in condition:
        yield from iter_leaves(condition["not"], f"{path}/not")
    else:
        yield path, condition


def _leaf_errors(leaf: dict[str, Any], pointer: str, columns: dict[str, ProfileColumn]) -> list[str]:
    attr, op = leaf["attr"], leaf["op"]
    column = columns.get(attr)
    if column is None:
        return [f"{pointer}/attr: unknown column {attr!r} (not in customer_profile)"]
    if not column.segmentable:
        return [f"{pointer}/attr: column {attr!r} cannot be used in a rule"]
    value_type = VALUE_TYPE_OF_COLUMN.get(column.type)
    if value_type is None:
        return [f"{pointer}/attr: column {attr!r} of type {column.type} cannot be used in a rule"]
    if op in ("is_null", "not_null"):
        return []
    if op in ORDERING_OPS and value_type == "boolean":
        return [f"{pointer}/op: {op} does not apply to boolean column {attr!r}"]
    values = leaf["value"] if isinstance(leaf["value"], list) else [leaf["value"]]
    errors = []
    for i, v in enumerate(values):
        where = f"{pointer}/value" + (f"/{i}" if isinstance(leaf["value"], list) else "")
        if not value_matches(value_type, v):
            errors.append(f"{where}: {v!r} is not a {value_type} value of column {attr!r}")
        elif column.enum is not None and op in ("eq", "ne", "in", "not_in") and v not in column.enum:
            errors.append(f"{where}: {v!r} is not one of {list(column.enum)} (column {attr!r})")
    return errors


def _semantic_errors(document: dict[str, Any], columns: dict[str, ProfileColumn]) -> list[str]:
    errors: list[str] = []
    tag_columns = {n: c for n, c in columns.items() if c.group not in NON_TAG_GROUPS}
    seen: dict[str, int] = {}
    builtin_seen: set[str] = set()
    for i, entry in enumerate(document["tags"]):
        name, base = entry["name"], f"/tags/{i}"
        label = f"tag {name!r} at "
        if name in seen:
            errors.append(f"{label}{base}/name: duplicate of /tags/{seen[name]}")
            continue
        seen[name] = i
        if entry["type"] == "builtin":
            column = tag_columns.get(name)
            if column is None:
                errors.append(f"{label}{base}/name: built-in tag is not a tag column of customer_profile")
                continue
            builtin_seen.add(name)
            expected = VALUE_TYPE_OF_COLUMN.get(column.type)
            if entry["value_type"] != expected:
                errors.append(f"{label}{base}/value_type: {entry['value_type']} but column {name} is {column.type}")
            if entry["group"] != column.group:
                errors.append(f"{label}{base}/group: {entry['group']} but column {name} is in group {column.group}")
            declared = entry.get("values")
            if column.enum is not None and (declared is None or list(declared) != list(column.enum)):
                errors.append(f"{label}{base}/values: must be the column's enum {list(column.enum)}")
            continue
        # custom
        if name in columns:
            errors.append(f"{label}{base}/name: a custom tag cannot reuse the customer_profile column {name!r}")
        value_type, allowed = entry["value_type"], entry.get("values")
        rule = entry["rule"]
        outcomes = [(f"{base}/rule/cases/{j}/value", case["value"]) for j, case in enumerate(rule["cases"])]
        if rule.get("else") is not None:
            outcomes.append((f"{base}/rule/else", rule["else"]))
        for where, value in outcomes:
            if not value_matches(value_type, value):
                errors.append(f"{label}{where}: {value!r} is not a {value_type}")
            elif allowed is not None and value not in allowed:
                errors.append(f"{label}{where}: {value!r} is not one of the declared values {allowed}")
        for j, case in enumerate(rule["cases"]):
            for pointer, leaf in iter_leaves(case["when"], f"{base}/rule/cases/{j}/when"):
                errors.extend(f"{label}{e}" for e in _leaf_errors(leaf, pointer, columns))
    missing = [n for n in tag_columns if n not in builtin_seen]
    if missing:
        errors.append(f"registry: built-in tag columns of customer_profile without an entry: {', '.join(missing)}")
    return errors


def parse_registry(document: Any, *, path: Path | None = None, profile_path: Path | None = None) -> TagRegistry:
    """Validate a registry document (already parsed) and return it; raises TagRegistryError."""
    source = str(path or "registry")
    document = _iso_dates(document)
    errors = _schema_errors(document)
    if not errors:
        errors = _semantic_errors(document, load_profile_columns(profile_path))
    if errors:
        more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:])})" if len(errors) > 1 else ""
        raise TagRegistryError(f"{source}: {errors[0]}{more}")
    tags = tuple(
        TagDefinition(
            name=t["name"],
            description=t["description"],
            owner=t["owner"],
            type=t["type"],
            value_type=t["value_type"],
            group=t["group"],
            refresh=t["refresh"],
            rule=t["rule"],
            values=tuple(t["values"]) if "values" in t else None,
        )
        for t in document["tags"]
    )
    return TagRegistry(path=path or REGISTRY_PATH, tags=tags)


def load_registry(path: Path | str | None = None) -> TagRegistry:
    """Read and validate the registry (default schemas/tags/registry.yaml)."""
    registry_path = Path(path) if path is not None else REGISTRY_PATH
    try:
        document = yaml.safe_load(registry_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TagRegistryError(f"{registry_path}: cannot read the tag registry ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise TagRegistryError(f"{registry_path}: not valid YAML ({exc})".replace("\n", " ")) from exc
    return parse_registry(document, path=registry_path)


def builtin_tags(registry: TagRegistry | None = None) -> list[str]:
    """Names of the built-in tags (customer_profile columns), in registry order."""
    return [t.name for t in (registry or load_registry()).builtin]


def categorical_tags(registry: TagRegistry | None = None) -> list[TagDefinition]:
    """The tags with a small set of values (an enumerated ``values`` list, or yes/no): what a distribution of
    customers per value can be drawn for (the dashboards' customer_tag_distribution)."""
    reg = registry or load_registry()
    return [t for t in reg.tags if t.values or t.value_type == "boolean"]


def registry_vars(registry: TagRegistry | None = None) -> dict[str, Any]:
    """The dbt vars carrying the custom tags: ``{"tag_registry": [{name, value_type, rule}, ...]}``, and the
    categorical tags the distribution mart counts: ``{"tag_distribution": [{name, group, type}, ...]}``.

    Built-ins are not passed in ``tag_registry``: they are the mart's own columns. The macro needs only the
    rule and the value type (case values travel as strings in the ``custom_tags`` map).
    """
    reg = registry or load_registry()
    return {
        "tag_registry": [
            {"name": t.name, "value_type": t.value_type, "rule": json.loads(json.dumps(t.rule))} for t in reg.custom
        ],
        "tag_distribution": [{"name": t.name, "group": t.group, "type": t.type} for t in categorical_tags(reg)],
    }
