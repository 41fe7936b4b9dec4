"""Campaign schedules: now, at a time, recurring at a local time in an IANA zone, across daylight-saving changes.

The property test sweeps seeded random cases (hypothesis is not in the platform's lock; the sweep is
deterministic, so a failure reproduces by its case number) plus every zone on the days around its transitions.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mo.campaigns.schedule import (
    ScheduleError,
    first_run_at,
    next_run_at,
    parse_schedule,
    runs,
    schedule_problems,
)

# Zones with and without daylight saving, northern and southern, a 30-minute shift (Lord Howe), a negative one
# (Dublin's winter time), a 45-minute offset (Chatham) and a zone whose DST moves at midnight (Santiago).
ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Europe/Dublin", "Australia/Sydney",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago", "Asia/Kolkata", "UTC"]  # fmt: skip


def recurring(zone: str, at: str, frequency: str = "daily", weekdays: list[int] | None = None, **extra):  # type: ignore[no-untyped-def]
    doc = {"kind": "recurring", "frequency": frequency, "local_time": at, "time_zone": zone, **extra}
    if weekdays is not None:
        doc["weekdays"] = weekdays
    return parse_schedule(doc)


def test_daily_run_in_shanghai_is_at_local_time() -> None:
    plan = recurring("Asia/Shanghai", "09:30")
    now = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: today's run has passed
    assert first_run_at(plan, now=now, ends_at=now + timedelta(days=5)) == datetime(2026, 12, 7, 1, 30, tzinfo=UTC)


def test_new_york_spring_forward_and_fall_back() -> None:
    plan = recurring("America/New_York", "02:30")
    start = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    got = list(runs(plan, now=start, ends_at=start + timedelta(days=3)))
    # 8 March: 02:30 does not exist (clocks jump 02:00 -> 03:00): the run is 03:30 EDT = 07:30 UTC
    assert got == [datetime(2026, 3, 8, 7, 30, tzinfo=UTC), datetime(2026, 3, 9, 6, 30, tzinfo=UTC),
                   datetime(2026, 3, 10, 6, 30, tzinfo=UTC)]  # fmt: skip
    plan = recurring("America/New_York", "01:30")
    start = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    got = list(runs(plan, now=start, ends_at=start + timedelta(days=2)))
    # 1 November: 01:30 happens twice; the run is the first (EDT, 05:30 UTC), once
    assert got == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]


def test_weekly_on_given_weekdays_from_start_at_until_the_end() -> None:
    plan = recurring("Europe/London", "18:00", "weekly", [1, 4], start_at="2026-12-10T00:00:00Z")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    got = list(runs(plan, now=now, ends_at=datetime(2026, 12, 21, 18, 0, tzinfo=UTC)))
    assert [r.date() for r in got] == [date(2026, 12, 10), date(2026, 12, 14), date(2026, 12, 17), date(2026, 12, 21)]
    assert next_run_at(plan, after=got[-1], ends_at=datetime(2026, 12, 21, 18, 0, tzinfo=UTC)) is None


def test_one_off_schedules() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    end = now + timedelta(days=10)
    assert first_run_at(parse_schedule({"kind": "now"}), now=now, ends_at=end) == now
    at = parse_schedule({"kind": "at", "start_at": "2026-12-08T09:00:00+08:00"})
    assert first_run_at(at, now=now, ends_at=end) == datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    assert list(runs(at, now=now, ends_at=end)) == [datetime(2026, 12, 8, 1, 0, tzinfo=UTC)]
    assert next_run_at(at, after=now, ends_at=end) is None


@pytest.mark.parametrize(
    ("document", "pointers"),
    [
        ({"kind": "later"}, ["/kind"]),
        ({"kind": "at"}, ["/start_at"]),
        ({"kind": "at", "start_at": "2026-12-08T09:00:00"}, ["/start_at"]),  # no offset: ambiguous
        ({"kind": "now", "start_at": "2026-12-08T09:00:00Z"}, ["/start_at"]),
        ({"kind": "recurring", "frequency": "hourly", "local_time": "9:30", "time_zone": "../../etc/passwd"},
         ["/frequency", "/local_time", "/time_zone"]),
        ({"kind": "recurring", "frequency": "weekly", "local_time": "24:00", "time_zone": "Asia/Shanghai",
          "weekdays": [0, 8]}, ["/local_time", "/weekdays"]),
        ({"kind": "recurring", "frequency": "daily", "local_time": "09:00", "time_zone": "Asia/Shanghai",
          "weekdays": [1]}, ["/weekdays"]),
        ({"kind": "recurring", "frequency": "weekly", "local_time": "09:00", "time_zone": "Asia/Shanghai",
          "weekdays": [1, 1]}, ["/weekdays"]),
        ({"kind": "recurring", "frequency": "daily", "local_time": "09:00", "time_zone": "Mars/Olympus"},
         ["/time_zone"]),
    ],
)  # fmt: skip
def test_bad_schedules_name_each_field(document, pointers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScheduleError) as info:
        parse_schedule(document)
    assert [p for p, _ in info.value.problems] == pointers


def test_a_schedule_in_the_past_or_past_the_end_is_refused() -> None:
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    at = parse_schedule({"kind": "at", "start_at": "2026-12-06T09:59:59Z"})
    assert [p for p, _ in schedule_problems(at, ends_at=now + timedelta(days=1), now=now)] == ["/schedule/start_at"]
    later = parse_schedule({"kind": "at", "start_at": "2026-12-09T00:00:00Z"})
    assert [p for p, _ in schedule_problems(later, ends_at=now + timedelta(days=1), now=now)] == ["/schedule/start_at"]
    assert [p for p, _ in schedule_problems(later, ends_at=now - timedelta(seconds=1), now=now)] == ["/ends_at"]
    assert schedule_problems(later, ends_at=now + timedelta(days=5), now=now) == []
    sunday = recurring("Asia/Shanghai", "09:00", "weekly", [7])
    assert [p for p, _ in schedule_problems(sunday, ends_at=datetime(2026, 12, 12, tzinfo=UTC), now=now)] == [
        "/schedule"
    ]


def _exists(day: date, at: time, zone: ZoneInfo) -> bool:
    """Whether the wall time exists that day (not in a spring-forward gap)."""
    local = datetime.combine(day, at, tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None)


def _check_recurring(zone: str, at: time, weekly: bool, weekdays: set[int], now: datetime, days: int) -> None:
    plan = recurring(zone, at.strftime("%H:%M"), "weekly" if weekly else "daily", sorted(weekdays) if weekly else None)
    tz = ZoneInfo(zone)
    ends_at = now + timedelta(days=days)
    got = list(runs(plan, now=now, ends_at=ends_at))
    assert got == sorted(set(got))  # strictly increasing
    assert all(now <= r <= ends_at for r in got)
    local_days = [r.astimezone(tz).date() for r in got]
    assert len(set(local_days)) == len(local_days)  # at most one run per local day
    for run, day in zip(got, local_days, strict=True):
        if weekly:
            assert day.isoweekday() in weekdays
        wall = run.astimezone(tz)
        if _exists(day, at, tz):
            assert wall.time() == at, (run, wall)
        else:  # in a spring-forward gap: later that day, by the gap, never skipped
            assert wall.time() > at and wall.date() == day
    # and none is missed: every local day in the window that should run, runs
    expected = []
    day = now.astimezone(tz).date() - timedelta(days=1)
    while day <= ends_at.astimezone(tz).date() + timedelta(days=1):
        instant = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if (not weekly or day.isoweekday() in weekdays) and now <= instant <= ends_at:
            expected.append(day)
        day += timedelta(days=1)
    assert local_days == expected


def test_recurring_runs_once_per_local_day_at_the_local_time_random_sweep() -> None:
    rng = random.Random(20261206)
    for case in range(1500):
        zone = rng.choice(ZONES)
        at = time(rng.randrange(24), rng.choice([0, 15, 30, 45, 59]))
        weekdays = set(rng.sample(range(1, 8), rng.randint(1, 7)))
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        try:
            _check_recurring(zone, at, rng.random() < 0.5, weekdays, now, rng.randint(1, 70))
        except AssertionError as exc:
            raise AssertionError(f"case {case}: {zone} {at} from {now}") from exc


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """UTC hours where the zone's offset changes during the year."""
    found, hour = [], datetime(year, 1, 1, tzinfo=UTC)
    previous = hour.astimezone(zone).utcoffset()
    while hour.year == year:
        hour += timedelta(hours=1)
        offset = hour.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(hour)
        previous = offset
    return found


@pytest.mark.parametrize("zone", ZONES)
def test_recurring_runs_at_every_time_of_day_around_each_transition(zone: str) -> None:
    transitions = _transitions(ZoneInfo(zone), 2027)
    assert transitions or zone in ("Asia/Shanghai", "Asia/Kolkata", "UTC")
    for moment in transitions:
        for minutes in range(0, 24 * 60, 30):
            at = time(minutes // 60, minutes % 60)
            _check_recurring(zone, at, False, set(), moment - timedelta(days=2), 4)
