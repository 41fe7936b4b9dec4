"""Contract-valid example events, one shape per event_type: for tests, the benchmark and docs.

The synthetic world's generator emits the real stream; these are deliberately simple and deterministic
(given ``seq``) so a test can state exact expectations.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCES = {
    "app_page_view": "app",
    "wechat_follow": "wechat",
    "wechat_click": "wechat",
    "form_submit": "app",
    "coupon_claim": "app",
    "coupon_redeem": "app",
    "message_open": "sms",
    "claim_filed": "core",
    "policy_near_renewal": "core",
    "claim_status_changed": "core",
    "claim_document_attached": "app",
    "consent_changed": "app",
    "complaint_opened": "app",
    "complaint_resolved": "core",
    "customer_erased": "core",
    "campaign_status_changed": "core",
}
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def _payload(event_type: str, seq: int) -> dict[str, Any]:
    policy_no = f"P{seq:09d}"
    match event_type:
        case "app_page_view":
            return {"page": "product_detail", "product_code": "AUTO01" if seq % 2 else None, "duration_ms": seq % 9000}
        case "wechat_follow":
            return {"openid_token": hashlib.sha256(f"openid-{seq}".encode()).hexdigest(), "scene": "qr_code"}
        case "wechat_click":
            return {"article_id": f"A{seq % 97}", "menu": None if seq % 3 else "renewal"}
        case "form_submit":
            return {"form": "quote_request", "product_code": "HLTH02"}
        case "coupon_claim":
            return {"coupon_id": f"C{seq}", "campaign_id": "CMP-2026-11", "value": 50.0}
        case "coupon_redeem":
            return {"coupon_id": f"C{seq}", "policy_no": policy_no, "value": 50.0}
        case "message_open":
            return {"message_id": f"M{seq}", "channel": "sms"}
        case "claim_filed":
            return {
                "claim_no": f"CL{seq:08d}",
                "policy_no": policy_no,
                "incident_type": "collision",
                "amount_claimed": 1200.5,
            }
        case "policy_near_renewal":
            return {"policy_no": policy_no, "product_code": "AUTO01", "end_date": "2026-12-31", "days_to_end": 30}
        case "claim_status_changed":
            return {
                "claim_no": f"CL{seq:08d}",
                "from_status": "under_review",
                "to_status": "docs_requested" if seq % 2 else "approved",
                "changed_by": "claims_handler",
                "reason": "invoice missing" if seq % 2 else None,
            }
        case "claim_document_attached":
            return {
                "claim_no": f"CL{seq:08d}",
                "document_id": f"D{seq}",
                "content_type": "application/pdf",
                "size_bytes": 1000 + seq,
                "sha256": hashlib.sha256(f"doc-{seq}".encode()).hexdigest(),
            }
        case "consent_changed":
            return {
                "channel": "sms",
                "purpose": "marketing",
                "status": "opt_out" if seq % 2 else "opt_in",
                "text_version": "2026-11",
                "source": "app",
            }
        case "complaint_opened":
            return {"complaint_no": f"CP{seq:08d}", "channel": "app", "category": "claim", "policy_no": policy_no}
        case "complaint_resolved":
            return {"complaint_no": f"CP{seq:08d}", "category": "claim", "resolved_by": "service_agent"}
        case "customer_erased":
            return {
                "request_id": f"ER{seq}",
                "erased": ["profile", "tags", "marketing_consents", "hot_record"],
                "kept_under_legal_hold": ["policies", "claims"],
            }
        case "campaign_status_changed":
            return {
                "campaign_id": seq % 5000 + 1,
                "campaign_code": f"CP{seq:08d}",
                "action": "schedule",
                "from_status": "approved",
                "to_status": "scheduled",
                "changed_by": "marketer",
                "next_run_at": "2026-12-10T01:00:00.000000Z",
            }
    raise ValueError(f"unknown event_type {event_type!r}")


def sample_event(event_type: str, seq: int = 0, **overrides: Any) -> dict[str, Any]:
    """A contract-valid event; ``seq`` varies ids, customer and time; overrides replace envelope keys."""
    occurred = EPOCH + timedelta(minutes=seq)
    event = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mo-sample/{event_type}/{seq}")),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "customer_id": seq % 5000 + 1,
        "source": SOURCES[event_type],
        "payload": _payload(event_type, seq),
    }
    event.update(overrides)
    return event


def sample_stream(n: int, start: int = 0) -> list[dict[str, Any]]:
    """n events cycling through every event_type."""
    types = list(SOURCES)
    return [sample_event(types[i % len(types)], i) for i in range(start, start + n)]
