"""The send decision against the real databases and Redis: each rule, in order, with its evidence in the
ledger row; priority over arrival order for the last cap slot; rolling windows to the second; quiet hours and
send windows in two time zones; exactly one final row per touch under reruns and concurrent deciders."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from mo import hot_record
from mo.campaigns import decision, holdout
from mo.campaigns.decision import ContactPolicy, Intent, decide, decide_batch
from mo.oltp.campaign_tables import HoldoutAssignment, LedgerEntry
from tests.campaigns.decision_world import (
    NOON_SHANGHAI,
    POLICY,
    add_claim,
    add_complaint,
    add_customer,
    add_evidence,
    drop_prefix,
    intent,
    ledger_rows,
    migrated_engine,
    new_prefix,
    redis_client,
    seed_reference,
    set_prefs,
)

LEDGER = LedgerEntry.__table__
HOLDOUTS = HoldoutAssignment.__table__


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request, tmp_path):
    yield from migrated_engine(request.param, tmp_path)


@pytest.fixture
def sqlite_engine(tmp_path):
    yield from migrated_engine("sqlite", tmp_path)


@pytest.fixture
def hot():
    client = redis_client()
    prefix = new_prefix()
    yield client, prefix
    drop_prefix(client, prefix)
    client.close()


def _decide(engine, hot, intents, now=NOON_SHANGHAI, policy=POLICY):
    client, prefix = hot
    with engine.begin() as conn:
        return {d.touch_key: d for d in decide_batch(conn, client, prefix, intents, now=now, policy=policy)}


def _rebuild(engine, hot) -> None:
    client, prefix = hot
    with engine.connect() as conn:
        hot_record.rebuild(conn, client, prefix)


def _send_row(cid: int, at: datetime, channel: str = "sms", key: str | None = None, purpose: str = "marketing"):
    key = key or f"journey:prior-{at.isoformat()}-{channel}:{cid}"
    return {
        "touch_key": key, "attempt": 1, "final_key": key, "source": "journey", "campaign_id": None,
        "occurrence": None, "customer_id": cid, "channel": channel, "purpose": purpose, "product_line": "auto",
        "priority": 1, "decision": "send", "reason": "ok", "detail": "{}", "not_before": None,
        "message_id": f"{abs(hash(key)) % 10**12:012d}-prior", "decided_at": at,
    }  # fmt: skip


# --- every rule on every engine ----------------------------------------------------------------------------


def test_each_rule_with_its_evidence(engine, hot):
    with engine.begin() as conn:
        seed_reference(conn)
        versions = add_customer(conn, 1)  # sends
        add_customer(conn, 2)
        add_claim(conn, 2)  # open claim
        add_customer(conn, 3)
        complaint = add_complaint(conn, 3)
        add_customer(conn, 4, rating="R2")  # risk
        add_customer(conn, 5, consents={"app_push": "opt_out", "sms": "opt_out"})
        add_customer(conn, 6, consents={})  # never decided
        add_customer(conn, 7)
        add_claim(conn, 7, status="paid")  # a closed claim does not stop marketing
        add_customer(conn, 8, app=False)  # only app push offered, no app user
    _rebuild(engine, hot)
    intents = [intent(cid) for cid in range(1, 8)]
    intents.append(intent(4, campaign=2, risk="R4"))
    intents.append(intent(8, campaign=3, channels=("app_push",)))
    intents.append(intent(2, campaign=4, purpose="service", line=None, risk=None, share=None))
    got = _decide(engine, hot, intents)
    reason = {k: (d.decision, d.reason) for k, d in got.items()}
    assert reason == {
        "campaign:1:1:1": ("send", "ok"),
        "campaign:1:1:2": ("suppress", "open_claim"),
        "campaign:1:1:3": ("suppress", "open_complaint"),
        "campaign:1:1:4": ("send", "ok"),  # R1 offer to an R2 customer
        "campaign:2:1:4": ("suppress", "risk_above_rating"),  # R4 offer to the same customer
        "campaign:1:1:5": ("suppress", "consent_withdrawn"),
        "campaign:1:1:6": ("suppress", "no_consent"),
        "campaign:1:1:7": ("send", "ok"),
        "campaign:3:1:8": ("suppress", "no_channel"),
        "campaign:4:1:2": ("send", "ok"),  # service is not stopped by the open claim
    }
    with engine.connect() as conn:
        rows = {r["touch_key"]: r for r in ledger_rows(conn)}
    assert len(rows) == len(intents)
    sent = rows["campaign:1:1:1"]
    assert sent["channel"] == "app_push" and sent["final_key"] == "campaign:1:1:1" and sent["attempt"] == 1
    assert sent["message_id"] == got["campaign:1:1:1"].message_id and len(sent["message_id"]) == 36
    assert sent["detail"]["consent"]["app_push"] == ["opt_in", versions["app_push"]]
    assert sent["detail"]["consent"]["from"] == "hot"
    assert sent["detail"]["counts"] == {"7d": 0, "30d": 0, "channel_7d": {"app_push": 0, "sms": 0}}
    assert sent["detail"]["local"] == {"time": "2026-12-07T10:00:00+08:00", "zone": "Asia/Shanghai"}
    assert sent["detail"]["holdout"]["cycle"] == "2026" and sent["detail"]["holdout"]["held_out"] is False
    assert got["campaign:1:1:1"].payload == {"title": "campaign 1", "body": "..."}
    assert rows["campaign:1:1:2"]["detail"]["open_claims"] == ["C0000000002"]
    assert rows["campaign:1:1:3"]["detail"]["open_complaints"] == [complaint]
    assert rows["campaign:2:1:4"]["detail"]["risk"] == {"rating": "R2", "offer_level": "R4"}
    assert rows["campaign:1:1:5"]["channel"] is None and rows["campaign:1:1:5"]["message_id"] is None
    assert rows["campaign:4:1:2"]["purpose"] == "service" and "open_claims" not in rows["campaign:4:1:2"]["detail"]

    # A rerun decides nothing again and writes nothing.
    again = _decide(engine, hot, intents)
    assert not any(d.written for d in again.values())
    assert {k: (d.decision, d.reason) for k, d in again.items()} == reason
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LEDGER)).scalar_one() == len(intents)


def test_the_ledger_refuses_update_and_delete(engine, hot):
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
    _decide(engine, hot, [intent(1)])
    for statement in ("UPDATE contact_ledger SET reason = 'ok'", "DELETE FROM contact_ledger"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LEDGER)).scalar_one() == 1


# --- consent as of the moment of sending --------------------------------------------------------------------


def test_consent_withdrawn_a_second_before_is_suppressed(sqlite_engine, hot):
    engine, (client, prefix) = sqlite_engine, hot
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
    _rebuild(engine, hot)
    # The withdrawal reached the hot record (before its commit); the source still says opt_in.
    with engine.begin() as conn:
        withdrawn = {c: add_evidence(conn, 1, c, "opt_out") for c in ("app_push", "sms")}
    for channel, version in withdrawn.items():
        hot_record.set_consent(client, prefix, 1, channel, "marketing", "opt_out", version)
    got = _decide(engine, hot, [intent(1), intent(1, campaign=2, purpose="service", line=None, risk=None, share=None)])
    assert (got["campaign:1:1:1"].decision, got["campaign:1:1:1"].reason) == ("suppress", "consent_withdrawn")
    assert got["campaign:1:1:1"].detail["consent"]["sms"] == ["opt_out", withdrawn["sms"]]
    assert got["campaign:2:1:1"].decision == "send"  # service consent was not withdrawn


def test_unknown_hot_record_reads_the_source(sqlite_engine, hot):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        versions = add_customer(conn, 1)
        add_customer(conn, 2, consents={"app_push": "opt_out", "sms": "opt_out"})
        add_customer(conn, 3)
        add_complaint(conn, 3)
    # No record in Redis for anyone: unknown, not consent.
    got = _decide(engine, hot, [intent(1), intent(2), intent(3)])
    assert got["campaign:1:1:1"].decision == "send"
    assert got["campaign:1:1:1"].detail["consent"] == {
        "from": "source",
        "app_push": ["opt_in", versions["app_push"]],
        "sms": ["opt_in", versions["sms"]],
    }
    assert got["campaign:1:1:2"].reason == "consent_withdrawn"
    assert got["campaign:1:1:3"].reason == "open_complaint"


def test_redis_down_reads_the_source(sqlite_engine):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        add_customer(conn, 2, consents={"app_push": "opt_out"})
    from tests.conftest import free_port

    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    got = _decide(engine, (dead, "h_dec_dead"), [intent(1), intent(2)])
    assert got["campaign:1:1:1"].decision == "send"
    assert got["campaign:1:1:1"].detail["consent"]["from"] == "source"
    assert got["campaign:1:1:1"].detail["consent"]["redis"].startswith("redis unavailable")
    assert got["campaign:1:1:2"].reason == "consent_withdrawn"


def test_hot_complaint_filed_a_second_ago_stops_marketing(sqlite_engine, hot):
    engine, (client, prefix) = sqlite_engine, hot
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
    _rebuild(engine, hot)
    hot_record.open_complaint(client, prefix, 1, "TS0000000099")  # before the filing commits
    got = _decide(engine, hot, [intent(1)])
    assert got["campaign:1:1:1"].reason == "open_complaint"
    assert got["campaign:1:1:1"].detail["open_complaints"] == ["TS0000000099"]


def test_erased_and_ended(sqlite_engine, hot):
    engine, (client, prefix) = sqlite_engine, hot
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        add_customer(conn, 2)
    _rebuild(engine, hot)
    hot_record.mark_erased(client, prefix, 1, [])
    got = _decide(
        engine,
        hot,
        [
            intent(1),
            intent(2, ends_at=NOON_SHANGHAI),
            intent(2, campaign=2, ends_at=NOON_SHANGHAI + timedelta(seconds=1)),
        ],
    )
    assert got["campaign:1:1:1"].reason == "erased"
    assert got["campaign:1:1:2"].reason == "campaign_ended"
    assert got["campaign:2:1:2"].decision == "send"


# --- durable holdout ---------------------------------------------------------------------------------------


def test_cycle_is_the_year_of_the_last_anniversary():
    assert holdout.cycle_of(date(2025, 3, 15), date(2026, 3, 14)) == "2025"
    assert holdout.cycle_of(date(2025, 3, 15), date(2026, 3, 15)) == "2026"
    assert holdout.cycle_of(date(2024, 2, 29), date(2026, 2, 28)) == "2026"
    assert holdout.cycle_of(None, date(2026, 7, 1)) == "2026"
    assert holdout.cycle_of(date(2026, 8, 1), date(2026, 7, 1)) == "2026"  # a policy not yet started


def test_holdout_is_stable_across_reruns_campaigns_and_stored_per_cycle(engine, hot):
    n = 120
    with engine.begin() as conn:
        seed_reference(conn)
        for cid in range(1, n + 1):
            add_customer(conn, cid, policy_start=date(2025, 3, 15) if cid % 2 else None)
    _rebuild(engine, hot)
    first = _decide(engine, hot, [intent(cid, share=Decimal("0.3")) for cid in range(1, n + 1)])
    held = {d.customer_id for d in first.values() if d.reason == "holdout"}
    assert 10 < len(held) < 70  # about 30 %
    assert {d.detail["holdout"]["cycle"] for d in first.values()} == {"2026"}
    with engine.connect() as conn:
        stored = {
            (r.customer_id, r.cycle): (r.held_out, r.bucket, str(r.share)) for r in conn.execute(select(HOLDOUTS))
        }
    assert len(stored) == n and all(share == "0.3000" for _, _, share in stored.values())
    assert {cid for (cid, _), (h, _, _) in stored.items() if h} == held
    assert all(
        b == holdout.bucket_of(POLICY.holdout_key, "auto", "2026", cid) for (cid, _), (_, b, _) in stored.items()
    )

    # A new campaign in the same line with another share, later in the cycle: the same people are held out.
    later = NOON_SHANGHAI + timedelta(days=20)
    second = _decide(engine, hot, [intent(cid, campaign=2, share=Decimal("0.9")) for cid in range(1, n + 1)], now=later)
    assert {d.customer_id for d in second.values() if d.reason == "holdout"} == held

    # The renewal campaign in January: policy holders (odd ids, anniversary 15 March) are still in the 2026
    # cycle, with the same assignment; customers without a policy are in the calendar year's cycle, 2027.
    renewal = _decide(engine, hot, [intent(cid, campaign=3, share=Decimal("0.3")) for cid in range(1, n + 1)],
                      now=datetime(2027, 1, 16, 2, 0))  # fmt: skip
    assert {d.customer_id: d.detail["holdout"]["cycle"] for d in renewal.values()} == {
        cid: "2026" if cid % 2 else "2027" for cid in range(1, n + 1)
    }
    assert {d.customer_id for d in renewal.values() if d.reason == "holdout" and d.customer_id % 2} == {
        cid for cid in held if cid % 2
    }

    # After the anniversary the policy holders enter the 2027 cycle: new assignments, stored beside the old.
    third = _decide(engine, hot, [intent(cid, campaign=4, share=Decimal("0.3")) for cid in range(1, n + 1)],
                    now=datetime(2027, 3, 20, 2, 0))  # fmt: skip
    assert {d.detail["holdout"]["cycle"] for d in third.values()} == {"2027"}
    with engine.connect() as conn:
        cycles = dict(conn.execute(select(HOLDOUTS.c.cycle, func.count()).group_by(HOLDOUTS.c.cycle)).all())
    assert cycles == {"2026": n, "2027": n}
    held_2027 = {d.customer_id for d in third.values() if d.reason == "holdout"}
    assert held_2027 != held  # a fresh draw per cycle


def test_holdout_assignment_keeps_the_first_share(sqlite_engine):
    with sqlite_engine.begin() as conn:
        wanted = [("auto", "2026", cid, Decimal("0.5")) for cid in range(1, 200)]
        first = holdout.assign(conn, wanted, key=b"k", now=NOON_SHANGHAI)
        again = holdout.assign(conn, [(a, b, c, Decimal("0")) for a, b, c, _ in wanted], key=b"k", now=NOON_SHANGHAI)
    assert first == again
    assert any(a.held_out for a in again.values())


# --- rolling caps and priority ----------------------------------------------------------------------------


def test_the_higher_priority_wins_the_last_slot_whatever_the_arrival_order(engine, hot):
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        add_customer(conn, 2)
        # One marketing send three days ago each: one slot of two left in 7 x 24 h.
        conn.execute(insert(LEDGER), [_send_row(c, NOON_SHANGHAI - timedelta(days=3)) for c in (1, 2)])
    _rebuild(engine, hot)
    low, high = 3, 9
    arrivals = [intent(1, campaign=1, priority=low), intent(1, campaign=2, priority=high),
                intent(2, campaign=2, priority=high), intent(2, campaign=1, priority=low)]  # fmt: skip
    for order in (arrivals, list(reversed(arrivals))):
        client, prefix = hot
        with engine.connect() as conn:
            trans = conn.begin()
            got = {d.touch_key: d for d in decide_batch(conn, client, prefix, order, now=NOON_SHANGHAI, policy=POLICY)}
            trans.rollback()
        for cid in (1, 2):
            winner, loser = got[f"campaign:2:1:{cid}"], got[f"campaign:1:1:{cid}"]
            assert (winner.decision, winner.reason) == ("send", "ok")
            assert (loser.decision, loser.reason) == ("suppress", "cap_7d")
            assert loser.detail["winner"] == {
                "touch_key": f"campaign:2:1:{cid}",
                "priority": high,
                "channel": "app_push",
            }
            assert loser.detail["counts"]["7d"] == 2


def test_caps_count_the_ledger_over_exact_rolling_windows(sqlite_engine, hot):
    engine = sqlite_engine
    now = NOON_SHANGHAI
    week = timedelta(days=7)
    with engine.begin() as conn:
        seed_reference(conn)
        for cid in range(1, 6):
            add_customer(conn, cid)
        set_prefs(conn, 5, time_zone="Asia/Shanghai", max_push_per_week=1)
        conn.execute(
            insert(LEDGER),
            [
                # 1: two sends, one 7 days + 1 s ago (outside) -> one in the window, a slot left
                _send_row(1, now - week - timedelta(seconds=1)),
                _send_row(1, now - timedelta(days=6)),
                # 2: two sends inside 7 x 24 h (the older 1 s inside) -> cap_7d
                _send_row(2, now - week + timedelta(seconds=1)),
                _send_row(2, now - timedelta(hours=1), channel="app_push"),
                # 3: four sends in 30 days, none in the last 7 -> cap_30d
                *[_send_row(3, now - timedelta(days=d)) for d in (8, 12, 20, 29)],
                # 4: a service send does not count; a marketing push this week fills app push's channel cap (1)
                _send_row(4, now - timedelta(days=1), channel="app_push", purpose="service"),
                _send_row(4, now - timedelta(days=2), channel="app_push"),
                # 5: chose at most one push a week and had one
                _send_row(5, now - timedelta(days=2), channel="app_push"),
            ],
        )
    _rebuild(engine, hot)
    policy = replace(POLICY, cap_channel_7d=1)
    got = _decide(engine, hot, [intent(c) for c in range(1, 6)] + [intent(5, campaign=2, channels=("app_push",))],
                  policy=policy)  # fmt: skip
    assert (got["campaign:1:1:1"].decision, got["campaign:1:1:1"].detail["counts"]["7d"]) == ("send", 1)
    assert got["campaign:1:1:1"].detail["counts"]["30d"] == 2
    assert got["campaign:1:1:2"].reason == "cap_7d" and "winner" not in got["campaign:1:1:2"].detail
    assert got["campaign:1:1:3"].reason == "cap_30d"
    assert (got["campaign:1:1:4"].decision, got["campaign:1:1:4"].channel) == ("send", "sms")  # push capped
    assert got["campaign:1:1:4"].detail["counts"]["channel_7d"] == {"app_push": 1, "sms": 0}
    assert (got["campaign:1:1:5"].decision, got["campaign:1:1:5"].channel) == ("send", "sms")
    assert got["campaign:2:1:5"].reason in ("customer_frequency", "cap_7d")
    # A second later the 7-day-old send of customer 2 leaves the window: a slot opens.
    later = _decide(engine, hot, [intent(2, campaign=3)], now=now + timedelta(seconds=1))
    assert later["campaign:3:1:2"].decision == "send"


def test_customer_frequency_refuses_push_only_touch(sqlite_engine, hot):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        set_prefs(conn, 1, time_zone="Asia/Shanghai", max_push_per_week=1)
        conn.execute(insert(LEDGER), [_send_row(1, NOON_SHANGHAI - timedelta(days=2), channel="app_push")])
    _rebuild(engine, hot)
    got = _decide(engine, hot, [intent(1, channels=("app_push",))])
    assert got["campaign:1:1:1"].reason == "customer_frequency"
    assert got["campaign:1:1:1"].detail["counts"]["max_push_per_week"] == 1


# --- quiet hours and send windows --------------------------------------------------------------------------


def test_quiet_hours_and_windows_in_two_time_zones_defer_then_send(sqlite_engine, hot):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        set_prefs(conn, 1, time_zone="Asia/Shanghai", quiet=("22:00", "08:00"))
        add_customer(conn, 2)
        set_prefs(conn, 2, time_zone="America/New_York")
        add_customer(conn, 3)  # no preferences: the default zone (Asia/Shanghai)
    _rebuild(engine, hot)
    now = datetime(2026, 12, 6, 14, 30)  # 22:30 in Shanghai (quiet), 09:30 in New York (window open)
    intents = [intent(1), intent(2), intent(3)]
    got = _decide(engine, hot, intents, now=now)
    one, two, three = got["campaign:1:1:1"], got["campaign:1:1:2"], got["campaign:1:1:3"]
    assert (one.decision, one.reason) == ("defer", "quiet_hours")
    assert one.not_before == datetime(2026, 12, 7, 1, 0)  # 08:00 quiet end -> 09:00 window start, Shanghai
    assert one.detail["local"] == {"time": "2026-12-06T22:30:00+08:00", "zone": "Asia/Shanghai"}
    assert (two.decision, two.detail["local"]["zone"]) == ("send", "America/New_York")
    assert (three.decision, three.reason, three.not_before) == ("defer", "send_window", datetime(2026, 12, 7, 1, 0))

    # Decided again before not_before: nothing new. From not_before: attempt 2, sent.
    early = _decide(engine, hot, intents, now=datetime(2026, 12, 7, 0, 59))
    assert not any(d.written for d in early.values())
    due = _decide(engine, hot, intents, now=datetime(2026, 12, 7, 1, 0))
    assert {k: (d.decision, d.attempt, d.written) for k, d in due.items()} == {
        "campaign:1:1:1": ("send", 2, True),
        "campaign:1:1:2": ("send", 1, False),
        "campaign:1:1:3": ("send", 2, True),
    }
    with engine.connect() as conn:
        rows = ledger_rows(conn)
    assert [(r["touch_key"], r["attempt"], r["decision"], r["final_key"]) for r in rows if r["customer_id"] == 1] == [
        ("campaign:1:1:1", 1, "defer", None),
        ("campaign:1:1:1", 2, "send", "campaign:1:1:1"),
    ]


def test_new_york_evening_defers_to_the_next_local_morning(sqlite_engine, hot):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        set_prefs(conn, 1, time_zone="America/New_York", quiet=("20:00", "10:00"))
    _rebuild(engine, hot)
    got = _decide(engine, hot, [intent(1)], now=datetime(2026, 7, 1, 2, 0))  # 22:00 EDT
    assert got["campaign:1:1:1"].reason == "quiet_hours"
    assert got["campaign:1:1:1"].not_before == datetime(2026, 7, 1, 14, 0)  # 10:00 EDT
    # A deferral that would pass the campaign's end is suppressed instead.
    got = _decide(
        engine, hot, [intent(1, campaign=2, ends_at=datetime(2026, 7, 1, 12, 0))], now=datetime(2026, 7, 1, 2, 0)
    )
    assert (got["campaign:2:1:1"].decision, got["campaign:2:1:1"].reason) == ("suppress", "campaign_ended")


# --- exactly once ------------------------------------------------------------------------------------------


def test_a_crashed_dispatch_leaves_nothing_and_the_rerun_decides_everyone_once(sqlite_engine, hot):
    engine, (client, prefix) = sqlite_engine, hot
    with engine.begin() as conn:
        seed_reference(conn)
        for cid in range(1, 41):
            add_customer(conn, cid)
    _rebuild(engine, hot)
    intents = [intent(cid) for cid in range(1, 41)]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        decide_batch(conn, client, prefix, intents[:25], now=NOON_SHANGHAI, policy=POLICY)
        raise RuntimeError("dispatcher killed before its commit")
    with engine.begin() as conn:
        decide_batch(conn, client, prefix, intents[:10], now=NOON_SHANGHAI, policy=POLICY)  # a partial run
    decide(engine, client, prefix, intents, now=NOON_SHANGHAI, policy=POLICY)  # the rerun over everyone
    decide(engine, client, prefix, intents, now=NOON_SHANGHAI, policy=POLICY)
    with engine.connect() as conn:
        rows = ledger_rows(conn)
    assert sorted(r["touch_key"] for r in rows) == sorted(i.touch_key for i in intents)


def _race(engine, hot, seed: int, customers: int, rounds: int, threads: int) -> int:
    """Threads deciding random overlapping slices of the same intents, several rounds with moving clocks so
    deferrals come due; then one sweep. Each touch must end with exactly one final row, nobody skipped."""
    client, prefix = hot
    rng = random.Random(seed)
    intents = [intent(cid, campaign=c, priority=c) for cid in range(1, customers + 1) for c in (1, 2, 3)]
    times = [datetime(2026, 12, 6, 13, 30), datetime(2026, 12, 7, 1, 0), datetime(2026, 12, 7, 2, 0)]
    errors: list[BaseException] = []
    lost: list[int] = []
    for round_no in range(rounds):
        now = times[min(round_no, len(times) - 1)]
        slices = []
        for _ in range(threads):
            picked = rng.sample(intents, rng.randint(len(intents) // 3, len(intents)))
            rng.shuffle(picked)
            slices.append(picked)
        barrier = threading.Barrier(threads)

        def work(part, now=now, barrier=barrier):
            try:
                barrier.wait()
                lost.append(sum(d.conflict for d in decide(engine, client, prefix, part, now=now, policy=POLICY)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(s,)) for s in slices]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors, errors
    decide(engine, client, prefix, intents, now=times[-1], policy=POLICY)
    with engine.connect() as conn:
        rows = ledger_rows(conn)
    finals: dict[str, int] = {}
    for r in rows:
        if r["decision"] != "defer":
            finals[r["touch_key"]] = finals.get(r["touch_key"], 0) + 1
    assert finals == {i.touch_key: 1 for i in intents}
    attempts = {}
    for r in rows:
        attempts.setdefault(r["touch_key"], []).append(r["attempt"])
    assert all(sorted(a) == list(range(1, len(a) + 1)) for a in attempts.values())
    return sum(lost)


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exactly_once_under_concurrent_deciders_postgres(tmp_path, hot, seed):
    for engine in migrated_engine("postgres", tmp_path):
        with engine.begin() as conn:
            seed_reference(conn)
            for cid in range(1, 31):
                add_customer(conn, cid)
                if cid % 3 == 0:
                    set_prefs(conn, cid, time_zone="Asia/Shanghai", quiet=("22:00", "08:00"))
        _rebuild(engine, hot)
        assert _race(engine, hot, seed, customers=30, rounds=3, threads=4) > 0  # the race did happen


@pytest.mark.mariadb
def test_exactly_once_under_concurrent_deciders_mariadb(tmp_path, hot):
    for engine in migrated_engine("mariadb", tmp_path):
        with engine.begin() as conn:
            seed_reference(conn)
            for cid in range(1, 21):
                add_customer(conn, cid)
        _rebuild(engine, hot)
        assert _race(engine, hot, 7, customers=20, rounds=3, threads=3) > 0


def test_exactly_once_under_concurrent_deciders_sqlite(sqlite_engine, hot):
    engine = sqlite_engine
    with engine.begin() as conn:
        seed_reference(conn)
        for cid in range(1, 21):
            add_customer(conn, cid)
    _rebuild(engine, hot)
    _race(engine, hot, 11, customers=20, rounds=3, threads=3)


def test_policy_from_settings(monkeypatch):
    from mo.config import get_settings

    monkeypatch.setenv("MO_CONTACT_CAP_7D", "3")
    monkeypatch.setenv("MO_CONTACT_WINDOW_START", "08:30")
    monkeypatch.setenv("MO_HOLDOUT_KEY", "holdout-secret")
    policy = ContactPolicy.from_settings(get_settings())
    assert policy.cap_7d == 3 and policy.window_start.isoformat() == "08:30:00"
    assert policy.holdout_key == b"holdout-secret" and policy.time_zone == "Asia/Shanghai"
    monkeypatch.setenv("MO_CONTACT_WINDOW_END", "25:00")
    from mo.errors import ConfigError

    with pytest.raises(ConfigError, match="MO_CONTACT_WINDOW_END"):
        get_settings()


def test_a_duplicate_touch_in_one_batch_is_decided_once(sqlite_engine, hot):
    with sqlite_engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
    _rebuild(sqlite_engine, hot)
    got = _decide(sqlite_engine, hot, [intent(1), intent(1, priority=99)])
    assert list(got) == [Intent.campaign_key(1, 1, 1)]
    with sqlite_engine.connect() as conn:
        rows = ledger_rows(conn)
    assert [(r["touch_key"], r["priority"]) for r in rows] == [("campaign:1:1:1", 5)]  # the first one given


def test_an_unknown_customer_zone_falls_back_to_the_default(sqlite_engine, hot, monkeypatch):
    with sqlite_engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1)
        set_prefs(conn, 1, time_zone="Mars/Olympus_Mons")
    _rebuild(sqlite_engine, hot)
    got = _decide(sqlite_engine, hot, [intent(1)])
    assert got["campaign:1:1:1"].decision == "send"
    assert got["campaign:1:1:1"].detail["local"] == {
        "time": "2026-12-07T10:00:00+08:00",
        "zone": "Asia/Shanghai",
        "unknown_zone": "Mars/Olympus_Mons",
    }
    from mo.config import get_settings
    from mo.errors import ConfigError

    monkeypatch.setenv("MO_CONTACT_TIME_ZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigError, match="MO_CONTACT_TIME_ZONE"):
        get_settings()


def test_message_channels_are_decided_on_the_consent_they_need(sqlite_engine, hot):
    """A campaign names message channels (push, coupon, sms, wechat): a push needs app_push consent and an app
    user, a coupon goes to the WeChat wallet and needs WeChat consent and an openid."""
    with sqlite_engine.begin() as conn:
        seed_reference(conn)
        add_customer(conn, 1, consents={"app_push": "opt_out", "wechat": "opt_in", "sms": "opt_in"})
        add_customer(conn, 2, consents={"app_push": "opt_in", "wechat": "opt_in", "sms": "opt_in"}, wechat=False)
    _rebuild(sqlite_engine, hot)
    got = _decide(sqlite_engine, hot, [intent(1, channels=("push", "coupon")), intent(2, channels=("coupon", "push"))])
    one, two = got["campaign:1:1:1"], got["campaign:1:1:2"]
    assert (one.decision, one.channel) == ("send", "coupon"), one.detail  # push refused: app_push opted out
    assert one.detail["consent"]["push"][0] == "opt_out" and one.detail["consent"]["coupon"][0] == "opt_in"
    assert (two.decision, two.channel) == ("send", "push"), two.detail  # no openid: no coupon
    withdrawn = _decide(sqlite_engine, hot, [intent(1, campaign=3, channels=("push",))])["campaign:3:1:1"]
    assert (withdrawn.decision, withdrawn.reason) == ("suppress", "consent_withdrawn")


# --- many chunks on PostgreSQL: the connection's statements on a thread of their own --------------------------


def _chunk_world(conn) -> None:
    seed_reference(conn)
    for cid in range(1, 13):
        add_customer(conn, cid, rating="R1" if cid % 4 == 0 else "R3", app=cid % 5 != 0)
        if cid % 3 == 0:
            set_prefs(conn, cid, time_zone="Asia/Shanghai", quiet=("09:00", "11:00"))
    add_claim(conn, 2)
    add_complaint(conn, 7)
    yesterday = NOON_SHANGHAI - timedelta(days=1)
    conn.execute(insert(LEDGER), [_send_row(5, yesterday), _send_row(5, yesterday, channel="app_push")])


@pytest.mark.postgres
def test_many_chunks_decide_what_one_chunk_decides_postgres(tmp_path, hot, monkeypatch):
    """Chunks of two touches (the next chunk's reads and this chunk's COPY then run while Python decides) write
    the same ledger rows and holdouts, and return the same decisions, as one chunk."""
    intents = [intent(cid, campaign=c, priority=c, risk="R2", share=Decimal("0.5")) for cid in range(1, 13)
               for c in (1, 2)]  # fmt: skip
    intents += [intent(cid, campaign=3, purpose="service", line=None, risk=None, share=None) for cid in (1, 2)]
    results = []
    for chunk, folder in ((10_000, "one"), (2, "many")):
        monkeypatch.setattr(decision, "CHUNK", chunk)
        (tmp_path / folder).mkdir()
        for engine in migrated_engine("postgres", tmp_path / folder):
            with engine.begin() as conn:
                _chunk_world(conn)
            _rebuild(engine, hot)
            got = _decide(engine, hot, intents)
            with engine.connect() as conn:
                rows = sorted(
                    ({k: v for k, v in r.items() if k not in ("id", "message_id")} for r in ledger_rows(conn)),
                    key=lambda r: (r["touch_key"], r["attempt"]),
                )
                held = sorted(tuple(r) for r in conn.execute(select(HOLDOUTS.c.customer_id, HOLDOUTS.c.held_out,
                                                                    HOLDOUTS.c.bucket)))  # fmt: skip
            decided = {k: (d.decision, d.reason, d.channel, d.attempt, d.not_before, d.detail, d.payload, d.written,
                           d.message_id is None) for k, d in got.items()}  # fmt: skip
            results.append((decided, rows, held))
    assert results[0] == results[1]
    reasons = {d[1] for d in results[0][0].values()}
    assert {"ok", "open_claim", "open_complaint", "quiet_hours", "cap_7d"} <= reasons  # the rules did run


@pytest.mark.postgres
def test_a_failed_statement_in_a_later_chunk_is_raised_and_nothing_is_written_postgres(tmp_path, hot, monkeypatch):
    monkeypatch.setattr(decision, "CHUNK", 2)
    calls = []
    real = decision._customers

    def failing(conn, ids):
        calls.append(ids)
        if len(calls) == 3:
            raise RuntimeError("customers unreadable")
        return real(conn, ids)

    monkeypatch.setattr(decision, "_customers", failing)
    for engine in migrated_engine("postgres", tmp_path):
        with engine.begin() as conn:
            seed_reference(conn)
            for cid in range(1, 9):
                add_customer(conn, cid)
        _rebuild(engine, hot)
        with pytest.raises(RuntimeError, match="customers unreadable"):
            _decide(engine, hot, [intent(cid) for cid in range(1, 9)])
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(LEDGER)).scalar_one() == 0
