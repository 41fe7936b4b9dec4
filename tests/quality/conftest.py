"""Fixtures of the quality tests: contracts and one valid candidate silver frame per table."""

from __future__ import annotations

from typing import Any

import pytest

from mo.contracts import TableContract, load_source_contracts
from tests.quality.silver_frames import make_frame, silver_rows


@pytest.fixture(scope="session")
def contracts() -> dict[str, TableContract]:
    return load_source_contracts()


@pytest.fixture(scope="session")
def valid_rows(contracts) -> dict[str, list[dict[str, Any]]]:
    return {name: silver_rows(contract) for name, contract in contracts.items()}


@pytest.fixture(scope="session")
def valid_frames(spark, contracts, valid_rows):
    """One valid candidate frame per contract table, cached once for the whole run."""
    return {name: make_frame(spark, contracts[name], rows).cache() for name, rows in valid_rows.items()}
