"""When a campaign runs: now, once at a time, or recurring (daily or on weekdays at a local time in an IANA time
zone) until the campaign's end.

The schedule document (``campaigns.schedule``)::

    {"kind": "now"}
    {"kind": "at", "start_at": "2026-12-10T01:00:00Z"}
    {"kind": "recurring", "frequency": "weekly", "weekdays": [1, 4], "local_time": "09:30",
     "time_zone": "Asia/Shanghai", "start_at": "2026-12-10T00:00:00Z"}   # start_at optional: not before then

Recurring runs are computed in the time zone, not as a fixed UTC interval, so a 09:30 run stays at 09:30 local
across daylight-saving changes. A local time that does not exist on a spring-forward day runs as late as the
gap (02:30 becomes 03:30); one that exists twice on a fall-back day runs at its first occurrence: one run per
local day either way. All returned times are aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from mo.errors import MoError

KINDS = ("now", "at", "recurring")
FREQUENCIES = ("daily", "weekly")
LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")


class ScheduleError(MoError):
    """A schedule that cannot be used; ``problems`` are (JSON pointer within the schedule, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p or '/'}: {m}" for p, m in problems))


@dataclass(frozen=True)
class Schedule:
    kind: str
    start_at: datetime | None = None  # aware UTC; "at": the run; "recurring": not before
    frequency: str | None = None
    local_time: time | None = None
    time_zone: str | None = None
    weekdays: tuple[int, ...] = ()  # ISO: 1 Monday .. 7 Sunday

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or "UTC")

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind}
        if self.start_at is not None:
            doc["start_at"] = self.start_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.kind == "recurring":
            doc["frequency"] = self.frequency
            doc["local_time"] = self.local_time.strftime("%H:%M")  # type: ignore[union-attr]
            doc["time_zone"] = self.time_zone
            if self.frequency == "weekly":
                doc["weekdays"] = list(self.weekdays)
        return doc


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value is taken as UTC (how the databases store time)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _instant(value: Any, pointer: str, problems: list[tuple[str, str]]) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append((pointer, f"not an ISO 8601 date-time: {value!r}"))
            return None
    else:
        problems.append((pointer, "an ISO 8601 date-time with an offset, e.g. 2026-12-10T09:00:00+08:00"))
        return None
    if moment.tzinfo is None:
        problems.append((pointer, "needs an offset (Z or +08:00): a time without one is ambiguous"))
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        problems.append((pointer, "out of range"))
        return None


def parse_schedule(document: Any) -> Schedule:
    """The schedule of a campaign document; ScheduleError names every problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(document, Mapping):
        raise ScheduleError([("", "an object with a kind: now, at or recurring")])
    kind = document.get("kind")
    allowed = {"now": {"kind"}, "at": {"kind", "start_at"},
               "recurring": {"kind", "frequency", "local_time", "time_zone", "weekdays", "start_at"}}  # fmt: skip
    if kind not in KINDS:
        raise ScheduleError([("/kind", f"one of {', '.join(KINDS)}")])
    for key in document:
        if key not in allowed[kind]:
            problems.append((f"/{key}", f"not part of a {kind!r} schedule"))
    start_at = None
    if "start_at" in document:
        start_at = _instant(document["start_at"], "/start_at", problems)
    elif kind == "at":
        problems.append(("/start_at", "required for a schedule at a time"))
    if kind != "recurring":
        if problems:
            raise ScheduleError(problems)
        return Schedule(kind=kind, start_at=start_at)

    frequency = document.get("frequency")
    if frequency not in FREQUENCIES:
        problems.append(("/frequency", f"one of {', '.join(FREQUENCIES)}"))
    local_time = None
    raw_time = document.get("local_time")
    match = LOCAL_TIME.match(raw_time) if isinstance(raw_time, str) else None
    if match is None:
        problems.append(("/local_time", "a local time HH:MM (24 h)"))
    else:
        local_time = time(int(match.group(1)), int(match.group(2)))
    zone = document.get("time_zone")
    if not isinstance(zone, str) or not ZONE_NAME.match(zone) or zone not in _zones():
        problems.append(("/time_zone", f"not an IANA time zone: {zone!r} (e.g. Asia/Shanghai)"))
    weekdays: tuple[int, ...] = ()
    raw_days = document.get("weekdays")
    if frequency == "weekly":
        if (
            not isinstance(raw_days, list)
            or not raw_days
            or len(raw_days) > 7
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in raw_days)
            or len(set(raw_days)) != len(raw_days)
        ):
            problems.append(("/weekdays", "a list of distinct ISO weekdays, 1 (Monday) to 7 (Sunday)"))
        else:
            weekdays = tuple(sorted(raw_days))
    elif raw_days is not None:
        problems.append(("/weekdays", "only for a weekly schedule"))
    if problems:
        raise ScheduleError(problems)
    return Schedule("recurring", start_at, frequency, local_time, zone, weekdays)


def _local_run(schedule: Schedule, day: date) -> datetime:
    """The run of ``day`` in UTC. zoneinfo resolves a local time in a gap with the offset before it (so the run
    lands as late as the gap) and a repeated one with fold=0 (its first occurrence)."""
    local = datetime.combine(day, schedule.local_time, tzinfo=schedule.zone)  # type: ignore[arg-type]
    return local.astimezone(UTC)


def _runs_day(schedule: Schedule, day: date) -> bool:
    return schedule.frequency == "daily" or day.isoweekday() in schedule.weekdays


def next_run_at(schedule: Schedule, *, after: datetime, ends_at: datetime) -> datetime | None:
    """The first recurring run strictly after ``after``, not before start_at, at or before ``ends_at``; None if
    there is none. For one-off schedules see first_run_at."""
    if schedule.kind != "recurring":
        return None
    after, ends_at = utc(after), utc(ends_at)
    floor = after
    if schedule.start_at is not None and schedule.start_at > after:
        floor = schedule.start_at - timedelta(microseconds=1)  # a run exactly at start_at counts
    day = floor.astimezone(schedule.zone).date() - timedelta(days=1)  # the previous local day may end after floor
    for _ in range(10):  # a weekly schedule has a run within 8 days
        if _runs_day(schedule, day):
            run = _local_run(schedule, day)
            if run > floor:
                return run if run <= ends_at else None
        day += timedelta(days=1)
    return None


def first_run_at(schedule: Schedule, *, now: datetime, ends_at: datetime) -> datetime | None:
    """When the campaign first runs once scheduled at ``now``: now, the set time, or the first recurring run."""
    now = utc(now)
    if schedule.kind == "now":
        return now if now <= utc(ends_at) else None
    if schedule.kind == "at":
        return schedule.start_at if schedule.start_at is not None and schedule.start_at <= utc(ends_at) else None
    return next_run_at(schedule, after=now - timedelta(microseconds=1), ends_at=ends_at)


def runs(schedule: Schedule, *, now: datetime, ends_at: datetime, limit: int = 1000) -> Iterator[datetime]:
    """Every run from ``now`` to ``ends_at`` (at most ``limit``)."""
    run = first_run_at(schedule, now=now, ends_at=ends_at)
    count = 0
    while run is not None and count < limit:
        yield run
        count += 1
        run = next_run_at(schedule, after=run, ends_at=ends_at)


def schedule_problems(schedule: Schedule, *, ends_at: datetime, now: datetime) -> list[tuple[str, str]]:
    """What makes a schedule unusable at ``now``: a time in the past, an end in the past or before the first
    run. Pointers: ``/schedule/...`` and ``/ends_at``."""
    now, ends_at = utc(now), utc(ends_at)
    problems: list[tuple[str, str]] = []
    if ends_at <= now:
        problems.append(("/ends_at", f"in the past ({ends_at:%Y-%m-%dT%H:%M:%SZ}; now {now:%Y-%m-%dT%H:%M:%SZ})"))
        return problems
    if schedule.kind == "at" and schedule.start_at is not None:
        if schedule.start_at <= now:
            problems.append(("/schedule/start_at", f"in the past ({schedule.start_at:%Y-%m-%dT%H:%M:%SZ}; now "
                                                   f"{now:%Y-%m-%dT%H:%M:%SZ})"))  # fmt: skip
        elif schedule.start_at > ends_at:
            problems.append(("/schedule/start_at", "after the campaign's end (ends_at)"))
    if schedule.kind == "recurring" and first_run_at(schedule, now=now, ends_at=ends_at) is None:
        problems.append(("/schedule", "no run between now and the campaign's end (ends_at)"))
    return problems
