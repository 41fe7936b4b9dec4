"""The working-day calendar the claim SLAs are measured in: Monday to Friday, public holidays not modelled.

It is the calendar of the marts (``dbt/macros/working_days.sql``) in Python, in the same closed form, so the
serving API's "at risk" and "breached" flags on a claim agree with the claims marts on every date
(tests/mo/test_workdays.py renders the dbt macro and compares). Dates are UTC calendar dates, like the marts.

``working_days_between(start, end)`` counts the working days after ``start`` up to and including ``end``:
a claim reported on a Friday and reviewed on the Monday took 1 working day; reviewed the same day, 0; an
end before the start gives 0.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

EPOCH_MONDAY = date(1970, 1, 5)

# Claim SLAs in working days (seed 000; dbt vars claim_review_sla_working_days / claim_payment_sla_working_days).
CLAIM_REVIEW_SLA_WORKING_DAYS = 3
CLAIM_PAYMENT_SLA_WORKING_DAYS = 5


def _as_date(day: date | datetime) -> date:
    return day.date() if isinstance(day, datetime) else day


def weekdays_since_epoch(day: date | datetime) -> int:
    """Weekdays from Monday 1970-01-05 up to ``day`` (the dbt macro ``weekdays_since_epoch``)."""
    days = (_as_date(day) - EPOCH_MONDAY).days
    return (days // 7) * 5 + min(days % 7 + 1, 5)


def working_days_between(start: date | datetime, end: date | datetime) -> int:
    """Working days after ``start`` up to and including ``end``; 0 when ``end`` is not after ``start``."""
    return max(weekdays_since_epoch(end) - weekdays_since_epoch(start), 0)


def is_working_day(day: date | datetime) -> bool:
    return _as_date(day).weekday() < 5


def add_working_days(start: date | datetime, count: int) -> date:
    """The ``count``-th working day after ``start`` (``count`` >= 1): the due date of "within ``count`` working
    days of ``start``". Acting on a weekend right after it is still on time (no working day has passed)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    day = _as_date(start)
    left = count
    while left:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def latest_start_with_at_least(end: date | datetime, count: int) -> date:
    """The latest start date from which at least ``count`` working days have passed by ``end``:
    ``working_days_between(start, end) >= count`` exactly for ``start <= latest_start_with_at_least(end, count)``
    (the count only grows as the start moves back, so one date bounds a SQL range)."""
    end_day = _as_date(end)
    target = weekdays_since_epoch(end_day) - count
    day = end_day - timedelta(days=(count // 5) * 7)
    while weekdays_since_epoch(day) > target:
        day -= timedelta(days=1)
    while weekdays_since_epoch(day + timedelta(days=1)) <= target:
        day += timedelta(days=1)
    return day
