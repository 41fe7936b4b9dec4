"""Liveness and readiness probes for the orchestrator (docker compose, Kubernetes).

Liveness says the process answers; readiness says the stores it needs answer too, so traffic is
only routed to an instance that can serve it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import EngineDep, RedisDep

router = APIRouter(prefix="/health", tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


@router.get("", response_model=Liveness)
def liveness() -> Liveness:
    return Liveness(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def readiness(response: Response, redis_client: RedisDep, engine: EngineDep) -> Readiness:
    checks: dict[str, str] = {}
    try:
        redis_client.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
        checks["redis"] = f"error: {type(exc).__name__}: {exc}"
    if engine is None:
        checks["database"] = "not configured"
    else:
        try:
            with engine.connect() as connection:
                connection.execute(text("select 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    ready = all(not value.startswith("error") for value in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ok" if ready else "unavailable", checks=checks)
