"""The serving store's SQLAlchemy engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


def make_engine(url: str, *, connect_timeout_seconds: float) -> Engine:
    """An engine that checks pooled connections before use, so a restarted database costs one retry, not errors."""
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, int(connect_timeout_seconds))},
    )
