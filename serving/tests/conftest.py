"""Fixtures for the serving tests: the machine's real Redis and PostgreSQL, and free ports for dead ones."""

from __future__ import annotations

import socket

import pytest

# The machine's services (see the project's environment notes); db 15 keeps clear of other users' keys.
MACHINE_REDIS_URL = "redis://127.0.0.1:6379/15"
MACHINE_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _clean_serving_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; a SERVING_* variable in the caller's shell must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("SERVING_"):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: a store that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
