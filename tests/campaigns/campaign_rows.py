"""Campaign rows written by hand into a generated world's core database, as the dispatcher, the channel workers
and the receipts would have left them: two campaigns on two product lines, a journey touch, every suppression
reason, deferrals, every delivery state, conversions inside and outside the attribution window and a stored
holdout. Shared by the results marts' tests and the dashboards' world."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from mo.campaigns.results import BEFORE_HOLDOUT
from mo.oltp.campaign_tables import Campaign, CampaignAudience, Delivery, HoldoutAssignment, LedgerEntry
from mo.oltp.models import Policy, Product

START = datetime(2026, 11, 27, 9, 0, 0)  # a Friday: the touches run into the next ISO week and month
# Every reason a final suppression can carry, sends, deferrals (quiet hours) and a deferral decided again.
REASONS = [
    "ok", "holdout", "no_consent", "ok", "cap_7d", "holdout", "erased", "consent_withdrawn", "consent_unknown",
    "open_claim", "open_complaint", "risk_above_rating", "cap_30d", "cap_channel_7d", "customer_frequency",
    "campaign_ended", "no_channel", "quiet_hours", "ok", "holdout", "deferred_then_sent",
]  # fmt: skip
CUSTOMERS = 63


def _campaign(conn, code: str, line: str, start: datetime) -> int:
    return conn.execute(
        insert(Campaign.__table__).values(
            campaign_code=code,
            name=f"续保提醒 {code}",
            objective="renewal",
            product_line=line,
            purpose="marketing",
            offer_type="product",
            segment_id="s_renewal",
            segment_version=1,
            channels=json.dumps([{"channel": "sms"}, {"channel": "wechat"}]),
            schedule=json.dumps({"kind": "now"}),
            priority=5,
            holdout_share=Decimal("0.1"),
            ends_at=start + timedelta(days=30),
            status="running",
            author="user:m",
            version=1,
            created_at=start,
            updated_at=start,
        )  # fmt: skip
    ).inserted_primary_key[0]


def write_campaign_rows(engine, start: datetime = START) -> dict:
    """Two campaigns (two lines), a journey touch, every reason, deliveries, policies in and out of the window;
    the first touch is decided at ``start``."""
    rng = random.Random(11)
    ledger, deliveries, audience = LedgerEntry.__table__, Delivery.__table__, CampaignAudience.__table__
    policies, products = Policy.__table__, Product.__table__
    with engine.begin() as conn:
        lines = list(dict.fromkeys(conn.execute(select(products.c.line).order_by(products.c.id)).scalars()))
        line, other_line = lines[0], lines[1]
        product_of = {
            ln: conn.execute(select(products.c.id).where(products.c.line == ln)).scalars().first() for ln in lines
        }
        template = dict(conn.execute(select(policies).limit(1)).mappings().one())
        first = _campaign(conn, "CMP-LAKE-1", line, start)
        second = _campaign(conn, "CMP-LAKE-2", other_line, start)
        next_policy = 10**12

        def policy(customer: int, ln: str, moment: datetime) -> None:
            nonlocal next_policy
            next_policy += 1
            conn.execute(
                insert(policies).values(
                    {**template, "id": next_policy, "policy_no": f"PL{next_policy}", "customer_id": customer,
                     "product_id": product_of[ln], "issued_at": moment, "created_at": moment, "updated_at": moment,
                     "deleted_at": None, "renewal_of": None}
                )
            )  # fmt: skip

        def touch(campaign_id: int | None, ln: str, customer: int, reason: str, decided: datetime) -> None:
            key = f"campaign:{campaign_id}:1:{customer}" if campaign_id else f"journey:renewal:{customer}"
            base = {
                "touch_key": key, "source": "campaign" if campaign_id else "journey", "campaign_id": campaign_id,
                "occurrence": 1 if campaign_id else None, "customer_id": customer, "purpose": "marketing",
                "product_line": ln, "priority": 5, "detail": "{}",
            }  # fmt: skip
            attempt = 1
            if reason in ("quiet_hours", "deferred_then_sent"):
                conn.execute(
                    insert(ledger).values(
                        {**base, "attempt": 1, "final_key": None, "channel": "sms", "decision": "defer",
                         "reason": "quiet_hours", "not_before": decided + timedelta(hours=9), "message_id": None,
                         "decided_at": decided}
                    )
                )  # fmt: skip
                if reason == "quiet_hours":
                    return
                attempt, reason, decided = 2, "ok", decided + timedelta(hours=9)
            decision = "send" if reason == "ok" else "suppress"
            channel = None if decision == "suppress" and reason in BEFORE_HOLDOUT | {"no_channel"} else "sms"
            if decision == "send" and customer % 2:
                channel = "wechat"
            message_id = f"m-{uuid.uuid4()}" if decision == "send" else None
            ledger_id = conn.execute(
                insert(ledger).values(
                    {**base, "attempt": attempt, "final_key": key, "channel": channel, "decision": decision,
                     "reason": reason, "not_before": None, "message_id": message_id, "decided_at": decided}
                )
            ).inserted_primary_key[0]  # fmt: skip
            buy = rng.choice(["inside", "inside", "edge", "late", "before", "other_line", "none"])
            moment = {
                "inside": decided + timedelta(days=3), "edge": decided + timedelta(days=30),
                "late": decided + timedelta(days=30, seconds=1), "before": decided - timedelta(seconds=1),
                "other_line": decided + timedelta(days=2),
            }.get(buy)  # fmt: skip
            if moment is not None:
                policy(customer, other_line if buy == "other_line" and ln == line else line if buy == "other_line"
                       else ln, moment)  # fmt: skip
            if decision == "send":
                states = ["queued"] + rng.choice(
                    [["sent"], ["sent", "delivered"], ["sent", "delivered", "opened", "clicked"], ["failed"],
                     ["dead_letter"], ["sent", "delivered", "opened"]]
                )  # fmt: skip
                for i, state in enumerate(states):
                    conn.execute(
                        insert(deliveries).values(
                            message_id=message_id,
                            ledger_id=ledger_id,
                            customer_id=customer,
                            state=state,
                            provider="sandbox",
                            at=decided + timedelta(seconds=5 + i),
                        )  # fmt: skip
                    )

        for c in range(1, CUSTOMERS + 1):
            conn.execute(insert(audience).values(campaign_id=first, occurrence=1, customer_id=c))
            touch(first, line, c, REASONS[(c - 1) % len(REASONS)], start + timedelta(hours=2 * c))
        for c in range(1, 13):
            conn.execute(insert(audience).values(campaign_id=second, occurrence=1, customer_id=c))
            touch(second, other_line, c, ["ok", "holdout", "cap_7d", "no_consent"][c % 4], start + timedelta(hours=c))
        touch(None, line, 5, "ok", start)  # a journey touch: in fct_contact_touches, not in the campaign marts
        conn.execute(
            insert(HoldoutAssignment.__table__).values(
                product_line=line,
                cycle="2026",
                customer_id=2,
                held_out=True,
                share=Decimal("0.1"),
                bucket=42,
                assigned_at=start,
            )  # fmt: skip
        )
    return {"first": first, "second": second, "line": line, "other_line": other_line}
