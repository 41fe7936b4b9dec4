"""The route x role matrix: which roles may call each route of the API.

``EXPECTED["METHOD /path"]`` is the set of roles allowed (the path as the app declares it, with its
``{parameters}``). tests/test_route_roles.py enumerates every route of the app and holds each one to its
row: a route missing here fails the test, an allowed role never gets 401/403, every other role gets exactly
403 and a request without a token 401. Add a row with every route you add.
"""

from __future__ import annotations

# Roles by what they do, to keep rows readable; every row still lists its roles explicitly through these.
ALL_ROLES = frozenset(
    {"app", "service_agent", "claims_handler", "marketer", "approver", "analyst", "reviewer", "admin"}
)
CUSTOMER_READERS = frozenset({"app", "service_agent", "claims_handler", "marketer", "approver", "reviewer"})
ADMINS = frozenset({"admin"})
CLAIM_FILERS = frozenset({"app", "service_agent"})  # claims:submit
CLAIM_READERS = frozenset({"app", "service_agent", "claims_handler", "reviewer"})  # claims:read
CLAIM_HANDLERS = frozenset({"claims_handler"})  # claims:handle

EXPECTED: dict[str, frozenset[str]] = {
    "GET /v1/customers/{customer_id}": CUSTOMER_READERS,
    "GET /v1/audit": ADMINS,
    # Consent, contact preferences, complaints (the customer's own channels and the service agents).
    "POST /v1/customers/{customer_id}/consents": frozenset({"app", "service_agent"}),
    "GET /v1/customers/{customer_id}/consents": frozenset({"app", "service_agent"}),
    "POST /v1/customers/{customer_id}/contact-preferences": frozenset({"app", "service_agent"}),
    "POST /v1/complaints": frozenset({"app", "service_agent"}),
    "GET /v1/complaints": frozenset({"app", "service_agent"}),
    "GET /v1/complaints/{complaint_no}": frozenset({"app", "service_agent"}),
    "POST /v1/complaints/{complaint_no}/assign": frozenset({"service_agent"}),
    "POST /v1/complaints/{complaint_no}/resolve": frozenset({"service_agent"}),
    # Erasure: admins only, who read no customer data.
    "POST /v1/customers/{customer_id}/erasure": ADMINS,
    "POST /v1/claims": CLAIM_FILERS,
    "GET /v1/claims": CLAIM_READERS,
    "GET /v1/claims/at-risk": CLAIM_HANDLERS,
    "GET /v1/claims/{claim_no}": CLAIM_READERS,
    "POST /v1/claims/{claim_no}/transitions": CLAIM_HANDLERS,
    "POST /v1/claims/{claim_no}/documents": CLAIM_FILERS,
    "GET /v1/claims/{claim_no}/documents": CLAIM_READERS,
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
    # the contact ledger: touches (scope campaigns:read), the regulator's evidence export (contact:evidence)
    "GET /v1/customers/{customer_id}/touches": frozenset({"marketer", "approver", "analyst", "reviewer"}),
    "GET /v1/contact-ledger/evidence": frozenset({"reviewer"}),
}
