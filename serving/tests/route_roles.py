"""The route x role matrix: each route and exactly the roles allowed to call it (the rest get 401/403).

h/serving-int builds the test that enforces it over every route of the app; each branch adds its rows.
"""

from __future__ import annotations

ALL_ROLES = frozenset(
    {"app", "service_agent", "claims_handler", "marketer", "approver", "analyst", "reviewer", "admin"}
)
CUSTOMER_READERS = frozenset({"app", "service_agent", "claims_handler", "marketer", "approver", "reviewer"})

EXPECTED: dict[str, frozenset[str]] = {
    # customer reads (scope customers:read)
    "POST /v1/customers/lookup": CUSTOMER_READERS,
    "GET /v1/customers/{customer_id}/timeline": CUSTOMER_READERS,
    "GET /v1/customers/{customer_id}/segments": CUSTOMER_READERS,
    "GET /v1/customers/{customer_id}/policies": CUSTOMER_READERS,
    "GET /v1/customers/{customer_id}/recommendations": CUSTOMER_READERS,
    # the catalogue (scope products:read: every role)
    "GET /v1/products": ALL_ROLES,
    "GET /v1/products/{product_code}": ALL_ROLES,
    # a quote reads the customer's age and rating (scope customers:read)
    "GET /v1/products/{product_code}/quote": CUSTOMER_READERS,
}
