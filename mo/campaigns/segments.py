"""The one place campaigns learn whether a segment exists, its current version and whether it is archived.

Interim: the segment store (mo/segments/store.py, the ``segment_definitions`` table of the core database that
the segments API writes and build_profiles reads) is being built beside this module. Until it lands, segments
are the checked-in definitions under schemas/segments/examples, each at version 1 and none archived. When the
store lands, ``lookup_segment`` reads it instead (same signature: the API and the dispatcher call only this).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Connection


@dataclass(frozen=True)
class SegmentRef:
    segment_id: str
    version: int  # the current version: what a submitted campaign pins
    archived: bool


@cache
def _checked_in() -> dict[str, SegmentRef]:
    from mo.segments.definitions import load_definitions

    return {d.id: SegmentRef(d.id, 1, False) for d in load_definitions()}


def lookup_segment(conn: Connection, segment_id: str) -> SegmentRef | None:
    """The segment's current version and archive flag; None if there is no such segment."""
    del conn  # the store will be read on the caller's connection, in its transaction
    return _checked_in().get(segment_id)
