"""`make demo`'s last step: a Superset that fails is reported on its own line after everything else the demo
printed, and the demo exits non-zero. (The whole demo, Superset included, is run by hand: it takes minutes.)"""

from __future__ import annotations

import os
import subprocess
import sys

from mo.config import REPO_ROOT
from mo.oltp.db import make_engine, migrate
from tests.conftest import free_port

# The demo's earlier steps (DAG runs, the serving API, the campaign) stand in as one summary line each: what is
# tested is how the last step's failure is reported beside them. The failure itself is real: the analytics store
# is a PostgreSQL server nobody listens for.
SCRIPT = """
import mo.demo as demo
demo.run_demo = lambda customers, seed, days, progress, **kw: (progress.line("segments published: demo summary"), {})[1]
demo.start_api = lambda settings, progress, port: "http://127.0.0.1:%d" % port
demo.run_campaign = lambda settings, progress, base: progress.line("campaign funnel: demo summary")
demo.main()
"""


def test_a_superset_that_does_not_start_is_reported_after_the_rest_of_the_demo(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
    migrate(engine)  # an empty book: the marts compute, the publish is what fails
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MO_", "SUPERSET_"))}
    env.update(
        {
            "MO_HOME": str(tmp_path),
            "MO_PII_KEY": "test-key",
            "MO_SERVING_DB_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere",
        }
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, "--customers", "10", "--api-port", "20499", "--dashboards-port", "20498"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "segments published: demo summary" in out and "campaign funnel: demo summary" in out
    assert "dashboards: analytics marts published (schema analytics) ... failed" in out
    assert "serving API running at http://127.0.0.1:20499" in out  # what did start is still announced
    assert "Superset running at" not in out
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: Superset did not start: "), run.stderr
    assert "127.0.0.1" in run.stderr and "refused" in run.stderr.lower(), run.stderr  # the analytics store named
    assert not (tmp_path / "superset" / "superset.pid").exists()
