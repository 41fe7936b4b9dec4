"""Behaviour and business events of the synthetic world, in the envelope of ``schemas/events/``.

Envelope: ``event_id`` (a UUID drawn from the day's random stream, so a replayed day emits the same ids and
consumers can deduplicate), ``event_type``, ``schema_version`` 1, ``occurred_at`` (UTC,
``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``customer_id``, ``source`` (app | wechat | core | sms) and ``payload``.

WeChat openids never leave the source: ``wechat_follow`` carries ``openid_token``, the keyed HMAC-SHA256 of
the openid with the platform's PII key (the same token silver computes for ``customers.wechat_openid``, so
the two join), or a plain SHA-256 when no key is configured.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import date, datetime, timedelta

from mo import pii
from mo.generator import reference as ref
from mo.generator.book import choose, midnight

SCHEMA_VERSION = 1


def occurred(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def openid_token(openid: str, key: bytes | None) -> str:
    """The same token silver holds for the customer's wechat_openid (mo.pii), so events join to it."""
    if key:
        return pii.token(key, "identifier", openid) or ""
    return hashlib.sha256(pii.normalise("identifier", openid).encode("utf-8")).hexdigest()  # type: ignore[union-attr]


def envelope(rng: random.Random, event_type: str, ts: datetime, customer_id: int, source: str, payload: dict) -> dict:
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": occurred(ts),
        "customer_id": int(customer_id),
        "source": source,
        "payload": payload,
    }


def claim_filed(rng, *, ts: datetime, customer_id: int, claim_no: str, policy_no: str, incident_type: str,
                amount_claimed: float) -> dict:  # fmt: skip
    payload = {
        "claim_no": claim_no,
        "policy_no": policy_no,
        "incident_type": incident_type,
        "amount_claimed": float(amount_claimed),
    }
    return envelope(rng, "claim_filed", ts, customer_id, "core", payload)


def policy_near_renewal(rng, *, ts: datetime, customer_id: int, policy_no: str, product_code: str, end_date: date,
                        today: date) -> dict:  # fmt: skip
    payload = {
        "policy_no": policy_no,
        "product_code": product_code,
        "end_date": end_date.isoformat(),
        "days_to_end": (end_date - today).days,
    }
    return envelope(rng, "policy_near_renewal", ts, customer_id, "core", payload)


def _evening_time(rng: random.Random, day: date) -> datetime:
    """People browse at lunch and in the evening: a mixture centred on 12:30 and 21:00 (UTC+8 is ignored)."""
    r = rng.random()
    if r < 0.25:
        seconds = rng.uniform(0, 86_400)
    elif r < 0.55:
        seconds = min(max(rng.gauss(45_000, 5_000), 0), 86_399)
    else:
        seconds = min(max(rng.gauss(75_600, 7_000), 0), 86_399)
    return midnight(day) + timedelta(seconds=seconds)


def behaviour_events(rng: random.Random, *, day: date, customer_id: int, openid: str | None, app_user_id: str | None,
                     key: bytes | None) -> list[dict]:  # fmt: skip
    """One active customer's day in the app, WeChat and their SMS inbox (1-6 events, in time order)."""
    r = rng.random
    choices: list[tuple[str, float]] = []
    payload: dict[str, object]
    if app_user_id:
        choices += [("app_page_view", 6), ("form_submit", 1), ("coupon_claim", 0.8), ("coupon_redeem", 0.3),
                    ("message_open:app_push", 1.2)]  # fmt: skip
    if openid:
        choices += [("wechat_click", 3), ("wechat_follow", 0.25), ("message_open:wechat", 1.5), ("coupon_claim", 0.5)]
    choices.append(("message_open:sms", 0.8))
    n = 1 + int(r() * r() * 6)
    times = sorted(_evening_time(rng, day) for _ in range(n))
    events = []
    coupon: str | None = None
    for ts in times:
        kind = choose(rng, choices)
        product = ref.PRODUCTS[int(r() * len(ref.PRODUCTS))].code if r() < 0.6 else None
        if kind == "app_page_view":
            page = ref.APP_PAGES[int(r() * len(ref.APP_PAGES))]
            payload = {"page": page, "product_code": product if page in ("product_detail", "quote") else None,
                       "duration_ms": int(500 + rng.expovariate(1 / 25_000))}  # fmt: skip
            events.append(envelope(rng, kind, ts, customer_id, "app", payload))
        elif kind == "form_submit":
            form = ref.FORMS[int(r() * len(ref.FORMS))]
            line = ref.FORM_LINE.get(form)
            code = None
            if line:
                on_sale = ref.PRODUCTS_BY_LINE[line]
                code = ref.PRODUCTS[on_sale[int(r() * len(on_sale))]].code
            source = "app" if app_user_id and (not openid or r() < 0.6) else "wechat"
            events.append(envelope(rng, kind, ts, customer_id, source, {"form": form, "product_code": code}))
        elif kind == "coupon_claim":
            coupon = f"CP{day:%y%m%d}{rng.getrandbits(32):08x}"
            payload = {"coupon_id": coupon, "campaign_id": ref.CAMPAIGNS[int(r() * len(ref.CAMPAIGNS))],
                       "value": ref.COUPON_VALUES[int(r() * len(ref.COUPON_VALUES))]}  # fmt: skip
            events.append(envelope(rng, kind, ts, customer_id, "app" if app_user_id else "wechat", payload))
        elif kind == "coupon_redeem":
            coupon_id = coupon or f"CP{day - timedelta(days=1 + int(r() * 20)):%y%m%d}{rng.getrandbits(32):08x}"
            payload = {"coupon_id": coupon_id, "policy_no": None,
                       "value": ref.COUPON_VALUES[int(r() * len(ref.COUPON_VALUES))]}  # fmt: skip
            events.append(envelope(rng, kind, ts, customer_id, "app", payload))
        elif kind == "wechat_click":
            payload = {"article_id": f"ART{day:%Y%m}{int(r() * 400):04d}",
                       "menu": ref.WECHAT_MENUS[int(r() * len(ref.WECHAT_MENUS))]}  # fmt: skip
            events.append(envelope(rng, kind, ts, customer_id, "wechat", payload))
        elif kind == "wechat_follow":
            payload = {"openid_token": openid_token(openid or "", key),
                       "scene": ref.WECHAT_SCENES[int(r() * len(ref.WECHAT_SCENES))]}  # fmt: skip
            events.append(envelope(rng, kind, ts, customer_id, "wechat", payload))
        else:
            channel = kind.split(":", 1)[1]
            source = {"app_push": "app", "wechat": "wechat", "sms": "sms"}[channel]
            payload = {"message_id": f"MSG{day:%Y%m%d}{rng.getrandbits(40):010x}", "channel": channel}
            events.append(envelope(rng, "message_open", ts, customer_id, source, payload))
    return events
