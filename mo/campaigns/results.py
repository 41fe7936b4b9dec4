"""A campaign's funnel and its uplift over the holdout, read from the contact ledger in the core database.

What a marketer asks of a running or finished campaign, answered from the rows the send decision, the
channel workers, the providers' receipts and the tracked links appended (``contact_ledger``,
``contact_deliveries``) and from the core systems' policies (conversions):

- audience (the frozen snapshot), touches still waiting (deferred, not yet decided again);
- suppressed, by reason (the first rule that stopped each touch);
- sent, delivered, failed, dead-lettered, opened, clicked: distinct messages that reached each state, in all
  and per channel;
- converted: a policy of the campaign's product line issued to the customer within the attribution window
  after the touch's decision (bought or renewed);
- uplift over the holdout. The comparison is between customers who passed consent and the guardrails (the
  rules before the holdout in the decision's order): those held out against all the others, whether or not
  a cap or quiet hours then stopped their message (intention to treat: the holdout is drawn from the eligible,
  so the treated group must be too). The difference of conversion rates comes with Newcombe's hybrid score
  interval (from two Wilson intervals), which stays inside [-1, 1] and behaves for small counts and rates
  near zero, where the Wald interval does not.

The lake's results marts (per week, month, channel and product line) answer the same questions at scale; this
module is the campaign's own live view, used by the API and the demo.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from mo.oltp.campaign_tables import Campaign, CampaignAudience, Delivery, LedgerEntry
from mo.oltp.models import Policy, Product

# Reasons a touch stops at before the holdout is drawn: these customers are in neither comparison group.
BEFORE_HOLDOUT = frozenset(
    {
        "erased",
        "no_consent",
        "consent_withdrawn",
        "consent_unknown",
        "open_claim",
        "open_complaint",
        "risk_above_rating",
        "campaign_ended",
    }
)
HOLDOUT = "holdout"
DELIVERY_FUNNEL = ("queued", "sent", "delivered", "failed", "dead_letter", "opened", "clicked")
DEFAULT_ATTRIBUTION_DAYS = 30
Z_95 = 1.959963984540054

LEDGER = LedgerEntry.__table__
DELIVERIES = Delivery.__table__
AUDIENCE = CampaignAudience.__table__
POLICIES = Policy.__table__
PRODUCTS = Product.__table__


@dataclass(frozen=True)
class Uplift:
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int
    treated_rate: float | None
    holdout_rate: float | None
    difference: float | None  # treated rate - holdout rate
    low: float | None  # 95% interval of the difference (Newcombe hybrid score)
    high: float | None


@dataclass(frozen=True)
class Funnel:
    campaign_id: int
    product_line: str
    attribution_days: int
    audience: int
    decided: int
    waiting: int  # deferred touches not decided again yet
    suppressed: dict[str, int]
    sent: int
    delivered: int
    failed: int
    dead_letter: int
    opened: int
    clicked: int
    converted: int  # among customers sent a message
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    uplift: Uplift | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z_95) -> tuple[float, float, float]:
    """Difference p1 - p2 with Newcombe's hybrid score interval (method 10 of Newcombe 1998)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo is not None else moment


def campaign_funnel(
    conn: Connection, campaign_id: int, *, attribution_days: int = DEFAULT_ATTRIBUTION_DAYS
) -> Funnel | None:
    """The campaign's funnel over all its occurrences, or None for an unknown campaign."""
    campaign = conn.execute(select(Campaign.__table__).where(Campaign.__table__.c.id == campaign_id)).first()
    if campaign is None:
        return None
    audience = conn.execute(
        select(func.count()).select_from(AUDIENCE).where(AUDIENCE.c.campaign_id == campaign_id)
    ).scalar_one()
    finals = conn.execute(
        select(LEDGER.c.customer_id, LEDGER.c.decision, LEDGER.c.reason, LEDGER.c.channel, LEDGER.c.decided_at).where(
            LEDGER.c.campaign_id == campaign_id, LEDGER.c.final_key.is_not(None)
        )
    ).all()
    deferred = conn.execute(
        select(func.count(func.distinct(LEDGER.c.touch_key))).where(
            LEDGER.c.campaign_id == campaign_id, LEDGER.c.decision == "defer"
        )
    ).scalar_one()
    deferred_decided = conn.execute(
        select(func.count(func.distinct(LEDGER.c.touch_key))).where(
            LEDGER.c.campaign_id == campaign_id,
            LEDGER.c.decision == "defer",
            LEDGER.c.touch_key.in_(
                select(LEDGER.c.final_key).where(LEDGER.c.campaign_id == campaign_id, LEDGER.c.final_key.is_not(None))
            ),
        )
    ).scalar_one()
    suppressed = Counter(r.reason for r in finals if r.decision == "suppress")

    states = conn.execute(
        select(LEDGER.c.channel, DELIVERIES.c.state, func.count(func.distinct(DELIVERIES.c.message_id)))
        .select_from(DELIVERIES.join(LEDGER, LEDGER.c.id == DELIVERIES.c.ledger_id))
        .where(LEDGER.c.campaign_id == campaign_id)
        .group_by(LEDGER.c.channel, DELIVERIES.c.state)
    ).all()
    totals: Counter[str] = Counter()
    by_channel: dict[str, dict[str, int]] = {}
    for channel, state, count in states:
        totals[state] += count
        by_channel.setdefault(channel or "none", dict.fromkeys(DELIVERY_FUNNEL, 0))[state] = count

    window = timedelta(days=attribution_days)
    customers = {r.customer_id for r in finals}
    bought = _policies_issued(conn, customers, campaign.product_line, min((r.decided_at for r in finals), default=None))

    def converted(customer_id: int, decided_at: datetime) -> bool:
        start = _naive(decided_at)
        return any(start <= moment <= start + window for moment in bought.get(customer_id, ()))

    sent_rows = [r for r in finals if r.decision == "send"]
    treated = [r for r in finals if r.reason not in BEFORE_HOLDOUT and r.reason != HOLDOUT]
    holdout = [r for r in finals if r.reason == HOLDOUT]
    treated_converted = sum(converted(r.customer_id, r.decided_at) for r in treated)
    holdout_converted = sum(converted(r.customer_id, r.decided_at) for r in holdout)
    uplift = None
    if treated or holdout:
        t_rate = treated_converted / len(treated) if treated else None
        h_rate = holdout_converted / len(holdout) if holdout else None
        difference = low = high = None
        if treated and holdout:
            difference, low, high = newcombe(treated_converted, len(treated), holdout_converted, len(holdout))
        uplift = Uplift(
            len(treated), treated_converted, len(holdout), holdout_converted, t_rate, h_rate, difference, low, high
        )
    return Funnel(
        campaign_id=campaign_id,
        product_line=campaign.product_line,
        attribution_days=attribution_days,
        audience=audience,
        decided=len(finals),
        waiting=deferred - deferred_decided,
        suppressed=dict(sorted(suppressed.items())),
        sent=totals["sent"],
        delivered=totals["delivered"],
        failed=totals["failed"],
        dead_letter=totals["dead_letter"],
        opened=totals["opened"],
        clicked=totals["clicked"],
        converted=sum(converted(r.customer_id, r.decided_at) for r in sent_rows),
        by_channel=dict(sorted(by_channel.items())),
        uplift=uplift,
    )


def _policies_issued(
    conn: Connection, customers: set[int], line: str, since: datetime | None, chunk: int = 1000
) -> dict[int, list[datetime]]:
    """When each customer was issued a policy of ``line`` (bought or renewed) at or after ``since``."""
    if not customers or since is None:
        return {}
    issued = func.coalesce(POLICIES.c.issued_at, POLICIES.c.created_at)
    found: dict[int, list[datetime]] = {}
    ids = sorted(customers)
    for start in range(0, len(ids), chunk):
        rows = conn.execute(
            select(POLICIES.c.customer_id, issued.label("issued"))
            .select_from(POLICIES.join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id))
            .where(
                and_(
                    POLICIES.c.customer_id.in_(ids[start : start + chunk]),
                    PRODUCTS.c.line == line,
                    POLICIES.c.deleted_at.is_(None),
                    issued >= _naive(since),
                )
            )
        )
        for customer_id, moment in rows:
            found.setdefault(int(customer_id), []).append(_naive(moment))
    return found
