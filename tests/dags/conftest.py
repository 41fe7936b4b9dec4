"""Airflow reads its configuration on first import: point it at a private home before any test imports it."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

from mo.airflow_local import configure

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mo-airflow-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
configure(_AIRFLOW_HOME)


@pytest.fixture(scope="session")
def dagbag():
    from mo.airflow_local import load_dags

    return load_dags()
