"""Segment definitions: validated against schemas/segments/segment.schema.json (and the rule checks), read from a
folder of JSON/YAML files, and versioned in the lake.

Why an Iceberg table (``<catalog>.segments.definitions``) rather than files under MO_HOME: every membership row
records the ``segment_version`` it was computed with, and "why was this customer in the segment on 3 March"
must be answerable from the lake alone, on whatever machine or cluster reads it, with the same backup and
retention as the membership itself. The table is append-only: saving a definition whose content differs from
the latest version appends version n+1, saving the same content again is a no-op. The append is a MERGE on
(segment_id, version), so two writers racing for the same version conflict in Iceberg's commit check instead
of both writing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mo.config import SCHEMAS_DIR, Settings
from mo.errors import MoError
from mo.segments.rules import (
    RULE_SCHEMA_PATH,
    RuleError,
    RuleProblem,
    limit_problems,
    read_document,
    rule_problems,
    rule_schema,
)

SEGMENT_SCHEMA_PATH = SCHEMAS_DIR / "segments" / "segment.schema.json"
EXAMPLES_DIR = SCHEMAS_DIR / "segments" / "examples"
DEFINITION_SUFFIXES = (".json", ".yaml", ".yml")


class DefinitionError(RuleError):
    """A segment definition is invalid; ``problems`` name the JSON pointer of each bad node."""

    what = "segment definition"


class SegmentNotFound(MoError):
    """No stored definition or membership for a segment."""


@dataclass(frozen=True)
class SegmentDefinition:
    id: str
    name: str
    description: str
    owner: str
    kind: str  # static | dynamic | smart
    rule: dict | None = None
    static: dict | None = None
    smart: dict | None = None
    source: str | None = field(default=None, compare=False)  # file it was read from, for messages and csv paths

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "kind": self.kind,
        }
        for key in ("rule", "static", "smart"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def static_csv(self) -> Path | None:
        """The CSV a ``static: {source: csv}`` definition points at, resolved against its file's folder."""
        if not self.static or self.static.get("source") != "csv":
            return None
        path = Path(self.static["path"])
        if not path.is_absolute() and self.source:
            path = Path(self.source).parent / path
        return path


@dataclass(frozen=True)
class StoredDefinition:
    segment_id: str
    version: int
    definition: SegmentDefinition
    created_at: dt.datetime
    created_by: str


@cache
def segment_schema() -> dict:
    return json.loads(SEGMENT_SCHEMA_PATH.read_text(encoding="utf-8"))


def _validator():
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry = Registry().with_resource(
        rule_schema()["$id"], Resource.from_contents(rule_schema())
    )  # rule.schema.json, referenced by $id
    return Draft202012Validator(segment_schema(), registry=registry)


def definition_problems(data: Any) -> list[RuleProblem]:
    """Every problem of a definition document: the definition schema, then the rule checks under /rule."""
    from mo.segments.rules import _pointer

    problems = []
    oversized: list[RuleProblem] = []
    # The rule's size limits come first: the definition schema embeds the rule schema, whose validator recurses.
    if isinstance(data, dict) and "rule" in data:
        oversized, _ = limit_problems(data["rule"])
        if oversized:
            problems += [RuleProblem("/rule" + p.path, p.reason) for p in oversized]
            data = {**data, "rule": {}}
    kind = data.get("kind") if isinstance(data, dict) else None
    is_dynamic = kind == "dynamic"
    own_key = {"dynamic": "rule", "static": "static", "smart": "smart"}.get(str(kind))
    misplaced = [k for k in ("rule", "static", "smart") if own_key and k != own_key and k in data]
    for key in misplaced:
        problems.append(RuleProblem(f"/{key}", f"not allowed for a {kind} segment (only {own_key})"))
    for error in _validator().iter_errors(data):
        path = _pointer(error.absolute_path)
        if is_dynamic and (path == "/rule" or path.startswith("/rule/")):
            continue  # the rule's own checks below say it better, once
        if error.schema is False or any(path == f"/{k}" or path.startswith(f"/{k}/") for k in misplaced):
            continue  # reported above as a misplaced key
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown key")
        elif error.validator == "oneOf" and path == "/smart":
            message = "give exactly one of threshold or top_n"
        problems.append(RuleProblem(path, message))
    if is_dynamic and "rule" in data and not oversized:
        problems += [RuleProblem("/rule" + p.path, p.reason) for p in rule_problems(data["rule"])]
    return problems


def parse_definition(data: Any, *, source: str | Path | None = None) -> SegmentDefinition:
    """A validated SegmentDefinition from a parsed document; DefinitionError lists every problem."""
    problems = definition_problems(data)
    if problems:
        raise DefinitionError(problems, source=source)
    return SegmentDefinition(
        id=data["id"],
        name=data["name"],
        description=data["description"],
        owner=data["owner"],
        kind=data["kind"],
        rule=data.get("rule"),
        static=data.get("static"),
        smart=data.get("smart"),
        source=str(source) if source else None,
    )


def read_definition_file(path: Path) -> SegmentDefinition:
    return parse_definition(read_document(path, DefinitionError), source=path)


def load_definitions(folder: Path = EXAMPLES_DIR) -> list[SegmentDefinition]:
    """Every definition in ``folder`` (*.json, *.yaml, *.yml), sorted by id; all files' problems at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MoError(f"segment definition folder not found: {folder}")
    definitions: dict[str, SegmentDefinition] = {}
    problems: list[RuleProblem] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in DEFINITION_SUFFIXES):
        try:
            definition = read_definition_file(path)
        except DefinitionError as exc:
            problems += exc.problems
            continue
        if definition.id in definitions:
            other = definitions[definition.id].source
            problems.append(RuleProblem("/id", f"segment id {definition.id!r} is also defined in {other}", str(path)))
            continue
        definitions[definition.id] = definition
    if problems:
        raise DefinitionError(problems)
    return [definitions[k] for k in sorted(definitions)]


# --- the versioned store -------------------------------------------------------------------------------------


def definitions_table(settings: Settings) -> str:
    return f"{settings.catalog_name}.segments.definitions"


def ensure_definitions_table(spark, settings: Settings) -> str:
    table = definitions_table(settings)
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.segments")
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {table} (
            segment_id string NOT NULL,
            version int NOT NULL,
            kind string NOT NULL,
            definition string NOT NULL,
            content_hash string NOT NULL,
            created_at timestamp NOT NULL,
            created_by string NOT NULL
        ) USING iceberg"""
    )
    return table


def _latest(spark, table: str, segment_ids: list[str]) -> dict[str, tuple[int, str]]:
    if not segment_ids:
        return {}
    markers = ", ".join(f":s{i}" for i in range(len(segment_ids)))
    rows = spark.sql(
        f"SELECT segment_id, max_by(struct(version, content_hash), version) AS latest FROM {table} "
        f"WHERE segment_id IN ({markers}) GROUP BY segment_id",
        args={f"s{i}": s for i, s in enumerate(segment_ids)},
    ).collect()
    return {r.segment_id: (r.latest.version, r.latest.content_hash) for r in rows}


def save_definitions(
    spark,
    settings: Settings,
    definitions: Iterable[SegmentDefinition],
    *,
    created_by: str,
    pinned: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, int]:
    """Store each definition, appending version n+1 where its content changed; {segment_id: current version}.

    ``pinned`` gives (version, content hash) for definitions numbered by the definition store in the core
    database (mo.segments.store): those are saved under exactly that version (once; saving it again is a
    no-op), so membership rows carry the store's version.
    """
    pinned = pinned or {}
    definitions = list(definitions)
    ids = [d.id for d in definitions]
    if len(set(ids)) != len(ids):
        raise MoError(f"segment ids repeat in one save: {sorted({i for i in ids if ids.count(i) > 1})}")
    table = ensure_definitions_table(spark, settings)
    spark.sql(f"REFRESH TABLE {table}")
    latest = _latest(spark, table, ids)
    versions: dict[str, int] = {}
    new_rows = []
    now = dt.datetime.now(dt.UTC)  # aware: PySpark would read a naive one in the process's local zone
    for d in definitions:
        if d.id in pinned:
            version, content_hash = pinned[d.id]
            if latest.get(d.id) != (version, content_hash):
                new_rows.append((d.id, version, d.kind, d.canonical_json(), content_hash, now, created_by))
            versions[d.id] = version
            continue
        version, content_hash = latest.get(d.id, (0, ""))
        if content_hash != d.content_hash:
            version += 1
            new_rows.append((d.id, version, d.kind, d.canonical_json(), d.content_hash, now, created_by))
        versions[d.id] = version
    if new_rows:
        frame = spark.createDataFrame(
            new_rows,
            "segment_id string, version int, kind string, definition string, content_hash string, "
            "created_at timestamp, created_by string",
        )
        view = f"segment_definitions_new_{abs(hash(tuple(ids))) % 10**8}"
        frame.createOrReplaceTempView(view)
        try:
            spark.sql(
                f"MERGE INTO {table} t USING {view} s ON t.segment_id = s.segment_id AND t.version = s.version "
                "WHEN NOT MATCHED THEN INSERT *"
            )
        finally:
            spark.catalog.dropTempView(view)
    return versions


def save_definition(spark, settings: Settings, definition: SegmentDefinition, *, created_by: str) -> int:
    return save_definitions(spark, settings, [definition], created_by=created_by)[definition.id]


def _stored(row) -> StoredDefinition:
    return StoredDefinition(
        segment_id=row.segment_id,
        version=row.version,
        definition=parse_definition(json.loads(row.definition), source=f"{row.segment_id} v{row.version}"),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def definition_history(spark, settings: Settings, segment_id: str) -> list[StoredDefinition]:
    """Every stored version of a segment, oldest first."""
    table = ensure_definitions_table(spark, settings)
    spark.sql(f"REFRESH TABLE {table}")
    rows = spark.sql(
        f"SELECT * FROM {table} WHERE segment_id = :segment_id ORDER BY version", args={"segment_id": segment_id}
    ).collect()
    return [_stored(r) for r in rows]


def get_definition(spark, settings: Settings, segment_id: str, version: int | None = None) -> StoredDefinition:
    """A stored version of a segment (the latest when ``version`` is None)."""
    history = definition_history(spark, settings, segment_id)
    if not history:
        raise SegmentNotFound(f"segment {segment_id!r} has no stored definition in {definitions_table(settings)}")
    if version is None:
        return history[-1]
    for stored in history:
        if stored.version == version:
            return stored
    raise SegmentNotFound(f"segment {segment_id!r} has no version {version} (latest is {history[-1].version})")


__all__ = [
    "RULE_SCHEMA_PATH",
    "DefinitionError",
    "SegmentDefinition",
    "SegmentNotFound",
    "StoredDefinition",
    "definition_history",
    "get_definition",
    "load_definitions",
    "parse_definition",
    "read_definition_file",
    "save_definition",
    "save_definitions",
]


def check_path(path: Path) -> list[str]:
    """Validate a definition file, a folder of them, or a bare rule file (a document without ``kind``); one line
    per valid item. Raises DefinitionError / RuleError listing every problem (what ``mo segments validate`` runs)."""
    from mo.segments.rules import load_rule_file, validate_rule

    path = Path(path)
    if path.is_dir():
        return [f"{d.id}: {d.kind} segment, valid ({d.source})" for d in load_definitions(path)]
    if not path.is_file():
        raise MoError(f"no such file or folder: {path}")
    document = load_rule_file(path)
    if isinstance(document, dict) and "kind" in document:
        definition = parse_definition(document, source=path)
        return [f"{definition.id}: {definition.kind} segment, valid ({path})"]
    validate_rule(document, source=path)
    return [f"{path}: valid segment rule"]
