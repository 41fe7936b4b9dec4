"""Settings of the serving API: one object, read from the environment once at start.

Two families of variables, so that one deployment configures the platform and the API alike:

- ``SERVING_*``: what only the API has (its environment, token signing, OpenID Connect, limits) and the
  API's own logins to the stores, which are least-privileged (read-only on the serving store, writes
  on the core tables it owns).
- ``MO_*``: the platform's settings (``mo.config.Settings``), read for what both sides must agree on:
  ``MO_HOME`` for the embedded defaults, ``MO_PII_KEY`` (one tokenisation key, or lookups by phone would
  never find what the platform tokenised), ``MO_REDIS_PREFIX`` and the Kafka bootstrap.

Development needs nothing set: the source and the serving store are the SQLite files under ``MO_HOME``
that ``make demo`` fills, and Redis is the platform's embedded server on the same data file. Any other
environment must name every store and carry real secrets, so a forgotten variable stops the service at
start with one line instead of serving with a guessable key.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mo.config import Settings as PlatformSettings

PLACEHOLDER_SECRET = "changethis"
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVING_", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    project_name: str = "middle-office serving"

    # Signs the access tokens the built-in issuer hands out (HS256).
    secret_key: str = PLACEHOLDER_SECRET
    token_issuer: str = "middle-office"
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Trust an external OpenID Connect provider instead of the built-in issuer: its JWKS URL, issuer and
    # audience; the role and the organisation come from these claims of its tokens.
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "role"
    oidc_org_claim: str = "org_id"

    # Stores. None: the platform's setting (MO_SERVING_DB_URL, MO_SOURCE_URL, MO_REDIS_URL), else its default.
    database_url: str | None = None  # the serving store the platform publishes to (read-only login)
    source_url: str | None = None  # the core systems' database the API writes claims, consents, ... to
    redis_url: str | None = None

    # Seconds a readiness probe waits for each store before calling it down; also the Redis socket timeout.
    probe_timeout_seconds: float = Field(default=2.0, gt=0)
    # Every statement the API runs on a database stops after this long.
    statement_timeout_seconds: float = Field(default=5.0, gt=0)

    # Login lockout (seed 000: lock after repeated failures).
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    # Requests per minute per client or user unless the account says otherwise.
    rate_limit_per_minute: int = Field(default=1200, ge=1)

    # Input limits.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_page_size: int = Field(default=100, ge=1)
    # Claim documents, content-addressed by SHA-256 (a shared volume when several hosts serve). None: MO_HOME/documents.
    document_dir: str | None = None

    @cached_property
    def platform(self) -> PlatformSettings:
        return PlatformSettings()

    @property
    def resolved_source_url(self) -> str:
        return self.source_url or self.platform.resolved_source_url

    @property
    def resolved_database_url(self) -> str | None:
        """None: the platform's embedded SQLite store (mo.serving_store.open_store resolves it)."""
        return self.database_url or self.platform.serving_db_url

    @property
    def resolved_redis_url(self) -> str | None:
        """None: the platform's embedded Redis under MO_HOME (development only)."""
        return self.redis_url or self.platform.redis_url

    @property
    def resolved_document_dir(self) -> Path:
        return Path(self.document_dir) if self.document_dir else self.platform.home / "documents"

    @property
    def redis_prefix(self) -> str:
        return self.platform.redis_prefix

    @property
    def uses_oidc(self) -> bool:
        return self.oidc_jwks_url is not None

    @model_validator(mode="after")
    def _refuse_defaults_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        problems = []
        if self.secret_key == PLACEHOLDER_SECRET:
            problems.append("SERVING_SECRET_KEY is the placeholder 'changethis'")
        elif len(self.secret_key) < MIN_SECRET_LENGTH:
            problems.append(f"SERVING_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
        for name, url in (
            ("SERVING_DATABASE_URL", self.resolved_database_url),
            ("SERVING_SOURCE_URL", self.source_url or self.platform.source_url),
        ):
            if url is None:
                problems.append(f"{name} is not set")
            elif not url.startswith("sqlite") and (urlsplit(url).password or "") in {"", PLACEHOLDER_SECRET}:
                problems.append(f"{name} has an empty or placeholder password")
        if self.resolved_redis_url is None:
            problems.append("SERVING_REDIS_URL is not set (the embedded Redis is for development only)")
        if not self.platform.pii_key or len(self.platform.pii_key) < MIN_SECRET_LENGTH:
            problems.append(f"MO_PII_KEY is not set or shorter than {MIN_SECRET_LENGTH} characters")
        # The API verifies provider receipts and tracked links with these: the sandbox's public defaults would let
        # anyone forge a delivery receipt or a click.
        for field_name in ("channel_webhook_secret", "channel_link_secret"):
            if getattr(self.platform, field_name) == PlatformSettings.model_fields[field_name].default:
                problems.append(f"MO_{field_name.upper()} is the provider sandbox's default")
        if self.oidc_jwks_url and not (self.oidc_issuer and self.oidc_audience):
            problems.append("SERVING_OIDC_JWKS_URL needs SERVING_OIDC_ISSUER and SERVING_OIDC_AUDIENCE")
        if problems:
            raise ValueError(f"refusing to start in {self.environment}: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once: the service is configured at start, never mid-flight."""
    return Settings()
