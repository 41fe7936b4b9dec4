"""The one place campaigns learn whether a segment exists, its current version and whether it is archived: the
segment definition store (mo/segments/store.py, the core database's ``segments`` and ``segment_definitions``,
which the segments API writes, ``mo segments import`` fills from files and build_profiles computes)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection


@dataclass(frozen=True)
class SegmentRef:
    segment_id: str
    version: int  # the current version: what a submitted campaign pins
    archived: bool


def lookup_segment(conn: Connection, segment_id: str) -> SegmentRef | None:
    """The segment's current version and archive flag, read on the caller's connection (in its transaction);
    None if the store has no such segment."""
    from mo.segments.definitions import SegmentNotFound
    from mo.segments.store import get_segment

    try:
        stored = get_segment(conn, segment_id)
    except SegmentNotFound:
        return None
    return SegmentRef(stored.segment_id, stored.latest_version, stored.status == "archived")
