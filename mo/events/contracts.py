"""Event contracts from schemas/events/: topic routing and validation shared by producer and ingest.

The producer refuses an event that breaks its contract; the ingest job uses the same check to route
what still arrives malformed (other producers, older code) to the dead-letter table. One function
decides both, so a message the producer would accept is never dead-lettered by the ingest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from mo.config import Settings
from mo.contracts import load_event_schemas
from mo.errors import ContractViolation

TOPIC_KINDS = ("behaviour", "business")
# x-subject: what an event is about when it is not a customer (default "customer"; e.g. "campaign"): such events
# are not timeline types.
ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "x-topic", "x-subject"}

Check = Callable[[Any], bool]


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


def _same(a: Any, b: Any) -> bool:
    """JSON equality of scalars: true is not 1, as in JSON Schema's const and enum."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _is_integer(x: Any) -> bool:
    # Draft 2020-12: 5.0 is an integer; true is not.
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


TYPE_CHECKS: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
}


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for one in checks:
            if not one(x):
                return False
        return True

    return check


def _compile(schema: dict, format_checker: FormatChecker) -> Check:
    """A yes/no check with JSON Schema semantics for the keywords our contracts use.

    jsonschema's general validator costs ~90 us an event here, which caps the publisher and the ingest
    at ~10k events/s of pure CPU. This check answers "valid?" in a fraction of that; only an invalid
    event goes through jsonschema, which stays the authority for the reason. A keyword this compiler
    does not know raises NotImplementedError and that event type keeps the general validator;
    tests/mo/test_events_contracts.py checks both agree on thousands of mutated events.
    """
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in ANNOTATIONS or keyword in ("required", "additionalProperties") and "properties" in schema:
            continue
        if keyword == "type":
            types = [TYPE_CHECKS[t] for t in ([value] if isinstance(value, str) else value)]
            checks.append(types[0] if len(types) == 1 else lambda x, types=types: any(t(x) for t in types))
        elif keyword == "const":
            checks.append(lambda x, c=value: _same(x, c))
        elif keyword == "enum":
            checks.append(lambda x, options=tuple(value): any(_same(x, o) for o in options))
        elif keyword == "minimum":
            checks.append(lambda x, bound=value: not _is_number(x) or x >= bound)
        elif keyword == "maximum":
            checks.append(lambda x, bound=value: not _is_number(x) or x <= bound)
        elif keyword == "minLength":
            checks.append(lambda x, n=value: not isinstance(x, str) or len(x) >= n)
        elif keyword == "pattern":
            checks.append(lambda x, rx=re.compile(value): not isinstance(x, str) or rx.search(x) is not None)
        elif keyword == "format":
            checks.append(lambda x, fmt=value: format_checker.conforms(x, fmt))
        elif keyword == "minItems":
            checks.append(lambda x, n=value: not isinstance(x, list) or len(x) >= n)
        elif keyword == "items" and isinstance(value, dict):
            item = _compile(value, format_checker)
            checks.append(lambda x, item=item: not isinstance(x, list) or all(item(i) for i in x))
        elif keyword == "properties":
            props = [(name, _compile(sub, format_checker)) for name, sub in value.items()]
            required = tuple(schema.get("required", ()))
            closed = schema.get("additionalProperties", True) is False
            allowed = frozenset(value)

            def _object(x: Any, props=props, required=required, closed=closed, allowed=allowed) -> bool:
                if not isinstance(x, dict):
                    return True
                for name in required:
                    if name not in x:
                        return False
                if closed and not allowed.issuperset(x):
                    return False
                for name, check in props:
                    if name in x and not check(x[name]):
                        return False
                return True

            checks.append(_object)
        else:
            raise NotImplementedError(keyword)
    return _all(checks)


@cache
def fast_checks() -> dict[str, Check]:
    """Compiled yes/no checks per event_type, where the schema uses only keywords the compiler knows."""
    result = {}
    for event_type, validator in validators().items():
        try:
            result[event_type] = _compile(validator.schema, validator.format_checker or FormatChecker(()))
        except NotImplementedError:
            continue
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
    fast = fast_checks().get(event_type)
    if fast is not None and fast(event):
        return None
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
