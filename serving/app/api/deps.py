"""Request dependencies: the clients the lifespan created, typed for route signatures."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request
from sqlalchemy import Engine

from app.core.config import Settings


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> redis.Redis:
    return request.app.state.redis


def get_engine(request: Request) -> Engine | None:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
EngineDep = Annotated[Engine | None, Depends(get_engine)]
