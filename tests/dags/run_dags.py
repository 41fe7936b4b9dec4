"""Run DAGs with dag.test() in a process of their own, configured by its environment alone (``MO_*`` and
Airflow's): ``python -m tests.dags.run_dags DAG[=JSON run conf] ...``. Prints one ``DAG_RUN <json>`` line
per run (state and each task's state) and stops after the first run that does not succeed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mo.airflow_local import configure, run_dag


def main(argv: list[str]) -> int:
    configure(Path(os.environ["AIRFLOW_HOME"]))
    for arg in argv:
        dag_id, _, conf = arg.partition("=")
        result = run_dag(dag_id, run_conf=json.loads(conf) if conf else None)
        print("DAG_RUN " + json.dumps(result), flush=True)
        if result["state"] != "success":
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
