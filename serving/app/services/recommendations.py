"""Next-best-offer: products for a customer from what the platform publishes, with the reasons.

Inputs: the customer's published profile (risk rating, lines held, age, tier, vehicle), their published
segment memberships (smart segments carry the propensity model's score in their matched clause) and the
product catalogue. Hard rules, never traded off against a score:

- a product's risk level is never above the customer's risk rating (suitability);
- never a line the customer already holds in force (``lines_held``);
- only products on sale with complete catalogue facts (a channel must be able to render them).

Ranking. The platform publishes one propensity model today (``renewal``: will the customer renew), not a
purchase propensity per product line, so lines are ranked by transparent life-stage rules on the profile,
and membership of a smart segment adds its published score as an engagement signal. Each rule that fires
is returned as a reason. Within a line the entry product (lowest base premium) is offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mo.catalogue import within_risk

SCORE = re.compile(r"score ([0-9]+\.[0-9]+)")


@dataclass
class Offer:
    product: dict[str, Any]
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)


def _line_rules(line: str, profile: dict[str, Any]) -> list[tuple[float, str]]:
    age = profile.get("age") or 0
    tier = profile.get("customer_tier")
    fired: list[tuple[float, str]] = []
    if line == "health" and 25 <= age < 65:
        fired.append((2.0, f"age {age}: medical and critical-illness cover matters most between 25 and 64"))
    if line == "accident":
        if age < 25 or age >= 55:
            fired.append((2.0, f"age {age}: accident cover for the young and the over-55s"))
        if profile.get("has_auto"):
            fired.append((1.0, "holds motor cover: driver and passenger accident cover complements it"))
    if line == "life" and 30 <= age < 55:
        fired.append((1.5, f"age {age}: family protection years (30-54)"))
        if tier in ("gold", "platinum"):
            fired.append((1.0, f"{tier} customer: savings-type life products fit the value tier"))
    if line == "property" and tier in ("gold", "platinum", "silver"):
        fired.append((1.0, f"{tier} customer: home and property cover"))
    if line == "auto" and profile.get("vehicle_value_band"):
        fired.append((1.5, "a vehicle is on file but no motor policy is in force"))
    return fired


def recommend(
    profile: dict[str, Any], memberships: list[dict[str, Any]], products: list[dict[str, Any]], *, limit: int
) -> tuple[list[Offer], dict[str, int]]:
    """The best ``limit`` offers, and how many shelf products each hard rule excluded."""
    rating = profile.get("risk_rating") or "R1"
    held = {line for line in (profile.get("lines_held") or "").split(",") if line}
    excluded = {"above_risk_rating": 0, "line_already_held": 0, "not_on_sale": 0, "catalogue_incomplete": 0}
    entry: dict[str, dict[str, Any]] = {}
    for product in products:
        if product["status"] != "on_sale":
            excluded["not_on_sale"] += 1
        elif not product["catalogue_complete"]:
            excluded["catalogue_incomplete"] += 1
        elif product["line"] in held:
            excluded["line_already_held"] += 1
        elif not within_risk(product["risk_level"], rating):
            excluded["above_risk_rating"] += 1
        else:
            best = entry.get(product["line"])
            if best is None or (product["base_premium"], product["product_code"]) < (
                best["base_premium"],
                best["product_code"],
            ):
                entry[product["line"]] = product
    engagement: list[tuple[float, str]] = []
    for member in memberships:
        if member.get("kind") != "smart":
            continue
        for clause in member.get("matched_clauses") or []:
            found = SCORE.search(clause)
            if found:
                engagement.append((float(found.group(1)), f"smart segment {member['segment_id']}: {clause}"))
    offers = []
    for line, product in entry.items():
        offer = Offer(product)
        offer.reasons.append(
            f"risk level {product['risk_level']} within the customer's rating {rating}; "
            f"line {line} not held ({', '.join(sorted(held)) or 'no lines'} held)"
        )
        for weight, reason in _line_rules(line, profile):
            offer.score += weight
            offer.reasons.append(reason)
        for score, reason in engagement:
            offer.score += score
            offer.reasons.append(reason)
        offer.reasons.append(f"entry product of the {line} line (lowest base premium on sale)")
        offers.append(offer)
    offers.sort(key=lambda o: (-o.score, o.product["product_code"]))
    return offers[:limit], excluded
