"""Customer reads for apps: the published profile, with clear PII for those allowed (audited)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.api.deps import RedisDep, SettingsDep, SourceDep, StoreDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.roles import Scope
from app.services import audit
from app.services.refreshes import refresh_as_of
from app.services.visibility import require_visible
from mo.oltp.models import Customer
from mo.serving_store.redis_store import read_profile

router = APIRouter(prefix="/v1/customers", tags=["customers"])
CUSTOMERS = Customer.__table__
CustomerId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="The customer's id in the core systems.", examples=[1001])
]


class ClearPii(BaseModel):
    name: str
    phone: str
    id_number: str


class CustomerProfile(BaseModel):
    customer_id: int
    refresh_id: str = Field(description="The published refresh this profile comes from.")
    as_of_date: date | None = Field(description="The day the refresh describes; the profile is as of then.")
    segments: list[str] = Field(description="Ids of the segments the customer is in, in that refresh.")
    profile: dict[str, Any] = Field(
        description="Tags and attributes by name (masked identity: name_masked, phone_masked)."
    )
    pii: ClearPii | None = Field(
        None, description="Clear identity, only with ?pii=true and scope customers:pii (audited)."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "customer_id": 1001,
                    "refresh_id": "20261206T020000Z-1a2b3c",
                    "as_of_date": "2026-12-05",
                    "segments": ["renewal_due_30d", "high_value_auto"],
                    "profile": {
                        "name_masked": "王*",
                        "phone_masked": "138****5678",
                        "customer_tier": "gold",
                        "age_band": "35-44",
                    },
                    "pii": None,
                }
            ]
        }
    }


@router.get(
    "/{customer_id}",
    response_model=CustomerProfile,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="A customer's published profile",
)
def get_customer(
    customer_id: CustomerId,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.read"),
    redis_client: RedisDep,
    store: StoreDep,
    source: SourceDep,
    settings: SettingsDep,
    pii: Annotated[
        bool, Query(description="Include clear name, phone and ID number (scope customers:pii; audited).")
    ] = False,
) -> Response:
    """Tags, tier, consents and segments as the platform last published them, with the refresh id and its
    as-of date. A customer outside the caller's organisation or agent is not found."""
    if pii and not caller.principal.has(Scope.CUSTOMERS_PII):
        raise ApiError(403, f"role '{caller.principal.role}' may not read clear PII: it needs scope 'customers:pii'")
    require_visible(source, caller.principal, customer_id)
    try:
        found = read_profile(redis_client, customer_id, prefix=settings.redis_prefix)
    except redis.RedisError as exc:
        raise ApiError(503, f"profile store (Redis) unavailable: {type(exc).__name__}") from None
    if found is None:
        raise ApiError(404, f"customer {customer_id} is not in the published profiles")
    refresh_id, fields = found
    segments = fields.pop("segments", "") or ""
    # Join tokens (phone_token, id_number_token) are pseudonymous identifiers, still personal data: the platform
    # joins on them, no app needs them, so they stay inside.
    fields = {name: value for name, value in fields.items() if not name.endswith("_token")}
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "refresh_id": refresh_id,
        "as_of_date": refresh_as_of(store, refresh_id),
        "segments": [s for s in segments.split(",") if s],
        "profile": fields,
        "pii": None,
    }
    if pii:
        with source.begin() as conn:
            row = conn.execute(
                select(CUSTOMERS.c.name, CUSTOMERS.c.phone, CUSTOMERS.c.id_number).where(CUSTOMERS.c.id == customer_id)
            ).first()
            if row is None:
                raise ApiError(404, f"customer {customer_id} not found in the core systems")
            audit.record(
                conn,
                principal=caller.principal,
                action="customers.read_pii",
                resource=caller.resource,
                customer_id=customer_id,
            )
        body["pii"] = {"name": row.name, "phone": row.phone, "id_number": row.id_number}
    return Response(json.dumps(body, ensure_ascii=False, default=str), media_type="application/json")
