"""A campaign's funnel and uplift from the contact ledger: every figure recomputed here from the rows written,
on SQLite and PostgreSQL; the interval against Newcombe's published example."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from mo.campaigns.results import BEFORE_HOLDOUT, campaign_funnel, newcombe, wilson
from mo.generator.world import generate_world
from mo.oltp.campaign_tables import Campaign, CampaignAudience, Delivery, LedgerEntry
from mo.oltp.db import make_engine, migrate
from mo.oltp.models import Policy, Product

NOW = datetime(2026, 12, 1, 10, 0, 0)
REASONS = ["ok", "ok", "ok", "holdout", "holdout", "no_consent", "open_claim", "cap_7d", "quiet_hours"]


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10, examples (a), (b), (c) and (f).
    published = {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (6, 7, 2, 7): (0.0582, 0.8062),
        (5, 56, 0, 29): (-0.0381, 0.1926),
    }
    for counts, interval in published.items():
        d, low, high = newcombe(*counts)
        assert (round(low, 4), round(high, 4)) == interval, counts
        assert d == counts[0] / counts[1] - counts[2] / counts[3]
    assert wilson(0, 10)[0] == 0.0 and 0 < wilson(0, 10)[1] < 0.31


def _world(url: str):
    engine = make_engine(url)
    migrate(engine)
    generate_world(engine, customers=80, seed=5)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = _world(f"sqlite:///{tmp_path / 'source.db'}")
    else:
        engine = _world(request.getfixturevalue("postgres_url"))
    yield engine
    engine.dispose()


def _write_campaign(conn, line: str) -> int:
    return conn.execute(
        insert(Campaign.__table__).values(
            campaign_code="CMP-RESULTS-1",
            name="续保提醒",
            objective="renewal",
            product_line=line,
            purpose="marketing",
            offer_type="product",
            segment_id="s_renewal",
            segment_version=1,
            channels=json.dumps([{"channel": "sms"}, {"channel": "app_push"}]),
            schedule=json.dumps({"kind": "now"}),
            priority=5,
            holdout_share=Decimal("0.1"),
            ends_at=NOW + timedelta(days=30),
            status="running",
            author="user:m",
            version=1,
            created_at=NOW,
            updated_at=NOW,
        )  # fmt: skip
    ).inserted_primary_key[0]


def test_the_funnel_counts_what_the_ledger_and_the_core_systems_hold(engine) -> None:
    rng = random.Random(3)
    ledger, deliveries, audience = LedgerEntry.__table__, Delivery.__table__, CampaignAudience.__table__
    policies, products = Policy.__table__, Product.__table__
    with engine.begin() as conn:
        line = conn.execute(select(products.c.line).order_by(products.c.id)).scalars().first()
        product_id = conn.execute(select(products.c.id).where(products.c.line == line)).scalars().first()
        template = dict(conn.execute(select(policies).limit(1)).mappings().one())
        campaign_id = _write_campaign(conn, line)
        customers = list(range(1, 61))
        members = [{"campaign_id": campaign_id, "occurrence": 1, "customer_id": c} for c in customers]
        conn.execute(insert(audience), members)
        expected = {"sent": 0, "delivered": 0, "opened": 0, "clicked": 0, "suppressed": {}, "waiting": 0}
        groups = {"treated": [0, 0], "holdout": [0, 0]}  # [customers, converted]
        converted_sent = 0
        next_policy = 10**12
        for c in customers:
            reason = rng.choice(REASONS)
            key = f"campaign:{campaign_id}:1:{c}"
            decided = NOW + timedelta(minutes=c)
            decision = "send" if reason == "ok" else "defer" if reason == "quiet_hours" else "suppress"
            row = {
                "touch_key": key, "attempt": 1, "final_key": None if decision == "defer" else key,
                "source": "campaign", "campaign_id": campaign_id, "occurrence": 1, "customer_id": c,
                "channel": "sms" if decision != "suppress" else None, "purpose": "marketing", "product_line": line,
                "priority": 5, "decision": decision, "reason": reason, "detail": "{}",
                "not_before": decided + timedelta(hours=10) if decision == "defer" else None,
                "message_id": f"m-{c}" if decision == "send" else None, "decided_at": decided,
            }  # fmt: skip
            ledger_id = conn.execute(insert(ledger).values(row)).inserted_primary_key[0]
            if decision == "defer":
                expected["waiting"] += 1
                continue
            if decision == "suppress":
                expected["suppressed"][reason] = expected["suppressed"].get(reason, 0) + 1
            # a policy of the line: inside the window, after it, or none; one of another line never counts
            buy = rng.choice(["inside", "late", "none", "before"])
            moment = {"inside": decided + timedelta(days=3), "late": decided + timedelta(days=45),
                      "before": decided - timedelta(days=1)}.get(buy)  # fmt: skip
            if moment is not None:
                next_policy += 1
                conn.execute(
                    insert(policies).values(
                        {**template, "id": next_policy, "policy_no": f"PT{next_policy}", "customer_id": c,
                         "product_id": product_id, "issued_at": moment, "created_at": moment, "updated_at": moment,
                         "deleted_at": None, "renewal_of": None}
                    )
                )  # fmt: skip
            won = buy == "inside"
            if reason not in BEFORE_HOLDOUT:
                group = groups["holdout" if reason == "holdout" else "treated"]
                group[0] += 1
                group[1] += won
            if decision != "send":
                continue
            converted_sent += won
            states = ["queued", "sent"] + rng.choice([[], ["delivered"], ["delivered", "opened", "clicked"]])
            for state in states:
                expected[state] = expected.get(state, 0) + 1
                conn.execute(
                    insert(deliveries).values(
                        message_id=f"m-{c}",
                        ledger_id=ledger_id,
                        customer_id=c,
                        state=state,
                        provider="sandbox",
                        at=decided + timedelta(seconds=5),
                    )  # fmt: skip
                )
    with engine.connect() as conn:
        funnel = campaign_funnel(conn, campaign_id)
        assert campaign_funnel(conn, campaign_id + 999) is None
    assert funnel is not None
    assert funnel.audience == 60 and funnel.waiting == expected["waiting"]
    assert funnel.decided == 60 - expected["waiting"]
    assert funnel.suppressed == dict(sorted(expected["suppressed"].items()))
    assert (funnel.sent, funnel.delivered, funnel.opened, funnel.clicked) == (
        expected["sent"], expected.get("delivered", 0), expected.get("opened", 0), expected.get("clicked", 0)
    )  # fmt: skip
    assert funnel.by_channel["sms"]["sent"] == expected["sent"]
    assert funnel.converted == converted_sent
    uplift = funnel.uplift
    assert uplift is not None
    # the seeded data exercises every branch: waiting touches, conversions in both groups, clicks
    assert expected["waiting"] and groups["treated"][1] and groups["holdout"][1] and expected.get("clicked")
    assert (uplift.treated, uplift.treated_converted) == tuple(groups["treated"])
    assert (uplift.holdout, uplift.holdout_converted) == tuple(groups["holdout"])
    (n_t, x_t), (n_h, x_h) = groups["treated"], groups["holdout"]
    d, low, high = newcombe(x_t, n_t, x_h, n_h)
    assert (uplift.difference, uplift.low, uplift.high) == (d, low, high) and low <= d <= high


def test_a_campaign_without_decisions_has_an_empty_funnel(engine) -> None:
    with engine.begin() as conn:
        campaign_id = _write_campaign(conn, "auto")
    with engine.connect() as conn:
        funnel = campaign_funnel(conn, campaign_id)
    assert funnel is not None and funnel.audience == 0 and funnel.sent == 0 and funnel.uplift is None
    assert datetime.now(UTC)  # the funnel needs no clock
