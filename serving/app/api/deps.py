"""Request dependencies: the stores, the caller and what the caller may do.

A route states the scope it needs and the action it performs in one dependency::

    caller: Annotated[Caller, Authorize(Scope.CLAIMS_SUBMIT, "claims.submit")]

which authenticates the bearer token (401), checks the scope (403), applies the caller's rate limit (429)
and records who and what on the request, so a refused write is audited with the same names.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from sqlalchemy import Engine

from app.core.config import Settings
from app.core.context import actor_var
from app.core.errors import ApiError
from app.core.roles import Scope
from app.core.security import InvalidToken, Principal, TokenVerifier
from app.core.stores import Stores
from mo.serving_store.store import SqlServingStore

log = logging.getLogger("app.auth")


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_stores(request: Request) -> Stores:
    return request.app.state.stores


async def get_redis(request: Request) -> redis.Redis:
    return request.app.state.stores.redis


async def get_source(request: Request) -> Engine:
    return request.app.state.stores.source


async def get_store(request: Request) -> SqlServingStore:
    return request.app.state.stores.store


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoresDep = Annotated[Stores, Depends(get_stores)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SourceDep = Annotated[Engine, Depends(get_source)]
StoreDep = Annotated[SqlServingStore, Depends(get_store)]

BEARER = {"WWW-Authenticate": 'Bearer realm="middle-office"'}


@dataclass(frozen=True)
class Caller:
    principal: Principal
    action: str
    resource: str  # method and path, as audited

    @property
    def subject(self) -> str:
        return self.principal.subject


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "no bearer token: send 'Authorization: Bearer <token>'", headers=BEARER)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "the Authorization header is not 'Bearer <token>'", headers=BEARER)
    if len(token) > 4096:
        raise ApiError(401, "the bearer token is too long", headers=BEARER)
    return token.strip()


def authenticate(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return verifier.verify(_bearer(request))
    except InvalidToken as exc:
        raise ApiError(401, f"invalid token: {exc}", headers=BEARER) from None


def rate_limit(request: Request, principal: Principal) -> None:
    """A fixed one-minute window per caller in Redis; over the limit: 429 with Retry-After. If Redis does not
    answer, the request goes on (the limit protects the service; it must not take it down with Redis)."""
    settings: Settings = request.app.state.settings
    limit = principal.rate_limit_per_minute or settings.rate_limit_per_minute
    now = time.time()
    window = int(now // 60)
    key = f"{settings.redis_prefix}:ratelimit:{principal.subject}:{window}"
    try:
        pipe = request.app.state.stores.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except redis.RedisError as exc:
        log.warning("rate limit not applied: Redis unavailable (%s)", type(exc).__name__)
        return
    if count > limit:
        retry_after = max(1, int(60 - now % 60) + 1)
        raise ApiError(
            429,
            f"rate limit of {limit} requests per minute exceeded; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class Authorize:
    """Dependency: the caller holds ``scope``; the route performs ``action`` (a name for the audit log)."""

    def __init__(self, scope: Scope | None, action: str) -> None:
        self.scope = scope
        self.action = action

    def __call__(self, request: Request) -> Caller:
        request.state.action = self.action
        principal = authenticate(request)
        request.state.principal = principal
        actor_var.set(principal.subject)
        if self.scope is not None and not principal.has(self.scope):
            raise ApiError(403, f"role '{principal.role}' may not do this: it needs scope '{self.scope}'")
        rate_limit(request, principal)
        return Caller(principal=principal, action=self.action, resource=f"{request.method} {request.url.path}")


def authorized(scope: Scope | None, action: str) -> type[Caller]:
    """``caller: authorized(Scope.X, "x.y")`` as a route parameter annotation."""
    return Annotated[Caller, Depends(Authorize(scope, action))]  # type: ignore[return-value]
