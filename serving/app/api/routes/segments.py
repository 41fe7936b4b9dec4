"""Segments for marketers: create from a rule, edit (a new version, old ones kept), list, archive, preview on
the published store, static lists uploaded as customer ids or phone numbers (tokenised on arrival), and a
masked, audited export of the members.

The definitions live in the core database's one definition store (mo.segments.store); the next
``build_profiles`` computes what is made here like the segments that came from files, and a campaign
snapshots a segment through mo.segments.store.evaluate_now.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from app.api.deps import Caller, SettingsDep, SourceDep, StoreDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.core.timestamps import UtcDateTime
from app.services import audit
from app.services.idempotency import idempotency_key, run_once
from mo.errors import ConfigError
from mo.segments import store as segment_store
from mo.segments.definitions import SegmentDefinition, SegmentNotFound, definition_problems
from mo.segments.rules import RuleError
from mo.serving_store.preview import PreviewTimeout, SqlPreviewBackend, preview_segment
from mo.serving_store.store import NothingPublished, ServingStoreError

router = APIRouter(prefix="/v1/segments", tags=["segments"])

SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"
SegmentId = Annotated[str, Path(min_length=2, max_length=63, pattern=SLUG, examples=["renewal-auto-30d"])]
Kind = Literal["dynamic", "static"]
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422, 429, 503)
READ_ERRORS = problem_responses(401, 403, 404, 422, 429)
# Pointers of the definition document -> fields of the request body.
BODY_FIELD = {"/id": "/body/segment_id"}

RULE_EXAMPLE = {
    "all": [
        {"attr": "has_auto", "op": "eq", "value": True},
        {"attr": "days_to_renewal", "op": "between", "value": [0, 30]},
    ]
}


def _plain(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise ValueError("control characters are not allowed")
    return value


class SegmentFields(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What marketers call it.")
    description: str = Field(min_length=1, max_length=2000, description="Who is in it and what it is for.")
    owner: str = Field(min_length=1, max_length=80, description="The team or person accountable for it.")
    rule: dict[str, Any] | None = Field(
        None,
        description="A dynamic segment's rule (schemas/segments/rule.schema.json); absent for a static list. "
        "Problems come back as field errors under /body/rule with each node's JSON pointer.",
    )

    _text = field_validator("name", "description", "owner")(_plain)


class SegmentCreate(SegmentFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "renewal-auto-30d",
                    "name": "Auto renewals in 30 days",
                    "description": "Auto policy holders whose renewal is due within 30 days.",
                    "owner": "auto-marketing",
                    "kind": "dynamic",
                    "rule": RULE_EXAMPLE,
                },
                {
                    "segment_id": "vip-event-guests",
                    "name": "VIP event guests",
                    "description": "Guests of the December client event, uploaded by the branch.",
                    "owner": "branch-marketing",
                    "kind": "static",
                },
            ]
        },
    )
    segment_id: str = Field(min_length=2, max_length=63, pattern=SLUG, description="A stable slug.")
    kind: Kind


class SegmentEdit(SegmentFields):
    """The whole definition again; a new version is written only when something changed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Auto renewals in 45 days",
                    "description": "Auto policy holders whose renewal is due within 45 days.",
                    "owner": "auto-marketing",
                    "rule": {
                        "all": [
                            {"attr": "has_auto", "op": "eq", "value": True},
                            {"attr": "days_to_renewal", "op": "between", "value": [0, 45]},
                        ]
                    },
                }
            ]
        },
    )


class VersionRead(BaseModel):
    version: int
    name: str
    description: str
    owner: str
    rule: dict[str, Any] | None
    content_hash: str
    member_count: int | None = Field(description="A static list's members (null: no list uploaded).")
    unknown_count: int | None = Field(description="Rows of the uploaded list that matched no live customer.")
    source: str | None = Field(description="The file an import or an upload came from.")
    created_by: str
    created_at: UtcDateTime


VERSION_EXAMPLE = {
    "version": 2,
    "name": "Auto renewals in 30 days",
    "description": "Auto policy holders whose renewal is due within 30 days.",
    "owner": "auto-marketing",
    "rule": RULE_EXAMPLE,
    "content_hash": "3f2a9c1d0b7e6a54",
    "member_count": None,
    "unknown_count": None,
    "source": None,
    "created_by": "user:marketer.li",
    "created_at": "2026-12-06T10:00:00Z",
}
SEGMENT_EXAMPLE = {
    "segment_id": "renewal-auto-30d",
    "kind": "dynamic",
    "status": "active",
    "origin": "api",
    "latest_version": 2,
    "created_by": "user:marketer.li",
    "created_at": "2026-12-01T09:00:00Z",
    "updated_at": "2026-12-06T10:00:00Z",
    "archived_at": None,
    "archived_by": None,
    "current": VERSION_EXAMPLE,
}


class SegmentRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SEGMENT_EXAMPLE]})
    segment_id: str
    kind: Literal["dynamic", "static", "smart"]
    status: Literal["active", "archived"]
    origin: Literal["api", "file"]
    latest_version: int
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    archived_at: UtcDateTime | None
    archived_by: str | None
    current: VersionRead = Field(description="The latest version.")


class SegmentDetail(SegmentRead):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**SEGMENT_EXAMPLE, "versions": [{**VERSION_EXAMPLE, "version": 1}, VERSION_EXAMPLE]}]
        }
    )
    versions: list[VersionRead] = Field(description="Every version, oldest first.")


class VersionWritten(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"segment": SEGMENT_EXAMPLE, "created": True}]})
    segment: SegmentRead
    created: bool = Field(description="False when the content equals the latest version's (nothing written).")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rule": RULE_EXAMPLE, "sample_size": 10}, {"segment_id": "renewal-auto-30d", "version": 2}]
        },
    )
    segment_id: str | None = Field(None, min_length=2, max_length=63, pattern=SLUG, description="A saved segment.")
    version: int | None = Field(None, ge=1, le=1_000_000, description="Its version (default: the latest).")
    rule: dict[str, Any] | None = Field(None, description="An unsaved rule (instead of segment_id).")
    sample_size: int = Field(20, ge=0, le=100)

    @model_validator(mode="after")
    def _one_target(self) -> PreviewRequest:
        if (self.segment_id is None) == (self.rule is None):
            raise ValueError("give exactly one of segment_id or rule")
        if self.version is not None and self.segment_id is None:
            raise ValueError("version goes with segment_id")
        return self


class Bucket(BaseModel):
    value: str | None
    customers: int


class PreviewRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": None,
                    "version": None,
                    "count": 1834,
                    "sample_ids": [1001, 1007, 1012],
                    "distributions": {"gender": [{"value": "M", "customers": 1002}, {"value": "F", "customers": 832}]},
                    "clauses": ["/all/0: has_auto = true", "/all/1: days_to_renewal between 0 and 30"],
                    "refresh_id": "20261206T030000Z-1a2b",
                    "as_of_date": "2026-12-06",
                }
            ]
        }
    )
    segment_id: str | None
    version: int | None
    count: int
    sample_ids: list[int]
    distributions: dict[str, list[Bucket]]
    clauses: list[str]
    refresh_id: str | None
    as_of_date: date


class UploadRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment": SEGMENT_EXAMPLE,
                    "created": True,
                    "column": "phone",
                    "rows": 120,
                    "members": 117,
                    "unknown": 2,
                    "duplicates": 1,
                }
            ]
        }
    )
    segment: SegmentRead
    created: bool
    column: Literal["customer_id", "phone", "phone_token"]
    rows: int = Field(description="Values in the file (blank lines not counted).")
    members: int = Field(description="Live customers the list resolved to.")
    unknown: int = Field(description="Values that matched no live customer (left out).")
    duplicates: int = Field(description="Repeated values (counted once).")


class ExportedMember(BaseModel):
    customer_id: int
    name_masked: str | None
    phone_masked: str | None
    reasons: list[str]


class ExportRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment_id": "renewal-auto-30d",
                    "version": 2,
                    "method": "published_membership",
                    "refresh_id": "20261206T030000Z-1a2b",
                    "as_of_date": "2026-12-06",
                    "count": 1,
                    "members": [
                        {
                            "customer_id": 1001,
                            "name_masked": "王**",
                            "phone_masked": "138****8000",
                            "reasons": ["/all/1: days_to_renewal between 0 and 30"],
                        }
                    ],
                }
            ]
        }
    )
    segment_id: str
    version: int
    method: Literal["published_membership", "rule_on_published_profile", "static_list"]
    refresh_id: str
    as_of_date: date
    count: int
    members: list[ExportedMember]


# --- helpers ---------------------------------------------------------------------------------------------------


def _version_read(stored: segment_store.StoredVersion) -> dict[str, Any]:
    d = stored.definition
    return {
        "version": stored.version,
        "name": d.name,
        "description": d.description,
        "owner": d.owner,
        "rule": d.rule,
        "content_hash": stored.content_hash,
        "member_count": stored.member_count,
        "unknown_count": stored.unknown_count,
        "source": stored.source,
        "created_by": stored.created_by,
        "created_at": stored.created_at,
    }


def _segment_read(conn: Connection, segment_id: str, *, with_versions: bool = False) -> dict[str, Any]:
    head = segment_store.get_segment(conn, segment_id)
    if with_versions:
        history = segment_store.versions(conn, segment_id)
        current = next(v for v in history if v.version == head.latest_version)
    else:
        current = segment_store.get_version(conn, segment_id, head.latest_version)
    answer: dict[str, Any] = {
        "segment_id": head.segment_id,
        "kind": head.kind,
        "status": head.status,
        "origin": head.origin,
        "latest_version": head.latest_version,
        "created_by": head.created_by,
        "created_at": head.created_at,
        "updated_at": head.updated_at,
        "archived_at": head.archived_at,
        "archived_by": head.archived_by,
        "current": _version_read(current),
    }
    if with_versions:
        answer["versions"] = [_version_read(v) for v in history]
    return answer


def _definition_errors(problems: list[Any]) -> list[tuple[str, str]]:
    return [(BODY_FIELD.get(p.path, "/body" + p.path if p.path else "/body"), p.reason) for p in problems]


def _definition(segment_id: str, kind: str, body: SegmentFields) -> SegmentDefinition:
    """The definition document of a request, validated: every problem is a 422 field error with its pointer."""
    document: dict[str, Any] = {
        "id": segment_id,
        "name": body.name,
        "description": body.description,
        "owner": body.owner,
        "kind": kind,
    }
    if kind == "dynamic":
        if body.rule is None:
            raise ApiError(
                422, "a dynamic segment needs a rule", kind="validation", errors=[("/body/rule", "required")]
            )
        document["rule"] = body.rule
    elif body.rule is not None:
        raise ApiError(
            422,
            "a static segment has no rule: its members come from an uploaded list",
            kind="validation",
            errors=[("/body/rule", "not allowed for a static segment")],
        )
    else:
        document["static"] = {"source": "upload"}
    problems = definition_problems(document)
    if problems:
        errors = _definition_errors(problems)
        count = len(errors)
        raise ApiError(
            422,
            f"invalid segment definition ({count} problem{'s' if count != 1 else ''})",
            kind="validation",
            errors=errors,
        )
    return segment_store.definition_from(document)


def _not_found(exc: SegmentNotFound) -> ApiError:
    return ApiError(404, str(exc))


def _store_error(exc: segment_store.SegmentStoreError) -> ApiError:
    if isinstance(exc, segment_store.UploadError):
        return ApiError(
            422, f"the list cannot be read: {exc}", kind="validation", errors=[("/body/file", str(exc)[:500])]
        )
    if isinstance(exc, segment_store.SegmentExists | segment_store.SegmentArchived | segment_store.NotEvaluable):
        return ApiError(409, str(exc))
    if exc.field == "/kind":
        return ApiError(409, str(exc))
    field = BODY_FIELD.get(exc.field or "", f"/body{exc.field}" if exc.field else "/body")
    return ApiError(422, str(exc), kind="validation", errors=[(field, str(exc))])


def _written(conn: Connection, caller: Caller, segment_id: str, status: int, detail: str) -> None:
    audit.record(
        conn, principal=caller.principal, action=caller.action, resource=caller.resource, status=status, detail=detail
    )


# --- definitions -----------------------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=SegmentRead, responses=WRITE_ERRORS, summary="Create a segment")
def create_segment(
    body: SegmentCreate,
    caller: authorized(Scope.SEGMENTS_WRITE, "segments.create"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> JSONResponse:
    """Version 1 of a dynamic segment (a rule) or a static one (its list is uploaded next). The rule is checked
    with the platform's rule language: each problem is a field error at ``/body/rule/<pointer>``."""
    definition = _definition(body.segment_id, body.kind, body)

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        try:
            segment_store.create_segment(conn, definition, created_by=caller.subject)
        except segment_store.SegmentStoreError as exc:
            raise _store_error(exc) from None
        _written(conn, caller, body.segment_id, 201, f"{body.segment_id} v1 {body.kind}")
        return 201, _segment_read(conn, body.segment_id)

    try:
        return run_once(source, caller, key, body.model_dump(mode="json"), write)
    except IntegrityError:  # another request created this id between our check and our insert
        raise ApiError(409, f"segment {body.segment_id!r} already exists") from None


@router.get("", response_model=Page[SegmentRead], responses=READ_ERRORS, summary="List segments")
def list_segments(
    caller: authorized(Scope.SEGMENTS_READ, "segments.list"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[Literal["active", "archived"] | None, Query()] = None,
) -> Page[SegmentRead]:
    """By segment id; ``status`` filters."""
    after = decode_cursor(cursor, arity=1)
    if after is not None and not isinstance(after[0], str):
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        )
    with source.connect() as conn:
        heads = segment_store.list_segments(conn, status=status, after=after[0] if after else None, limit=limit + 1)
        items = [SegmentRead(**_segment_read(conn, h.segment_id)) for h in heads[:limit]]
    next_cursor = encode_cursor([heads[limit - 1].segment_id]) if len(heads) > limit else None
    return Page[SegmentRead](items=items, next_cursor=next_cursor)


@router.get("/{segment_id}", response_model=SegmentDetail, responses=READ_ERRORS, summary="A segment and its versions")
def get_segment(
    segment_id: SegmentId, caller: authorized(Scope.SEGMENTS_READ, "segments.read"), source: SourceDep
) -> SegmentDetail:
    with source.connect() as conn:
        try:
            return SegmentDetail(**_segment_read(conn, segment_id, with_versions=True))
        except SegmentNotFound as exc:
            raise _not_found(exc) from None


@router.post(
    "/{segment_id}/versions",
    response_model=VersionWritten,
    responses=WRITE_ERRORS,
    summary="Edit a segment: a new version (old versions are kept)",
)
def edit_segment(
    segment_id: SegmentId,
    body: SegmentEdit,
    caller: authorized(Scope.SEGMENTS_WRITE, "segments.edit"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> JSONResponse:
    """The whole definition again (name, description, owner, and the rule of a dynamic segment). A new version
    when anything changed (``created``: true), else the latest is returned unchanged. An archived segment is a
    409; the kind never changes (a rule on a static segment is a 422)."""

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        try:
            head = segment_store.get_segment(conn, segment_id, for_update=True)
        except SegmentNotFound as exc:
            raise _not_found(exc) from None
        if head.status == "archived":
            raise ApiError(409, f"segment {segment_id!r} is archived: it takes no new version")
        if head.kind not in ("dynamic", "static"):
            raise ApiError(409, f"segment {segment_id!r} is {head.kind}: edit its definition file instead")
        definition = _definition(segment_id, head.kind, body)
        try:
            stored, created = segment_store.save_version(conn, definition, created_by=caller.subject)
        except segment_store.SegmentStoreError as exc:
            raise _store_error(exc) from None
        if created:
            _written(conn, caller, segment_id, 200, f"{segment_id} v{stored.version}")
        return 200, {"segment": _segment_read(conn, segment_id), "created": created}

    return run_once(source, caller, key, {"segment_id": segment_id, **body.model_dump(mode="json")}, write)


@router.post("/{segment_id}/archive", response_model=SegmentRead, responses=WRITE_ERRORS, summary="Archive a segment")
def archive_segment(
    segment_id: SegmentId,
    caller: authorized(Scope.SEGMENTS_WRITE, "segments.archive"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> JSONResponse:
    """The segment takes no new version and no new campaign, and the next refresh no longer computes it; its
    versions stay readable. Archiving an archived segment changes nothing."""

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        try:
            _, changed = segment_store.archive_segment(conn, segment_id, archived_by=caller.subject)
        except SegmentNotFound as exc:
            raise _not_found(exc) from None
        if changed:
            _written(conn, caller, segment_id, 200, f"{segment_id} archived")
        return 200, _segment_read(conn, segment_id)

    return run_once(source, caller, key, {"segment_id": segment_id}, write)


# --- preview ---------------------------------------------------------------------------------------------------


def _preview_answer(preview: Any, segment_id: str | None, version: int | None) -> PreviewRead:
    return PreviewRead(
        segment_id=segment_id,
        version=version,
        count=preview.count,
        sample_ids=preview.sample_ids,
        distributions={
            column: [Bucket(value=None if v is None else str(v), customers=n) for v, n in buckets.items()]
            for column, buckets in preview.distributions.items()
        },
        clauses=list(preview.clauses),
        refresh_id=preview.refresh_id,
        as_of_date=preview.as_of,
    )


@router.post(
    "/preview",
    response_model=PreviewRead,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
    summary="Count, sample and distributions of a rule or a saved segment on the published store",
)
def preview(
    body: PreviewRequest,
    caller: authorized(Scope.SEGMENTS_READ, "segments.preview"),
    source: SourceDep,
    store: StoreDep,
    settings: SettingsDep,
) -> PreviewRead:
    """Answered from the published serving store (never the lake), every query under the statement timeout; a
    preview that runs past it is a 503 naming the timeout. Writes nothing."""
    timeout = settings.statement_timeout_seconds
    version = body.version
    try:
        if body.rule is not None:
            problems = definition_problems(
                {"id": "preview", "name": "-", "description": "-", "owner": "-", "kind": "dynamic", "rule": body.rule}
            )
            if problems:
                raise ApiError(422, "invalid segment rule", kind="validation", errors=_definition_errors(problems))
            result = preview_segment(
                body.rule, store=SqlPreviewBackend(store, timeout=timeout), sample_size=body.sample_size
            )
            return _preview_answer(result, None, None)
        assert body.segment_id is not None
        with source.connect() as conn:
            stored = segment_store.get_version(conn, body.segment_id, version)
            listed = (
                segment_store.static_members(conn, body.segment_id, stored.version)
                if stored.definition.kind == "static" and stored.member_count is not None
                else None
            )
        kind = stored.definition.kind
        if kind == "dynamic":
            result = preview_segment(
                stored.definition.rule or {},
                store=SqlPreviewBackend(store, timeout=timeout),
                sample_size=body.sample_size,
            )
        elif kind == "static" and listed is not None:
            result = segment_store.preview_members(store, listed, sample_size=body.sample_size)
        elif kind == "static":
            raise ApiError(409, f"static segment {body.segment_id!r} has no uploaded list yet")
        else:
            evaluation = segment_store.evaluate_now(source, store, body.segment_id, stored.version, allow_archived=True)
            result = segment_store.preview_members(
                store, [m.customer_id for m in evaluation.members], sample_size=body.sample_size
            )
        return _preview_answer(result, body.segment_id, stored.version)
    except SegmentNotFound as exc:
        raise _not_found(exc) from None
    except segment_store.SegmentStoreError as exc:
        raise _store_error(exc) from None
    except PreviewTimeout as exc:
        raise ApiError(
            503, str(exc), kind="preview-timeout", errors=[("/body", f"statement timeout {timeout:g} s")]
        ) from None
    except NothingPublished as exc:
        raise ApiError(503, f"nothing to preview on: {exc}") from None
    except RuleError as exc:  # an event window that starts before the first day the published refresh holds
        where = "/body/rule" if body.rule is not None else "/body/segment_id"
        errors = [(where + (p.path if body.rule is not None else ""), p.reason) for p in exc.problems]
        raise ApiError(422, "the rule cannot be previewed on this refresh", kind="validation", errors=errors) from None
    except (ServingStoreError, DBAPIError, SQLAlchemyError) as exc:
        raise ApiError(503, f"serving store unavailable: {type(exc).__name__}") from None


# --- static lists ----------------------------------------------------------------------------------------------


@router.post(
    "/{segment_id}/upload",
    response_model=UploadRead,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
    summary="Upload a static segment's list (customer ids, phone numbers or phone tokens): a new version",
)
def upload_list(
    segment_id: SegmentId,
    caller: authorized(Scope.SEGMENTS_WRITE, "segments.upload"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(description="CSV, UTF-8, one header (customer_id, phone or phone_token) and one value per line."),
    ],
) -> JSONResponse:
    """Phone numbers are normalised and tokenised with the platform's keyed hash as they are read, matched on
    the published profiles' phone tokens and confirmed against the source's live customers; no clear number
    is stored, logged or echoed (bad lines are named by number only). Values that match nobody are counted
    in ``unknown`` and left out. The same list again writes nothing (``created``: false)."""
    limit = settings.max_upload_bytes
    content = file.file.read(limit + 1)
    if len(content) > limit:
        raise ApiError(413, f"the list is over {limit} bytes", errors=[("/body/file", f"at most {limit} bytes")])
    if not content.strip():
        raise ApiError(422, "the list is empty", kind="validation", errors=[("/body/file", "empty file")])
    try:
        decoded = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            422, "the list is not UTF-8 text", kind="validation", errors=[("/body/file", "not UTF-8")]
        ) from None
    try:
        pii_key = settings.platform.require_pii_key()
    except ConfigError:
        pii_key = None
    try:
        parsed = segment_store.parse_static_list(decoded, pii_key=pii_key)
    except segment_store.SegmentStoreError as exc:
        if isinstance(exc, segment_store.UploadError):
            raise _store_error(exc) from None
        raise ApiError(503, f"phone lists are unavailable: {exc}") from None
    digest = hashlib.sha256(content).hexdigest()
    file_name = (file.filename or "upload.csv")[:200]

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        try:
            head = segment_store.get_segment(conn, segment_id, for_update=True)
            if head.status == "archived":
                raise ApiError(409, f"segment {segment_id!r} is archived: it takes no new list")
            if head.kind != "static":
                raise ApiError(409, f"segment {segment_id!r} is {head.kind}: only static segments take a list")
            latest = segment_store.get_version(conn, segment_id, head.latest_version)
            if parsed.column == "customer_id":
                resolved = segment_store.resolve_static_list(conn, None, None, parsed)
            else:
                try:
                    with store.read_transaction() as serving:
                        refresh = store.current_refresh(serving)
                        if refresh is None:
                            raise ApiError(
                                503, "phone lists are matched on the published profiles: nothing is published"
                            )
                        resolved = segment_store.resolve_static_list(
                            conn, serving, store.physical("customer_profile", refresh.refresh_id), parsed
                        )
                except (DBAPIError, SQLAlchemyError) as exc:
                    raise ApiError(503, f"serving store unavailable: {type(exc).__name__}") from None
            stored, created = segment_store.save_version(
                conn,
                latest.definition,
                created_by=caller.subject,
                members=resolved.customer_ids,
                unknown_count=resolved.unknown,
                source=file_name,
            )
        except SegmentNotFound as exc:
            raise _not_found(exc) from None
        except segment_store.SegmentStoreError as exc:
            raise _store_error(exc) from None
        if created:
            _written(
                conn,
                caller,
                segment_id,
                200,
                f"{segment_id} v{stored.version}: {parsed.column} list, {len(resolved.customer_ids)} members, "
                f"{resolved.unknown} unknown",
            )
        return 200, {
            "segment": _segment_read(conn, segment_id),
            "created": created,
            "column": parsed.column,
            "rows": parsed.rows,
            "members": len(resolved.customer_ids),
            "unknown": resolved.unknown,
            "duplicates": parsed.duplicates,
        }

    return run_once(source, caller, key, {"segment_id": segment_id, "sha256": digest}, write)


# --- export ----------------------------------------------------------------------------------------------------


CSV_RESPONSE = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "Members (CSV)"}}


@router.get(
    "/{segment_id}/members",
    response_model=ExportRead,
    responses={**CSV_RESPONSE, **problem_responses(401, 403, 404, 409, 422, 429, 503)},
    summary="Export a segment's members on the published refresh (masked, audited)",
)
def export_members(
    segment_id: SegmentId,
    caller: authorized(Scope.SEGMENTS_EXPORT, "segments.export"),
    source: SourceDep,
    store: StoreDep,
    settings: SettingsDep,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="Default: the latest.")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> Any:
    """Customer ids with the masked name and phone of the published profile and each member's reason; never a
    clear value. The members are those a campaign would snapshot now (mo.segments.store.evaluate_now).
    Company-wide accounts only (an export is not narrowed to one organisation's customers). Audited."""
    if caller.principal.scoped_to_customers:
        raise ApiError(
            403, "segment exports are for company-wide accounts; yours is limited to an organisation or agent"
        )
    try:
        evaluation = segment_store.evaluate_now(
            source, store, segment_id, version, allow_archived=True, timeout=settings.statement_timeout_seconds
        )
        masks: dict[int, tuple[str | None, str | None]] = {}
        with store.read_transaction() as conn:
            profile = store.physical("customer_profile", evaluation.refresh_id)
            ids = [m.customer_id for m in evaluation.members]
            for start in range(0, len(ids), segment_store.ID_CHUNK):
                chunk = ids[start : start + segment_store.ID_CHUNK]
                marks = ", ".join(f":i{i}" for i in range(len(chunk)))
                for row in conn.execute(
                    text(
                        f"SELECT customer_id, name_masked, phone_masked FROM {profile} WHERE customer_id IN ({marks})"
                    ),
                    {f"i{i}": v for i, v in enumerate(chunk)},
                ):
                    masks[int(row[0])] = (row[1], row[2])
    except SegmentNotFound as exc:
        raise _not_found(exc) from None
    except segment_store.SegmentStoreError as exc:
        raise _store_error(exc) from None
    except PreviewTimeout as exc:
        raise ApiError(503, str(exc), kind="preview-timeout") from None
    except NothingPublished as exc:
        raise ApiError(503, f"nothing to export from: {exc}") from None
    except (ServingStoreError, DBAPIError, SQLAlchemyError) as exc:
        raise ApiError(503, f"serving store unavailable: {type(exc).__name__}") from None
    members = [
        {
            "customer_id": m.customer_id,
            "name_masked": masks.get(m.customer_id, (None, None))[0],
            "phone_masked": masks.get(m.customer_id, (None, None))[1],
            "reasons": list(m.reasons),
        }
        for m in evaluation.members
    ]
    try:
        with source.begin() as conn:
            audit.record(
                conn,
                principal=caller.principal,
                action=caller.action,
                resource=caller.resource,
                detail=f"{segment_id} v{evaluation.version}: {len(members)} members as {format}, "
                f"refresh {evaluation.refresh_id}",
            )
    except (DBAPIError, SQLAlchemyError) as exc:  # no audit entry, no export
        raise ApiError(503, f"core systems database unavailable: {type(exc).__name__}") from None
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["customer_id", "name_masked", "phone_masked", "reasons"])
        for m in members:
            writer.writerow(
                [
                    m["customer_id"],
                    m["name_masked"] or "",
                    m["phone_masked"] or "",
                    json.dumps(m["reasons"], ensure_ascii=False),
                ]
            )
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{segment_id}-v{evaluation.version}.csv"'},
        )
    return ExportRead(
        segment_id=segment_id,
        version=evaluation.version,
        method=evaluation.method,  # type: ignore[arg-type]
        refresh_id=evaluation.refresh_id,
        as_of_date=evaluation.as_of_date,
        count=len(members),
        members=[ExportedMember(**m) for m in members],
    )
