"""Timestamps on the wire: always RFC 3339 with an offset, always UTC.

The databases store naive UTC (``services.audit.utcnow``); a naive value sent as is would not be an
OpenAPI ``date-time`` and a client could read it as local time. Response models type their timestamps
``UtcDateTime``; a timestamp a caller sends is converted to UTC before it meets a stored one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    """A stored (naive UTC) or aware timestamp as an aware UTC one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_stored(value: datetime) -> datetime:
    """A caller's timestamp as the databases store it: naive UTC (a naive input is taken as UTC)."""
    return as_utc(value).replace(tzinfo=None)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
