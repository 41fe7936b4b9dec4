"""Roles and the scopes each one holds: the one table authorisation is decided from.

A token carries its holder's role; its scopes are those of the role here (the built-in issuer writes
them into the token; for an external OpenID Connect provider they are derived from its role claim, so
the provider decides who someone is and this table decides what that role may do).

Least privilege: clear PII only for roles that talk to the customer (service agents); claims are moved
only by claims handlers; the audit log and accounts only by admins, who read no customer data.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    CUSTOMERS_READ = "customers:read"  # profiles (masked), timeline, segments, policies, recommendations
    CUSTOMERS_PII = "customers:pii"  # clear name, phone, ID number (audited)
    PRODUCTS_READ = "products:read"
    CLAIMS_SUBMIT = "claims:submit"  # first notice of loss, documents, for a customer
    CLAIMS_READ = "claims:read"
    CLAIMS_HANDLE = "claims:handle"  # move claims through their states, see claims at risk
    CONSENTS_READ = "consents:read"
    CONSENTS_WRITE = "consents:write"
    COMPLAINTS_WRITE = "complaints:write"  # file a complaint
    COMPLAINTS_HANDLE = "complaints:handle"  # assign, resolve
    ERASURE = "erasure:write"
    SEGMENTS_READ = "segments:read"  # definitions, versions, previews
    SEGMENTS_WRITE = "segments:write"  # create, edit, archive, upload static lists
    SEGMENTS_EXPORT = "segments:export"  # members, masked (audited)
    CAMPAIGNS_READ = "campaigns:read"  # campaigns, previews, funnels, reports
    CAMPAIGNS_WRITE = "campaigns:write"  # draft, edit, submit, schedule, pause, resume, cancel
    CAMPAIGNS_APPROVE = "campaigns:approve"  # approve or reject another person's campaign (four eyes)
    CONTACT_EVIDENCE = "contact:evidence"  # the ledger's evidence export for a regulator (audited)
    AUDIT_READ = "audit:read"
    ACCOUNTS_ADMIN = "accounts:admin"


class Role(StrEnum):
    APP = "app"
    SERVICE_AGENT = "service_agent"
    CLAIMS_HANDLER = "claims_handler"
    MARKETER = "marketer"
    APPROVER = "approver"
    ANALYST = "analyst"
    REVIEWER = "reviewer"
    ADMIN = "admin"


S = Scope
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    # The customer-facing apps' backends, acting for the customer they serve.
    Role.APP: frozenset(
        {
            S.CUSTOMERS_READ,
            S.PRODUCTS_READ,
            S.CLAIMS_SUBMIT,
            S.CLAIMS_READ,
            S.CONSENTS_READ,
            S.CONSENTS_WRITE,
            S.COMPLAINTS_WRITE,
        }
    ),
    Role.SERVICE_AGENT: frozenset(
        {
            S.CUSTOMERS_READ,
            S.CUSTOMERS_PII,
            S.PRODUCTS_READ,
            S.CLAIMS_SUBMIT,
            S.CLAIMS_READ,
            S.CONSENTS_READ,
            S.CONSENTS_WRITE,
            S.COMPLAINTS_WRITE,
            S.COMPLAINTS_HANDLE,
        }
    ),
    Role.CLAIMS_HANDLER: frozenset({S.CUSTOMERS_READ, S.PRODUCTS_READ, S.CLAIMS_READ, S.CLAIMS_HANDLE}),
    Role.MARKETER: frozenset(
        {
            S.CUSTOMERS_READ,
            S.PRODUCTS_READ,
            S.SEGMENTS_READ,
            S.SEGMENTS_WRITE,
            S.SEGMENTS_EXPORT,
            S.CAMPAIGNS_READ,
            S.CAMPAIGNS_WRITE,
        }
    ),
    Role.APPROVER: frozenset(
        {S.CUSTOMERS_READ, S.PRODUCTS_READ, S.SEGMENTS_READ, S.CAMPAIGNS_READ, S.CAMPAIGNS_APPROVE}
    ),
    Role.ANALYST: frozenset({S.PRODUCTS_READ, S.SEGMENTS_READ, S.CAMPAIGNS_READ}),
    # Compliance review: claims and sales-recording QC, and the contact ledger's evidence for a regulator.
    Role.REVIEWER: frozenset({S.CUSTOMERS_READ, S.PRODUCTS_READ, S.CLAIMS_READ, S.CAMPAIGNS_READ, S.CONTACT_EVIDENCE}),
    Role.ADMIN: frozenset({S.AUDIT_READ, S.ACCOUNTS_ADMIN, S.ERASURE, S.PRODUCTS_READ}),
}


def scopes_of(role: str) -> frozenset[Scope]:
    try:
        return ROLE_SCOPES[Role(role)]
    except ValueError:
        return frozenset()
