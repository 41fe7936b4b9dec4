"""The Python working-day calendar (mo.workdays) equals the marts' dbt macro on many dates.

The macro in dbt/macros/working_days.sql is rendered with Jinja as dbt renders it and evaluated by Spark
over a few thousand (start, end) pairs; the Python closed form must give the same count for every pair.
A brute-force day-by-day count checks both against the definition (Monday to Friday, holidays not modelled).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import jinja2
import pytest

from mo.workdays import (
    add_working_days,
    latest_start_with_at_least,
    weekdays_since_epoch,
    working_days_between,
)

MACRO = Path(__file__).resolve().parents[2] / "dbt/macros/working_days.sql"


def brute_force(start: date, end: date) -> int:
    return sum(1 for n in range(1, (end - start).days + 1) if (start + timedelta(days=n)).weekday() < 5)


def pairs(count: int, seed: int = 15) -> list[tuple[date, date]]:
    rng = random.Random(seed)
    base = date(1969, 6, 1)  # before the macro's epoch Monday too (negative day differences)
    out = []
    for _ in range(count):
        start = base + timedelta(days=rng.randrange(0, 365 * 80))
        out.append((start, start + timedelta(days=rng.randrange(-20, 60))))
    # every weekday combination over two weeks
    monday = date(2025, 12, 1)
    out += [(monday + timedelta(days=a), monday + timedelta(days=b)) for a in range(14) for b in range(21)]
    return out


def test_closed_form_matches_counting_day_by_day() -> None:
    for start, end in pairs(3000):
        assert working_days_between(start, end) == brute_force(start, end), (start, end)


def test_marts_examples() -> None:
    # From the dbt unit test of int_claims_sla_measured: Friday -> Monday is 1; Monday 1st -> Friday 5th is 4.
    assert working_days_between(date(2025, 12, 5), date(2025, 12, 8)) == 1
    assert working_days_between(date(2025, 12, 1), date(2025, 12, 5)) == 4
    assert working_days_between(date(2025, 12, 6), date(2025, 12, 7)) == 0  # Saturday -> Sunday
    assert working_days_between(date(2025, 12, 9), date(2025, 12, 1)) == 0  # end before start


def test_due_dates_and_range_bounds() -> None:
    # Reported Friday 2025-12-05: review due Wednesday 10th; approved Tuesday 9th: payment due Tuesday 16th.
    assert add_working_days(date(2025, 12, 5), 3) == date(2025, 12, 10)
    assert add_working_days(date(2025, 12, 9), 5) == date(2025, 12, 16)
    assert add_working_days(date(2025, 12, 6), 1) == date(2025, 12, 8)  # Saturday -> Monday
    with pytest.raises(ValueError):
        add_working_days(date(2025, 12, 5), 0)
    for start, _ in pairs(500, seed=3):
        for n in (1, 3, 5):
            due = add_working_days(start, n)
            assert working_days_between(start, due) == n and due.weekday() < 5
            assert working_days_between(start, due - timedelta(days=1)) == n - 1
    for end, _ in pairs(300, seed=4):
        for k in (0, 1, 2, 4, 5, 11):
            bound = latest_start_with_at_least(end, k)
            assert working_days_between(bound, end) >= k or k == 0
            assert working_days_between(bound + timedelta(days=1), end) < k or k == 0
            for back in range(0, 10):
                assert working_days_between(bound - timedelta(days=back), end) >= k


def render_macro(start_sql: str, end_sql: str) -> str:
    env = jinja2.Environment()
    template = env.from_string(MACRO.read_text() + "{{ working_days_between(s, e) }}")
    return template.render(s=start_sql, e=end_sql).strip()


def test_python_equals_the_dbt_macro_evaluated_by_spark(spark) -> None:  # type: ignore[no-untyped-def]
    cases = pairs(4000, seed=21)
    rows = [(i, s, e) for i, (s, e) in enumerate(cases)]
    frame = spark.createDataFrame(rows, "i int, s date, e date")
    frame.createOrReplaceTempView("workday_cases")
    expression = render_macro("s", "e")
    since_epoch = jinja2.Environment().from_string(MACRO.read_text() + "{{ weekdays_since_epoch(d) }}")
    result = spark.sql(
        f"select i, {expression} as n, {since_epoch.render(d='s').strip()} as w from workday_cases"
    ).collect()
    assert len(result) == len(cases)
    mismatches = [
        (cases[r.i], r.n, working_days_between(*cases[r.i]))
        for r in result
        if r.n != working_days_between(*cases[r.i]) or r.w != weekdays_since_epoch(cases[r.i][0])
    ]
    assert not mismatches, mismatches[:10]
