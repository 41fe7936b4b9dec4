"""The API's routers, gathered in one place so main.py only assembles the application."""

from fastapi import APIRouter

from app.api.routes import audit, auth, customers, health

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
api_router.include_router(customers.router)
api_router.include_router(audit.router)

from app.api.routes import complaints, consents, erasure  # noqa: E402

api_router.include_router(consents.router)
api_router.include_router(complaints.router)
api_router.include_router(erasure.router)
