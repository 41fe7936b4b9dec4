"""A small world for the send decision's tests: throwaway databases (named h_dec_*), customers with policies,
consents with their evidence, preferences, claims and complaints, and hot records in Redis under a private
prefix."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import Connection, insert

from mo.campaigns.decision import ContactPolicy, Intent
from mo.oltp.models import Claim, Complaint, Consent, Customer, Organization, Policy, Product
from mo.oltp.privacy import ConsentEvidence, ContactPreference
from tests.mo.outbox_helpers import migrated_engine  # noqa: F401 - re-exported: the one migrated-database helper

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = datetime(2026, 1, 1)
# 10:00 in Shanghai (UTC+8): inside the 09:00-21:00 send window.
NOON_SHANGHAI = datetime(2026, 12, 7, 2, 0, 0)

POLICY = ContactPolicy(holdout_key=b"h-dec-holdout-key")


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def new_prefix() -> str:
    return f"h_dec_{uuid.uuid4().hex[:8]}"


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def seed_reference(conn: Connection) -> None:
    conn.execute(
        insert(Organization.__table__),
        [{"id": 1, "org_code": "HO", "name": "总公司", "level": "head_office", "parent_id": None, "province": "北京",
          "city": "北京", "created_at": T0, "updated_at": T0, "deleted_at": None}],
    )  # fmt: skip
    conn.execute(
        insert(Product.__table__),
        [
            {"id": 1, "product_code": "AU-COMP", "name": "车险", "line": "auto", "risk_level": "R1",
             "requires_dual_recording": False, "base_premium": Decimal("3000"), "term_months": 12,
             "qc_sample_ratio": Decimal("0.1"), "status": "on_sale", "created_at": T0, "updated_at": T0,
             "deleted_at": None},
            {"id": 2, "product_code": "LI-UL", "name": "万能险", "line": "life", "risk_level": "R4",
             "requires_dual_recording": True, "base_premium": Decimal("10000"), "term_months": 120,
             "qc_sample_ratio": Decimal("0.1"), "status": "on_sale", "created_at": T0, "updated_at": T0,
             "deleted_at": None},
        ],
    )  # fmt: skip


def add_customer(
    conn: Connection,
    cid: int,
    *,
    rating: str = "R3",
    app: bool = True,
    wechat: bool = True,
    consents: dict[str, str] | None = None,
    policy_start: date | None = date(2025, 3, 15),
    evidence: bool = True,
) -> dict[str, int]:
    """A customer with an auto policy and marketing consent per channel (default: opted in to every channel).
    Returns the consent evidence id per channel."""
    conn.execute(
        insert(Customer.__table__),
        [{"id": cid, "name": "张*", "id_number": f"1101011990010{cid:05d}", "phone": "138****0000", "gender": "F",
          "birth_date": date(1990, 1, 1), "province": "上海", "city": "上海", "acquisition_channel": "app",
          "wechat_openid": f"o{cid}" if wechat else None, "app_user_id": f"u{cid}" if app else None,
          "risk_rating": rating, "created_at": T0, "updated_at": T0, "deleted_at": None}],
    )  # fmt: skip
    if policy_start is not None:
        conn.execute(
            insert(Policy.__table__),
            [{"id": cid, "policy_no": f"P{cid:010d}", "customer_id": cid, "product_id": 1, "agent_id": None,
              "org_id": 1, "subject_type": "vehicle", "sum_insured": Decimal("100000"), "premium": Decimal("3000"),
              "payment_mode": "annual", "start_date": policy_start,
              "end_date": policy_start + timedelta(days=364), "status": "in_force", "renewal_of": None,
              "issued_at": T0, "created_at": T0, "updated_at": T0, "deleted_at": None}],
        )  # fmt: skip
    versions = {}
    for n, (channel, status) in enumerate(
        sorted((dict.fromkeys(("app_push", "sms", "wechat"), "opt_in") if consents is None else consents).items())
    ):
        conn.execute(
            insert(Consent.__table__),
            [{"id": cid * 10 + n, "customer_id": cid, "channel": channel, "status": status, "decided_at": T0,
              "source": "app", "created_at": T0, "updated_at": T0, "deleted_at": None}],
        )  # fmt: skip
        if evidence:
            versions[channel] = add_evidence(conn, cid, channel, status)
    return versions


def add_evidence(conn: Connection, cid: int, channel: str, status: str, purpose: str = "marketing",
                 at: datetime = T0) -> int:  # fmt: skip
    result = conn.execute(
        insert(ConsentEvidence.__table__).values(
            customer_id=cid, channel=channel, purpose=purpose, status=status, text_version="v3", source="app",
            reason="customer", decided_at=at, actor="user:app", request_id=f"req-{cid}-{channel}-{status}",
        )
    )  # fmt: skip
    return int(result.inserted_primary_key[0])


def set_prefs(conn: Connection, cid: int, *, time_zone: str, quiet: tuple[str, str] | None = None,
              max_push_per_week: int | None = None, version: int = 1) -> None:  # fmt: skip
    conn.execute(
        insert(ContactPreference.__table__),
        [{"customer_id": cid, "max_push_per_week": max_push_per_week, "quiet_start": quiet[0] if quiet else None,
          "quiet_end": quiet[1] if quiet else None, "time_zone": time_zone, "version": version, "source": "app",
          "updated_by": "user:app", "created_at": T0, "updated_at": T0}],
    )  # fmt: skip


def add_claim(conn: Connection, cid: int, status: str = "under_review", claim_id: int | None = None) -> str:
    claim_id = claim_id or cid
    number = f"C{claim_id:010d}"
    conn.execute(
        insert(Claim.__table__),
        [{"id": claim_id, "claim_no": number, "policy_id": cid, "customer_id": cid, "incident_at": T0,
          "incident_province": "上海", "incident_city": "上海", "incident_type": "collision", "reported_at": T0,
          "amount_claimed": Decimal("100"), "status": status, "submitted_at": T0, "created_at": T0,
          "updated_at": T0, "deleted_at": None}],
    )  # fmt: skip
    return number


def add_complaint(conn: Connection, cid: int, status: str = "open") -> str:
    number = f"TS{cid:010d}"
    conn.execute(
        insert(Complaint.__table__),
        [{"id": cid, "complaint_no": number, "customer_id": cid, "policy_id": None, "channel": "app",
          "category": "service", "status": status, "opened_at": T0, "resolved_at": None, "created_at": T0,
          "updated_at": T0, "deleted_at": None}],
    )  # fmt: skip
    return number


def intent(cid: int, campaign: int = 1, *, occurrence: int = 1, priority: int = 5, channels=("app_push", "sms"),
           purpose: str = "marketing", line: str | None = "auto", risk: str | None = "R1",
           share: Decimal | None = Decimal("0"), ends_at: datetime | None = None) -> Intent:  # fmt: skip
    return Intent(
        touch_key=Intent.campaign_key(campaign, occurrence, cid),
        source="campaign",
        customer_id=cid,
        channels=tuple(channels),
        purpose=purpose,
        campaign_id=campaign,
        occurrence=occurrence,
        product_line=line,
        offer_risk_level=risk,
        priority=priority,
        ends_at=ends_at,
        holdout_share=share,
        payload={c: {"title": f"campaign {campaign}", "body": "..."} for c in channels},
    )


def ledger_rows(conn: Connection) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from mo.oltp.campaign_tables import LedgerEntry

    table = LedgerEntry.__table__
    rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return rows
