"""The route x role matrix: each route and the roles allowed to call it (every other role gets 401/403).

h/serving-int builds the test that enforces it; each feature adds its rows.
"""

from __future__ import annotations

EXPECTED: dict[str, set[str]] = {
    # claims (scopes claims:submit, claims:read, claims:handle)
    "POST /v1/claims": {"app", "service_agent"},
    "GET /v1/claims": {"app", "service_agent", "claims_handler", "reviewer"},
    "GET /v1/claims/at-risk": {"claims_handler"},
    "GET /v1/claims/{claim_no}": {"app", "service_agent", "claims_handler", "reviewer"},
    "POST /v1/claims/{claim_no}/transitions": {"claims_handler"},
    "POST /v1/claims/{claim_no}/documents": {"app", "service_agent"},
    "GET /v1/claims/{claim_no}/documents": {"app", "service_agent", "claims_handler", "reviewer"},
}
