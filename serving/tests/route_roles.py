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
CAMPAIGN_READERS = frozenset({"marketer", "approver", "analyst", "reviewer"})  # campaigns:read
CAMPAIGN_WRITERS = frozenset({"marketer"})  # campaigns:write
CAMPAIGN_APPROVERS = frozenset({"approver"})  # campaigns:approve
SEGMENT_READERS = frozenset({"marketer", "approver", "analyst"})  # segments:read
SEGMENT_WRITERS = frozenset({"marketer"})  # segments:write
SEGMENT_EXPORTERS = frozenset({"marketer"})  # segments:export

# Not here, by design: POST /v1/webhooks/{provider} and GET /v1/t/{token} take no bearer token (a provider's
# signature, a signed link token); test_route_roles lists them as public, test_webhooks tests their refusals.
EXPECTED: dict[str, frozenset[str]] = {
    "GET /v1/customers/{customer_id}": CUSTOMER_READERS,
    "GET /v1/audit": ADMINS,
    # Accounts: admins only.
    "POST /v1/accounts/users": ADMINS,
    "GET /v1/accounts/users": ADMINS,
    "POST /v1/accounts/users/{username}/{action}": ADMINS,
    "POST /v1/accounts/clients": ADMINS,
    "GET /v1/accounts/clients": ADMINS,
    "POST /v1/accounts/clients/{client_id}/{action}": ADMINS,
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
    # campaigns: marketers draft and run them, approvers approve (four eyes), analysts and reviewers read
    "POST /v1/campaigns": CAMPAIGN_WRITERS,
    "GET /v1/campaigns": CAMPAIGN_READERS,
    "GET /v1/campaigns/{campaign_id}": CAMPAIGN_READERS,
    "PATCH /v1/campaigns/{campaign_id}": CAMPAIGN_WRITERS,
    "POST /v1/campaigns/{campaign_id}/submit": CAMPAIGN_WRITERS,
    "POST /v1/campaigns/{campaign_id}/approve": CAMPAIGN_APPROVERS,
    "POST /v1/campaigns/{campaign_id}/reject": CAMPAIGN_APPROVERS,
    "POST /v1/campaigns/{campaign_id}/schedule": CAMPAIGN_WRITERS,
    "POST /v1/campaigns/{campaign_id}/pause": CAMPAIGN_WRITERS,
    "POST /v1/campaigns/{campaign_id}/resume": CAMPAIGN_WRITERS,
    "POST /v1/campaigns/{campaign_id}/cancel": CAMPAIGN_WRITERS,
    "GET /v1/campaigns/{campaign_id}/preview": CAMPAIGN_READERS,
    "GET /v1/campaigns/{campaign_id}/funnel": CAMPAIGN_READERS,
    # segments for marketers (scopes segments:read / write / export)
    "POST /v1/segments": SEGMENT_WRITERS,
    "GET /v1/segments": SEGMENT_READERS,
    "GET /v1/segments/{segment_id}": SEGMENT_READERS,
    "POST /v1/segments/{segment_id}/versions": SEGMENT_WRITERS,
    "POST /v1/segments/{segment_id}/archive": SEGMENT_WRITERS,
    "POST /v1/segments/preview": SEGMENT_READERS,
    "POST /v1/segments/{segment_id}/upload": SEGMENT_WRITERS,
    "GET /v1/segments/{segment_id}/members": SEGMENT_EXPORTERS,
    # the contact ledger: touches (scope campaigns:read), the regulator's evidence export (contact:evidence)
    "GET /v1/customers/{customer_id}/touches": frozenset({"marketer", "approver", "analyst", "reviewer"}),
    "GET /v1/contact-ledger/evidence": frozenset({"reviewer"}),
    # the lake's campaign results (published marts): weekly and monthly reports, one campaign per period
    "GET /v1/reports/campaigns": CAMPAIGN_READERS,
    "GET /v1/campaigns/{campaign_id}/results": CAMPAIGN_READERS,
}
