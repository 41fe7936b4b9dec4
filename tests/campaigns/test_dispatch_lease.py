"""One dispatcher decides at a time: the lease in ``dispatch_leases`` is taken by the first, renewed while it
runs, refused to a second (whose rounds then do nothing) and taken over once the first stops renewing, killed or
stopped cleanly. Two real processes against PostgreSQL, and the lease's rules on PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mo.campaigns.dispatch import DispatchLease, RoundReport, run_round
from tests.mo.outbox_helpers import migrated_engine

T0 = datetime(2026, 12, 6, 9, 0, 0)


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def source(request, tmp_path):  # type: ignore[no-untyped-def]
    yield from migrated_engine(request.param, tmp_path)


def test_the_lease_is_held_by_one_renewed_and_taken_over_after_it_expires(source) -> None:  # type: ignore[no-untyped-def]
    first, second = DispatchLease(source, ttl_s=60, holder="a"), DispatchLease(source, ttl_s=60, holder="b")
    assert first.hold(T0) and not second.hold(T0 + timedelta(seconds=1))
    assert first.hold(T0 + timedelta(seconds=30))  # renewed: now until T0 + 90 s
    assert not second.hold(T0 + timedelta(seconds=89))
    assert second.hold(T0 + timedelta(seconds=90))  # the first stopped renewing: taken over
    assert not first.hold(T0 + timedelta(seconds=91)) and first.held is False
    first.release()  # not its lease any more: nothing changes
    assert second.current() == ("b", T0 + timedelta(seconds=150))
    second.release()  # a clean stop: the next one need not wait
    assert first.hold(T0 + timedelta(seconds=92))


def test_a_round_without_the_lease_does_nothing(source, settings) -> None:  # type: ignore[no-untyped-def]
    DispatchLease(source, ttl_s=600, holder="elsewhere").hold()
    standby = DispatchLease(source, ttl_s=600, holder="standby")
    # no Redis, store or producer needed: nothing is claimed, decided or produced
    report = run_round(source, None, None, settings, producer=None, lease=standby)
    assert report == RoundReport() and not standby.held


HOLDER = """
import sys, time
from mo.campaigns.dispatch import DispatchLease
from mo.oltp.db import make_engine

lease = DispatchLease(make_engine(sys.argv[1]), ttl_s=float(sys.argv[2]), holder=sys.argv[3])
with open(sys.argv[4], "a") as out:
    while True:
        held = lease.hold()
        out.write(f"{time.time():.6f} {int(held)}\\n")
        out.flush()
        time.sleep(0.1)
"""


def _lines(path: Path) -> list[tuple[float, bool]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.count(" ") == 1]
    return [(float(at), held == "1") for at, held in rows]


def _wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def postgres_source(tmp_path):  # type: ignore[no-untyped-def]
    yield from migrated_engine("postgres", tmp_path)


def test_a_second_dispatcher_process_waits_then_takes_over_from_a_killed_one(postgres_source, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = postgres_source
    url = engine.url.render_as_string(hide_password=False)
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second")}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def start(name: str) -> subprocess.Popen:
        command = [sys.executable, "-c", HOLDER, url, "2", name, str(logs[name])]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first = start("first")
    second = None
    try:
        _wait_for(lambda: any(held for _, held in _lines(logs["first"])), "the first to take the lease")
        second = start("second")
        _wait_for(lambda: len(_lines(logs["second"])) >= 10, "the second to try ten times")
        assert not any(held for _, held in _lines(logs["second"]))  # it waits while the first renews
        assert all(held for _, held in _lines(logs["first"]))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.time()
        _wait_for(lambda: any(held for _, held in _lines(logs["second"])), "the second to take over")
        taken_at = min(at for at, held in _lines(logs["second"]) if held)
        assert taken_at > killed_at  # never both: the second held it only after the first was gone
        assert DispatchLease(engine, holder="probe").current()[0] == "second"  # type: ignore[index]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--lease", "3601"], "--lease"),  # a standby would wait over an hour after a killed dispatcher
        (["--lease", "1e9"], "--lease"),
        (["--lease", "4"], "--lease"),
        (["--lease", "nan"], "--lease"),  # compares false with both bounds: refused all the same
        (["--interval", "1201"], "--interval"),  # three intervals would not fit in the longest lease
        (["--interval", "nan"], "--interval"),
    ],
)
def test_dispatch_refuses_a_lease_or_interval_outside_its_limits(mo_home, args, option) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from mo.cli import cli

    refused = CliRunner().invoke(cli, ["campaigns", "dispatch", "--once", *args])
    assert refused.exit_code == 2, refused.output
    assert f"Invalid value for '{option}'" in refused.output and "is not in the range" in refused.output
    # the limits themselves are taken: the command gets as far as the (unmigrated) source
    at_limit = CliRunner().invoke(cli, ["campaigns", "dispatch", "--once", "--lease", "3600", "--interval", "1200"])
    assert at_limit.exit_code == 1 and "no campaign tables" in str(at_limit.exception), at_limit.output


def test_the_lease_lasts_at_least_three_intervals_within_its_limits() -> None:
    from mo.campaigns.lease_limits import LEASE_MAX_S, lease_ttl

    assert lease_ttl(60, 15) == 60 and lease_ttl(60, 30) == 90
    assert lease_ttl(LEASE_MAX_S, LEASE_MAX_S / 3) == LEASE_MAX_S
    for lease_s, interval_s in ((3601, 15), (4, 1), (60, 1201), (float("nan"), 15), (60, float("inf"))):
        with pytest.raises(ValueError, match="outside"):
            lease_ttl(lease_s, interval_s)
