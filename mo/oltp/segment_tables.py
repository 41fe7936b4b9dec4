"""The segment definition store in the core database: the one place segment definitions live.

The segments API writes here, ``mo segments import`` imports definition files here, and ``build_profiles``
reads the active segments from here (mo.segments.store), so a segment made through the API is computed by
the next refresh exactly like one that came from a file.

- ``segments``: one row per segment: its status (active | archived), the latest version, where it came from
  (``origin``: api | file; a file is imported again only while the segment is still the file's).
- ``segment_definitions``: every version of every segment, never updated: the definition document (valid
  against schemas/segments/segment.schema.json and the rule checks), its content hash, who made it and when.
  A new version is written only when the content (the definition, and for a static list its members) changes.
- ``segment_static_members``: the customer ids of each version of a static list, as resolved at upload
  (phone numbers are tokenised on arrival and resolved to ids; no clear value is stored).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Timestamp

SEGMENT_STATUSES = ("active", "archived")
SEGMENT_ORIGINS = ("api", "file")


class Segment(Base):
    __tablename__ = "segments"
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # static | dynamic | smart
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # SEGMENT_STATUSES
    origin: Mapped[str] = mapped_column(String(16), nullable=False)  # SEGMENT_ORIGINS
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    archived_at: Mapped[datetime | None] = mapped_column(Timestamp)
    archived_by: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (Index("ix_segments_status", "status", "segment_id"),)


class SegmentDefinitionVersion(Base):
    __tablename__ = "segment_definitions"
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    definition: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON of the definition document
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    member_count: Mapped[int | None] = mapped_column(Integer)  # static lists: ids kept
    unknown_count: Mapped[int | None] = mapped_column(Integer)  # static lists: rows that matched no customer
    source: Mapped[str | None] = mapped_column(String(200))  # file name of an import or an upload
    created_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class SegmentStaticMember(Base):
    __tablename__ = "segment_static_members"
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
