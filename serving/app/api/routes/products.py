"""The product catalogue (one source for every channel) and premium quotes for a customer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.deps import SourceDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.services.published import source_reads
from app.services.visibility import require_visible
from mo import pricing
from mo.catalogue import age_on, product_facts, product_row, product_rows, within_risk
from mo.oltp.models import Customer, Policy

router = APIRouter(prefix="/v1/products", tags=["products"])
CUSTOMERS = Customer.__table__
POLICIES = Policy.__table__
Line = Literal["auto", "property", "accident", "health", "life"]
LINES = get_args(Line)
ProductCode = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[A-Z0-9][A-Z0-9\-]*$", examples=["AC-TRVL"])]

PRODUCT_EXAMPLE: dict[str, Any] = {
    "product_code": "AC-TRVL",
    "name": "境内外旅行意外保险",
    "line": "accident",
    "risk_level": "R1",
    "status": "on_sale",
    "term_months": 12,
    "base_premium": 60.0,
    "premium_basis": "base premium x cover level",
    "sum_insured": 300000.0,
    "sum_insured_basis": "fixed",
    "coverage_region": "Asia (中国大陆 and Asian countries and regions)",
    "excluded_regions": ["Nepal", "mountaineering above 6,000 m anywhere"],
    "payment_modes": ["single"],
    "requires_dual_recording": False,
    "catalogue_complete": True,
}


class ProductFacts(BaseModel):
    product_code: str
    name: str
    line: str
    risk_level: str = Field(description="R1 (lowest) .. R5; never sold to a customer rated below it.")
    status: str
    term_months: int
    base_premium: float
    premium_basis: str = Field(description="How a premium is computed (mo/pricing.py), in words.")
    sum_insured: float | None = Field(description="Typical sum insured at cover level 1.0 (null: the vehicle's value).")
    sum_insured_basis: str
    coverage_region: str | None = Field(description="Where the cover applies (schemas/products/catalogue.yaml).")
    excluded_regions: list[str] = Field(description="Places or activities not covered; every channel shows them.")
    payment_modes: list[str]
    requires_dual_recording: bool
    catalogue_complete: bool = Field(description="False: the product has no catalogue facts yet (not offered).")

    model_config = ConfigDict(json_schema_extra={"examples": [PRODUCT_EXAMPLE]})


@router.get(
    "",
    response_model=Page[ProductFacts],
    responses=problem_responses(401, 403, 422, 429, 503),
    summary="The product catalogue",
)
def list_products(
    caller: authorized(Scope.PRODUCTS_READ, "products.read"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    line: Annotated[Line | None, Query(description="Only this line.")] = None,
    status: Annotated[Literal["on_sale", "withdrawn"] | None, Query(description="Only this status.")] = None,
) -> Page[ProductFacts]:
    """By product code. Every channel renders these facts as they are: none restates them."""
    if line is not None and line not in LINES:
        raise ApiError(
            422, "unknown product line", kind="validation", errors=[("/query/line", f"one of {', '.join(LINES)}")]
        )
    if status is not None and status not in ("on_sale", "withdrawn"):
        raise ApiError(
            422, "unknown product status", kind="validation", errors=[("/query/status", "on_sale or withdrawn")]
        )
    after = decode_cursor(cursor, arity=1)
    with source_reads(source) as conn:
        rows = product_rows(conn, line=line, status=status, after=_code_cursor(after), limit=limit + 1)
    items = [ProductFacts(**product_facts(r)) for r in rows[:limit]]
    return Page[ProductFacts](
        items=items, next_cursor=encode_cursor([items[-1].product_code]) if len(rows) > limit else None
    )


@router.get(
    "/{product_code}",
    response_model=ProductFacts,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="One product's facts",
)
def get_product(
    product_code: ProductCode, caller: authorized(Scope.PRODUCTS_READ, "products.read"), source: SourceDep
) -> ProductFacts:
    with source_reads(source) as conn:
        row = product_row(conn, product_code)
    if row is None:
        raise ApiError(404, f"product {product_code} not found")
    return ProductFacts(**product_facts(row))


def _code_cursor(after: list[Any] | None) -> str | None:
    if after is None:
        return None
    if not isinstance(after[0], str):
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        )
    return after[0]


class Quote(BaseModel):
    product_code: str
    customer_id: int
    premium: float = Field(description="CNY for one term, from mo.pricing (the rule the core systems' book uses).")
    cover_level: float
    sum_insured: float
    term_months: int
    payment_modes: list[str]
    premium_basis: str
    inputs: dict[str, Any] = Field(description="What the premium was computed from.")
    suitable: bool = Field(description="The product's risk level is within the customer's risk rating.")
    suitability: str
    quoted_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "product_code": "HE-MED",
                    "customer_id": 1001,
                    "premium": 420.0,
                    "cover_level": 1.0,
                    "sum_insured": 3000000.0,
                    "term_months": 12,
                    "payment_modes": ["annual", "monthly"],
                    "premium_basis": (
                        "base premium x cover level x age factor (0.6 at 25, +3.5% a year, between 0.5 and 3.5)"
                    ),
                    "inputs": {"age": 36.2, "renewal_year": 0, "vehicle_value": None},
                    "suitable": True,
                    "suitability": "risk level R2 within the customer's rating R3",
                    "quoted_at": "2026-12-06T09:30:00Z",
                }
            ]
        }
    )


@router.get(
    "/{product_code}/quote",
    response_model=Quote,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
    summary="The premium of a product for a customer",
)
def quote(
    product_code: ProductCode,
    caller: authorized(Scope.CUSTOMERS_READ, "products.quote"),
    source: SourceDep,
    customer_id: Annotated[int, Query(ge=1, le=2**63 - 1, description="The customer quoted for.")],
    cover_level: Annotated[
        float,
        Query(ge=0.5, le=2.0, multiple_of=0.5, description="Multiple of the typical sum insured: 0.5, 1, 1.5, 2."),
    ] = 1.0,
    vehicle_value: Annotated[
        float | None,
        Query(gt=0, le=50_000_000, description="Vehicle-valued motor covers: the vehicle's value (default: on file)."),
    ] = None,
) -> Quote:
    """New-business premium for one term with the customer's age today (core systems), priced by the one shared
    rule. A product above the customer's risk rating is quoted with ``suitable: false`` (it must not be sold);
    a withdrawn product is 409."""
    if cover_level not in pricing.COVER_LEVELS:
        raise ApiError(
            422, "unknown cover level", kind="validation", errors=[("/query/cover_level", "one of 0.5, 1, 1.5, 2")]
        )
    now = datetime.now(UTC)
    with source_reads(source) as conn:
        require_visible(conn, caller.principal, customer_id)
        row = product_row(conn, product_code)
        if row is None:
            raise ApiError(404, f"product {product_code} not found")
        customer = conn.execute(
            select(CUSTOMERS.c.birth_date, CUSTOMERS.c.risk_rating).where(
                CUSTOMERS.c.id == customer_id, CUSTOMERS.c.deleted_at.is_(None)
            )
        ).first()
        if customer is None:
            raise ApiError(404, f"customer {customer_id} not found")
        facts = product_facts(row)
        on_file = None
        if facts["sum_insured_basis"] == "vehicle_value" and vehicle_value is None:
            on_file = conn.execute(
                select(POLICIES.c.vehicle_value)
                .where(POLICIES.c.customer_id == customer_id, POLICIES.c.vehicle_value.is_not(None))
                .order_by(POLICIES.c.start_date.desc(), POLICIES.c.id.desc())
                .limit(1)
            ).scalar()
    if facts["status"] != "on_sale":
        raise ApiError(409, f"product {product_code} is {facts['status']}: it cannot be quoted")
    if not facts["catalogue_complete"]:
        raise ApiError(409, f"product {product_code} has no catalogue facts yet: it cannot be quoted")
    vehicle_valued = facts["sum_insured_basis"] == "vehicle_value"
    value = vehicle_value if vehicle_value is not None else (float(on_file) if on_file is not None else None)
    if vehicle_valued and value is None:
        raise ApiError(
            422,
            f"{product_code} is priced on the vehicle's value and none is on file for customer {customer_id}",
            kind="validation",
            errors=[("/query/vehicle_value", "required for this product")],
        )
    age = age_on(customer.birth_date, now.date())
    amount = pricing.premium(
        line=facts["line"],
        base_premium=facts["base_premium"],
        vehicle_valued=vehicle_valued,
        age=age,
        vehicle_value=value,
        renewal_year=0,
        cover_level=cover_level,
    )
    suitable = within_risk(facts["risk_level"], customer.risk_rating)
    relation = "within" if suitable else "above"
    return Quote(
        product_code=product_code,
        customer_id=customer_id,
        premium=amount,
        cover_level=cover_level,
        sum_insured=pricing.money(value if vehicle_valued else facts["sum_insured"] * cover_level),  # type: ignore[operator]
        term_months=facts["term_months"],
        payment_modes=facts["payment_modes"],
        premium_basis=facts["premium_basis"],
        inputs={"age": round(age, 1), "renewal_year": 0, "vehicle_value": value},
        suitable=suitable,
        suitability=f"risk level {facts['risk_level']} {relation} the customer's rating {customer.risk_rating}",
        quoted_at=now,
    )
