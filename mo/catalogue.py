"""The product catalogue every channel renders from, and quotes priced by the one shared pricing rule.

Each fact has one source (seed 000: a coverage region or a price stated differently on two channels is a
defect): name, line, risk level, base premium, term and status from the core systems' ``products`` table;
coverage region, excluded regions, typical sum insured and payment modes from schemas/products/catalogue.yaml;
the premium of a quote from mo.pricing, the function the generator's book is priced with. A product on the
shelf without catalogue facts is served with ``catalogue_complete: false`` rather than with invented facts.

Shared by the serving API (product reads, quotes, recommendations, campaign checks and previews) and the
campaign dispatcher (the facts a message states): one copy of each query.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, select

from mo import pricing
from mo.config import SCHEMAS_DIR
from mo.oltp.models import Product

PRODUCTS = Product.__table__
CATALOGUE_PATH = SCHEMAS_DIR / "products" / "catalogue.yaml"
RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")


@cache
def catalogue(path: Path = CATALOGUE_PATH) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["products"]


def premium_basis(line: str, vehicle_valued: bool) -> str:
    """The pricing rule of mo.pricing in words, per line (what a channel shows next to a price)."""
    if line == "auto":
        first = "800 + 1.8% of the vehicle's value" if vehicle_valued else "the base premium"
        return f"{first}; 15% no-claim discount per renewal year, down to 60%"
    if line in pricing.AGE_RATED_LINES:
        return "base premium x cover level x age factor (0.6 at 25, +3.5% a year, between 0.5 and 3.5)"
    return "base premium x cover level"


def product_facts(row: Any) -> dict[str, Any]:
    facts = catalogue().get(row.product_code)
    sum_insured = facts.get("sum_insured") if facts else None
    vehicle_valued = sum_insured == "vehicle_value"
    return {
        "product_code": row.product_code,
        "name": row.name,
        "line": row.line,
        "risk_level": row.risk_level,
        "status": row.status,
        "term_months": row.term_months,
        "base_premium": float(row.base_premium),
        "premium_basis": premium_basis(row.line, vehicle_valued),
        "sum_insured": None if vehicle_valued or sum_insured is None else float(sum_insured),
        "sum_insured_basis": "vehicle_value" if vehicle_valued else "fixed",
        "coverage_region": facts.get("coverage_region") if facts else None,
        "excluded_regions": list(facts.get("excluded_regions") or []) if facts else [],
        "payment_modes": list(facts.get("payment_modes") or []) if facts else [],
        "requires_dual_recording": bool(row.requires_dual_recording),
        "catalogue_complete": facts is not None,
    }


def product_rows(
    conn: Connection, *, line: str | None = None, status: str | None = None, after: str | None = None, limit: int = 100
) -> list[Any]:
    query = select(PRODUCTS).where(PRODUCTS.c.deleted_at.is_(None)).order_by(PRODUCTS.c.product_code).limit(limit)
    if line is not None:
        query = query.where(PRODUCTS.c.line == line)
    if status is not None:
        query = query.where(PRODUCTS.c.status == status)
    if after is not None:
        query = query.where(PRODUCTS.c.product_code > after)
    return list(conn.execute(query).all())


def product_row(conn: Connection, code: str) -> Any | None:
    return conn.execute(
        select(PRODUCTS).where(PRODUCTS.c.product_code == code, PRODUCTS.c.deleted_at.is_(None))
    ).first()


def age_on(birth_date: date, day: date) -> float:
    return (day - birth_date).days / 365.25


def within_risk(product_level: str, customer_rating: str) -> bool:
    """Suitability: a product's risk level never above the customer's risk rating (R1 cautious .. R5). An
    unknown level or rating is never suitable."""
    if product_level not in RISK_LEVELS or customer_rating not in RISK_LEVELS:
        return False
    return RISK_LEVELS.index(product_level) <= RISK_LEVELS.index(customer_rating)
