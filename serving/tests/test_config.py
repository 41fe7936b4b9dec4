"""Settings refuse placeholder secrets and missing stores outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import Settings

STRONG_SECRET = "s" * 40
GOOD_DATABASE_URL = "postgresql+psycopg2://serving:a-real-password@postgres:5432/serving"
GOOD_SOURCE_URL = "mysql+pymysql://serving_api:another-password@mariadb:3306/core"


@pytest.fixture(autouse=True)
def _platform_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MO_SOURCE_URL", "MO_SERVING_DB_URL", "MO_REDIS_URL", "MO_PII_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_development_needs_nothing() -> None:
    settings = Settings()
    assert settings.environment == "development"
    assert settings.redis_url is None and settings.database_url is None


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_outside_development_every_missing_piece_is_named(environment: str) -> None:
    with pytest.raises(ValidationError) as failure:
        Settings(environment=environment)
    message = str(failure.value)
    assert f"refusing to start in {environment}" in message
    assert "SERVING_SECRET_KEY is the placeholder" in message
    assert "SERVING_DATABASE_URL is not set" in message
    assert "SERVING_REDIS_URL is not set" in message
    assert "SERVING_SOURCE_URL is not set" in message
    assert "MO_PII_KEY is not set" in message
    assert "MO_CHANNEL_WEBHOOK_SECRET is the provider sandbox's default" in message
    assert "MO_CHANNEL_LINK_SECRET is the provider sandbox's default" in message


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="shorter than 32 characters"):
        Settings(
            environment="production", secret_key="short", database_url=GOOD_DATABASE_URL, redis_url="redis://r:6379/0"
        )


@pytest.mark.parametrize(
    "database_url",
    [
        "postgresql+psycopg2://serving@postgres:5432/serving",
        "postgresql+psycopg2://serving:changethis@postgres:5432/serving",
    ],
)
def test_database_url_without_a_real_password_is_refused(database_url: str) -> None:
    with pytest.raises(ValidationError, match="empty or placeholder password"):
        Settings(
            environment="production", secret_key=STRONG_SECRET, database_url=database_url, redis_url="redis://r:6379/0"
        )


def _channel_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MO_CHANNEL_WEBHOOK_SECRET", "w" * 32)
    monkeypatch.setenv("MO_CHANNEL_LINK_SECRET", "l" * 32)


def test_production_with_everything_set_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MO_PII_KEY", "k" * 32)
    _channel_secrets(monkeypatch)
    settings = Settings(
        environment="production",
        secret_key=STRONG_SECRET,
        database_url=GOOD_DATABASE_URL,
        source_url=GOOD_SOURCE_URL,
        redis_url="redis://r:6379/0",
    )
    assert str(settings.database_url) == GOOD_DATABASE_URL


def test_settings_come_from_serving_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_ENVIRONMENT", "production")
    monkeypatch.setenv("SERVING_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("SERVING_DATABASE_URL", GOOD_DATABASE_URL)
    monkeypatch.setenv("SERVING_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("SERVING_SOURCE_URL", GOOD_SOURCE_URL)
    monkeypatch.setenv("MO_PII_KEY", "k" * 32)
    _channel_secrets(monkeypatch)
    settings = Settings()
    assert settings.environment == "production"
    assert str(settings.redis_url) == "redis://redis:6379/0"
