"""The premium of a product for a customer: one function for the generator's book and the serving API's quote.

A quote shown in the app and the premium the core systems later charge must come from the same rule (seed 000:
a price stated differently on two channels is a defect), so neither side keeps its own copy.

- motor: a vehicle-valued cover (its sum insured is the vehicle's value) costs 800 + 1.8 % of that value,
  otherwise the product's base premium; each renewal year takes 15 % off (no-claim discount, floor 60 %);
- health and life: the base premium times the cover level times an age factor (0.6 at 25, +3.5 % a year,
  between 0.5 and 3.5);
- property and accident: the base premium times the cover level.
"""

from __future__ import annotations

COVER_LEVELS = (0.5, 1.0, 1.5, 2.0)  # multiples of a product's typical sum insured the book sells
AGE_RATED_LINES = frozenset({"health", "life"})


def money(x: float) -> float:
    return round(x, 2)


def age_factor(age: float) -> float:
    return min(max(0.6 + (age - 25) * 0.035, 0.5), 3.5)


def premium(
    *,
    line: str,
    base_premium: float,
    vehicle_valued: bool,
    age: float,
    vehicle_value: float | None = None,
    renewal_year: int = 0,
    cover_level: float = 1.0,
) -> float:
    """The premium in CNY, rounded to the fen."""
    base = float(base_premium)
    if line == "auto":
        if vehicle_valued and vehicle_value:
            base = 800 + vehicle_value * 0.018
        base *= max(0.85**renewal_year, 0.6)  # no-claim discount builds up with each renewal
    elif line in AGE_RATED_LINES:
        base *= cover_level * age_factor(age)
    else:
        base *= cover_level
    return money(base)
