"""Run the project's DAGs through Airflow in this process, on a private SQLite metadata database.

Used by `make demo` and the DAG tests. Airflow reads its configuration when first imported, so
`configure()` must run before anything imports airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mo.config import REPO_ROOT
from mo.errors import MoError

DAGS_FOLDER = REPO_ROOT / "dags"


def airflow_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def configure(home: Path) -> None:
    """Point Airflow at `home` and create its metadata database once."""
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        raise MoError("airflow was imported before its home was configured")
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(home))
    if not (home / "airflow.db").exists():
        airflow = Path(sys.executable).parent / "airflow"
        result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise MoError(f"airflow db migrate failed: {tail[0] if tail else result.returncode}")


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        raise MoError(f"DAG import error in {first[0]}: {first[1].strip().splitlines()[-1]}")
    return bag.dags


def run_dag(dag_id: str, run_conf: dict | None = None) -> dict[str, Any]:
    """Run one whole DAG with dag.test(); returns the run state and each task's state."""
    dag = load_dags()[dag_id]
    dag_run = dag.test(run_conf=run_conf)
    tasks = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return {"dag_id": dag_id, "state": str(dag_run.state), "tasks": tasks}
