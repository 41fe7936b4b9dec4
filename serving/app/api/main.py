"""The API's routers, gathered in one place so main.py only assembles the application."""

from fastapi import APIRouter

from app.api.routes import health

api_router = APIRouter()
api_router.include_router(health.router)
