"""The API's routers, gathered in one place so main.py only assembles the application."""

from fastapi import APIRouter

from app.api.routes import audit, auth, claims, complaints, consents, customers, erasure, health

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
api_router.include_router(customers.router)
api_router.include_router(audit.router)
api_router.include_router(claims.router)
api_router.include_router(consents.router)
api_router.include_router(complaints.router)
api_router.include_router(erasure.router)
