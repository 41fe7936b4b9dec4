"""Event contracts in schemas/events/: the envelope every event shares, payload rules, and the one-line reasons."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from mo.config import SCHEMAS_DIR, Settings
from mo.contracts import load_event_schemas
from mo.errors import ContractViolation
from mo.events.contracts import check_event, contract_error, event_topics, topic_for
from mo.events.samples import SOURCES, sample_event, sample_stream

BEHAVIOUR = {"app_page_view", "wechat_follow", "wechat_click", "form_submit", "coupon_claim", "coupon_redeem"}
BEHAVIOUR |= {"message_open"}
BUSINESS = {"claim_filed", "policy_near_renewal", "claim_status_changed", "claim_document_attached"}
BUSINESS |= {"consent_changed", "complaint_opened", "complaint_resolved", "customer_erased"}
BUSINESS |= {"campaign_status_changed"}
ENVELOPE = ["event_id", "event_type", "schema_version", "occurred_at", "customer_id", "source", "payload"]


def test_every_event_type_has_a_draft_2020_12_schema():
    schemas = load_event_schemas()
    assert set(schemas) == BEHAVIOUR | BUSINESS == set(SOURCES)
    for event_type, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["event_type"] == {"const": event_type}
        assert (SCHEMAS_DIR / "events" / f"{event_type}.schema.json").is_file()


def test_envelope_is_exact_and_closed():
    for event_type, schema in load_event_schemas().items():
        assert list(schema["properties"]) == ENVELOPE, event_type
        assert schema["required"] == ENVELOPE
        assert schema["additionalProperties"] is False
        payload = schema["properties"]["payload"]
        assert payload["additionalProperties"] is False
        assert payload["required"] == list(payload["properties"]), event_type


def test_topics_follow_x_topic_and_the_prefix():
    settings = Settings(kafka_topic_prefix="acme")
    assert event_topics(settings) == ["acme.behaviour", "acme.business"]
    for event_type in BEHAVIOUR:
        assert topic_for(settings, event_type) == "acme.behaviour"
    for event_type in BUSINESS:
        assert topic_for(settings, event_type) == "acme.business"
    with pytest.raises(ContractViolation, match="unknown event_type 'nope'"):
        topic_for(settings, "nope")


def test_sample_events_honour_their_contracts():
    for event in sample_stream(90):
        assert contract_error(event) is None, event
        check_event(event)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            sample_event("app_page_view", payload={"page": "home", "product_code": None, "duration_ms": -5}),
            "payload.duration_ms: -5 is less than the minimum of 0",
        ),
        ({**sample_event("app_page_view"), "event_type": "page_scroll"}, "unknown event_type 'page_scroll'"),
        (sample_event("claim_filed", occurred_at="2026-11-01T10:00:00+08:00"), "occurred_at: "),
        (
            sample_event("claim_filed", occurred_at="2026-02-30T10:00:00Z"),
            "occurred_at: '2026-02-30T10:00:00Z' is not a 'date-time'",
        ),
        (sample_event("claim_filed", event_id="not-a-uuid"), "event_id: "),
        (sample_event("claim_filed", customer_id=0), "customer_id: 0 is less than the minimum of 1"),
        (sample_event("claim_filed", customer_id=True), "customer_id: True is not of type 'integer'"),
        (sample_event("claim_filed", schema_version=2), "schema_version: 1 was expected"),
        (sample_event("claim_filed", source="fax"), "source: 'fax' is not one of"),
        (
            sample_event("claim_filed", extra=1),
            "(envelope): Additional properties are not allowed ('extra' was unexpected)",
        ),
        (
            sample_event("message_open", payload={"message_id": "M1", "channel": "email"}),
            "payload.channel: 'email' is not one of",
        ),
        (
            sample_event("wechat_follow", payload={"openid_token": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "scene": "qr"}),
            "payload.openid_token: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' does not match",
        ),
        (
            sample_event(
                "policy_near_renewal",
                payload={"policy_no": "P1", "product_code": "A", "end_date": "2026-13-01", "days_to_end": 3},
            ),
            "payload.end_date: '2026-13-01' is not a 'date'",
        ),
        (
            sample_event("coupon_claim", payload={"coupon_id": "C1", "value": 5}),
            "payload: 'campaign_id' is a required property",
        ),
        (
            sample_event(
                "claim_status_changed",
                payload={**sample_event("claim_status_changed")["payload"], "to_status": "closed"},
            ),
            "payload.to_status: 'closed' is not one of",
        ),
        (
            sample_event("consent_changed", payload={**sample_event("consent_changed")["payload"], "purpose": "ads"}),
            "payload.purpose: 'ads' is not one of ['marketing', 'service']",
        ),
        (
            sample_event(
                "customer_erased",
                payload={**sample_event("customer_erased")["payload"], "erased": ["profile", "Zhang Wei 13800138000"]},
            ),
            "payload.erased.1: 'Zhang Wei 13800138000' is not one of",
        ),
        (
            sample_event(
                "claim_document_attached",
                payload={**sample_event("claim_document_attached")["payload"], "content_type": "text/html"},
            ),
            "payload.content_type: 'text/html' is not one of",
        ),
        (
            sample_event(
                "campaign_status_changed",
                payload={**sample_event("campaign_status_changed")["payload"], "to_status": "launched"},
            ),
            "payload.to_status: 'launched' is not one of",
        ),
        ({k: v for k, v in sample_event("form_submit").items() if k != "event_type"}, "event_type: missing"),
        ([1, 2], "not an event: expected a JSON object, got list"),
    ],
)
def test_contract_errors_name_the_failing_path(event, reason):
    error = contract_error(event)
    assert error is not None and error.startswith(reason), error


def test_check_event_names_the_event_type_and_path():
    event = sample_event("coupon_redeem", payload={"coupon_id": "C1", "policy_no": None, "value": -1})
    with pytest.raises(ContractViolation) as info:
        check_event(event)
    assert str(info.value) == "coupon_redeem violates its contract: payload.value: -1 is less than the minimum of 0"


def test_schemas_are_valid_json_files_with_a_topic():
    for path in sorted((SCHEMAS_DIR / "events").glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["x-topic"] in {"behaviour", "business"}, path.name


POOL = [None, True, False, 0, 1, -1, 1.0, 5.5, -0.5, 2**63 - 1, 2**63, "", "x", "app", "sms", "core", "app_push",
        "2026-11-01", "2026-13-01", "2026-11-01T10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-01T10:00:00+08:00",
        "0e5a1c9e-0b7d-4c55-9f57-3d1a2b3c4d5e", "0E5A1C9E-0B7D-4C55-9F57-3D1A2B3C4D5E", "a" * 64, "A" * 64, [], {},
        {"page": "p"}, ["profile"], ["profile", "tags"], ["profile", 1], ["Zhang Wei"]]  # fmt: skip


def _mutations(event: dict, rng) -> list[dict]:
    out = []
    for _ in range(12):
        mutated = json.loads(json.dumps(event))
        target = mutated if rng.random() < 0.5 or not isinstance(mutated["payload"], dict) else mutated["payload"]
        keys = list(target)
        action = rng.random()
        if action < 0.6:
            target[rng.choice(keys)] = rng.choice(POOL)
        elif action < 0.8:
            del target[rng.choice(keys)]
        else:
            target[rng.choice(["extra", "page", "menu", "value"])] = rng.choice(POOL)
        out.append(mutated)
    return out


def test_fast_check_agrees_with_jsonschema_on_mutated_events():
    """The compiled check decides "valid" on the hot path: it must never accept what jsonschema refuses."""
    import random

    from mo.events.contracts import fast_checks, validators

    rng = random.Random(20261101)
    checks, full = fast_checks(), validators()
    assert set(checks) == set(full)  # every contract compiles; none silently runs the slow path
    valid = invalid = 0
    for event in sample_stream(450):
        for mutated in [event, *_mutations(event, rng)]:
            expected = full[event["event_type"]].is_valid(mutated)
            assert checks[event["event_type"]](mutated) == expected, mutated
            valid += expected
            invalid += not expected
    assert valid > 500 and invalid > 2000  # both outcomes well exercised
