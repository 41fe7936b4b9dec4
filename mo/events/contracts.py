"""Event contracts from schemas/events/: topic routing and validation shared by producer and ingest.

The producer refuses an event that breaks its contract; the ingest job uses the same check to route
what still arrives malformed (other producers, older code) to the dead-letter table. One function
decides both, so a message the producer would accept is never dead-lettered by the ingest.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from mo.config import Settings
from mo.contracts import load_event_schemas
from mo.errors import ContractViolation

TOPIC_KINDS = ("behaviour", "business")


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    # jsonschema checks date-time only with the optional rfc3339-validator package, absent here.
    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if isinstance(value, str):
            datetime.fromisoformat(value)
        return True

    return checker


@cache
def validators() -> dict[str, Draft202012Validator]:
    """One compiled validator per event_type."""
    checker = _format_checker()
    result = {}
    for event_type, schema in load_event_schemas().items():
        Draft202012Validator.check_schema(schema)
        if schema.get("x-topic") not in TOPIC_KINDS:
            raise ContractViolation(f"{event_type}.schema.json: x-topic must be one of {', '.join(TOPIC_KINDS)}")
        result[event_type] = Draft202012Validator(schema, format_checker=checker)
    return result


def event_types() -> list[str]:
    return sorted(validators())


def topic_kind(event_type: str) -> str:
    """'behaviour' or 'business' as the event's schema declares (x-topic)."""
    try:
        return validators()[event_type].schema["x-topic"]
    except KeyError:
        raise ContractViolation(f"unknown event_type {event_type!r}") from None


def topic_name(settings: Settings, kind: str) -> str:
    return f"{settings.kafka_topic_prefix}.{kind}"


def topic_for(settings: Settings, event_type: str) -> str:
    return topic_name(settings, topic_kind(event_type))


def event_topics(settings: Settings) -> list[str]:
    """Every topic the events land on, in a stable order."""
    return [topic_name(settings, kind) for kind in TOPIC_KINDS]


def contract_error(event: Any) -> str | None:
    """None if the event honours its contract, else one line naming the reason and the failing path.

    Examples: "unknown event_type 'x'", "payload.duration_ms: -5 is less than the minimum of 0".
    """
    if not isinstance(event, dict):
        return f"not an event: expected a JSON object, got {type(event).__name__}"
    event_type = event.get("event_type")
    if event_type is None:
        return "event_type: missing"
    if not isinstance(event_type, str):
        return f"event_type: {event_type!r} is not a string"
    validator = validators().get(event_type)
    if validator is None:
        return f"unknown event_type {event_type!r}"
    error = best_match(validator.iter_errors(event))
    if error is None:
        return None
    path = ".".join(str(part) for part in error.absolute_path) or "(envelope)"
    return f"{path}: {error.message}"


def check_event(event: Any) -> None:
    """Raise ContractViolation naming the event_type and the failing path if the event breaks its contract."""
    reason = contract_error(event)
    if reason is not None:
        event_type = event.get("event_type") if isinstance(event, dict) else None
        raise ContractViolation(f"{event_type or 'event'} violates its contract: {reason}")
