"""Liveness and readiness probes for the orchestrator (docker compose, Kubernetes).

Liveness says the process answers; readiness says what it needs answers too (the serving store, the core
systems' database, Redis, the broker the outbox relays to), so traffic only reaches an instance that can
serve it, and an operator reads which dependency is down and why.
"""

from __future__ import annotations

import socket
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import Engine, text

from app.api.deps import SettingsDep, StoresDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]

    model_config = {"json_schema_extra": {"examples": [{"status": "ok"}]}}


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"status": "ok", "checks": {"serving_store": "ok", "source": "ok", "redis": "ok", "broker": "ok"}}
            ]
        }
    }


@router.get("/health", response_model=Liveness)
def liveness() -> Liveness:
    return Liveness(status="ok")


def _database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
        return f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _broker(bootstrap: str, timeout: float) -> str:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return "ok"
    except (OSError, ValueError) as exc:
        return f"error: {type(exc).__name__}: broker {bootstrap} unreachable"


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def readiness(request: Request, response: Response, stores: StoresDep, settings: SettingsDep) -> Readiness:
    checks: dict[str, str] = {}
    checks["serving_store"] = _database(stores.store.engine)
    checks["source"] = _database(stores.source)
    try:
        stores.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}: {exc}"
    checks["broker"] = _broker(settings.platform.resolved_kafka_bootstrap, settings.probe_timeout_seconds)
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ok" if ready else "unavailable", checks=checks)
