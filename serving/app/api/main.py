"""The API's routers, gathered in one place so main.py only assembles the application."""

from fastapi import APIRouter

from app.api.routes import (
    accounts,
    audit,
    auth,
    campaign_reports,
    campaigns,
    claims,
    complaints,
    consents,
    customer_reads,
    customers,
    erasure,
    health,
    ledger,
    products,
    segments,
    tracking,
    webhooks,
)

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
# Before customers: POST /v1/customers/lookup must not be read as a customer id.
api_router.include_router(customer_reads.router)
api_router.include_router(customers.router)
api_router.include_router(products.router)
api_router.include_router(audit.router)
api_router.include_router(accounts.router)
api_router.include_router(claims.router)
api_router.include_router(consents.router)
api_router.include_router(complaints.router)
api_router.include_router(erasure.router)
api_router.include_router(campaigns.router)
api_router.include_router(segments.router)
# Public with a signature (no bearer token): provider receipts and tracked links.
api_router.include_router(webhooks.router)
api_router.include_router(tracking.router)
api_router.include_router(ledger.router)
api_router.include_router(campaign_reports.router)
