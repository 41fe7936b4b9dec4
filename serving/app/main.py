"""The serving application: `uvicorn app.main:app`.

Clients (Redis, the serving store's engine) are created in the lifespan, once per process, and
closed on shutdown; routes receive them through the dependencies in app/api/deps.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.main import api_router
from app.core.cache import close_redis, connect_redis
from app.core.config import Settings, get_settings
from app.core.db import make_engine


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings, the server reads the environment."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.redis = connect_redis(settings)
        app.state.engine = (
            make_engine(str(settings.database_url), connect_timeout_seconds=settings.probe_timeout_seconds)
            if settings.database_url is not None
            else None
        )
        try:
            yield
        finally:
            if app.state.engine is not None:
                app.state.engine.dispose()
            close_redis(app.state.redis)

    app = FastAPI(title=settings.project_name, lifespan=lifespan)
    app.include_router(api_router)
    return app


app = create_app()
