"""The serving application: `uvicorn app.main:app` (``make serve``).

Stores (the core systems' database, the serving store, Redis) are opened in the lifespan, once per
process, and closed on shutdown; routes receive them through the dependencies in app/api/deps.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import ValidationError

from app.api.main import api_router
from app.api.openapi import install_openapi
from app.core.config import Settings, get_settings
from app.core.context import configure_logging
from app.core.errors import install_handlers
from app.core.middleware import OutboxCollector, RequestContext
from app.core.security import TokenVerifier
from app.core.stores import open_stores
from app.services import audit

log = logging.getLogger("app")

DESCRIPTION = """
The middle office's front door for apps and staff: customer profiles, timelines and segments as the
platform publishes them, and the transactional flows (claims, consent, complaints, erasure) written to the
core systems with a transactional outbox.

* Authenticate at `POST /v1/auth/token` (OAuth2: `password` for staff, `client_credentials` for apps) and
  send `Authorization: Bearer <token>`.
* Every POST that writes takes an `Idempotency-Key` header: a retry returns the first answer.
* Errors are RFC 9457 `application/problem+json` with an `errors` list of `{field, message}` (JSON pointers).
* Lists are cursor-paginated: `?limit=&cursor=`, answered with `items` and `next_cursor`.
* Every response carries `X-Request-ID`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings, the server reads the environment."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.verifier = TokenVerifier(settings)
        app.state.stores = open_stores(settings)
        try:
            yield
        finally:
            app.state.stores.close()

    app = FastAPI(
        title=settings.project_name,
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "auth", "description": "Access tokens"},
            {"name": "customers", "description": "Published profiles and customer reads"},
            {"name": "products", "description": "The product catalogue every channel renders from, and quotes"},
            {"name": "audit", "description": "The append-only audit log (admins)"},
            {"name": "health", "description": "Probes and metrics"},
        ],
    )

    def audit_refusal(scope: dict[str, Any], status: int) -> None:
        state = scope.get("state", {})
        try:
            audit.record_alone(
                app.state.stores.source,
                principal=state.get("principal"),
                action=state.get("action") or "request",
                resource=f"{scope['method']} {scope['path']}",
                status=status,
                detail=_problem_detail(state),
            )
        except Exception:  # the refusal stands; a missing audit row is an operator's alert, not a 500
            log.exception("could not audit a refused request")

    install_handlers(app)
    app.include_router(api_router)
    install_openapi(app)

    # Gauges read from the stores at scrape time, in a registry of this app's own (several apps in one
    # process, as in tests, must not collide in the global one).
    store_metrics = CollectorRegistry()
    store_metrics.register(OutboxCollector(lambda: app.state.stores.source))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(
            generate_latest(_metrics_registry()) + generate_latest(store_metrics), media_type=CONTENT_TYPE_LATEST
        )

    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        audit_refusal=audit_refusal,
    )
    return app


def _metrics_registry() -> CollectorRegistry:
    """This process's metrics; with several workers (PROMETHEUS_MULTIPROC_DIR set before start) every
    worker's, added up from the files they write there, whichever worker answers the scrape."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _problem_detail(state: dict[str, Any]) -> str | None:
    problem = state.get("problem")
    if problem is None:
        return None
    fields = ", ".join(e.field for e in problem.errors)
    return f"{problem.detail}" + (f" [{fields}]" if fields else "")


def serve_app() -> FastAPI:
    """The process's app; a configuration problem stops it with one line naming each bad setting."""
    configure_logging()
    try:
        settings = get_settings()
    except ValidationError as exc:
        reasons = "; ".join(
            str(e.get("ctx", {}).get("error") or e["msg"]).removeprefix("Value error, ") for e in exc.errors()
        )
        raise SystemExit(f"serving: {reasons}") from None
    return create_app(settings)


app = serve_app()
