"""DAG integrity: every DAG imports, is thin, and follows the house rules."""

import subprocess
import sys

import pytest

from mo.airflow_local import DAGS_FOLDER

pytestmark = pytest.mark.airflow

APPROVED_TAGS = {"lakehouse", "sync", "events", "profiles", "segments", "campaigns", "quality"}
EXPECTED = {"source_sync", "events_ingest", "build_profiles"}


def test_no_import_errors_and_expected_dags(dagbag):
    assert EXPECTED <= set(dagbag)


def test_tags_are_approved(dagbag):
    for dag_id, dag in dagbag.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert set(dag.tags) <= APPROVED_TAGS, f"{dag_id} has unapproved tags {set(dag.tags) - APPROVED_TAGS}"


def test_every_task_retries_at_least_twice(dagbag):
    for dag_id, dag in dagbag.items():
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


def test_no_catchup_and_documented(dagbag):
    for dag_id, dag in dagbag.items():
        assert dag.catchup is False, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} needs its module docstring as DAG docs"


def test_source_sync_is_extract_merge_gate_publish_reconcile_maintain(dagbag):
    dag = dagbag["source_sync"]
    order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else None
    assert set(dag.task_ids) == {"extract", "merge", "gate", "publish", "reconcile", "maintain"}
    assert dag.get_task("maintain").upstream_task_ids == {"reconcile"}
    assert dag.get_task("reconcile").upstream_task_ids == {"publish"}
    assert dag.get_task("publish").upstream_task_ids == {"gate"}
    assert dag.get_task("gate").upstream_task_ids == {"merge"}
    assert dag.get_task("merge").upstream_task_ids == {"extract"}
    assert order is None or order.index("extract") < order.index("publish")
    assert [o.uri for o in dag.get_task("publish").outlets] == ["iceberg://lake/silver"]


def test_build_profiles_runs_on_published_silver_and_gates_before_publishing(dagbag):
    dag = dagbag["build_profiles"]
    assert set(dag.task_ids) == {
        "due", "dbt_build", "segments", "insights", "campaign_results", "analytics", "gate", "publish",
        "publish_dashboards",
    }  # fmt: skip
    assert dag.get_task("dbt_build").upstream_task_ids == {"due"}
    assert dag.get_task("segments").upstream_task_ids == {"dbt_build"}
    assert dag.get_task("insights").upstream_task_ids == {"segments"}
    assert dag.get_task("campaign_results").upstream_task_ids == {"insights"}
    assert dag.get_task("analytics").upstream_task_ids == {"campaign_results"}
    assert dag.get_task("gate").upstream_task_ids == {"analytics"}
    assert dag.get_task("publish").upstream_task_ids == {"gate"}
    assert dag.get_task("publish_dashboards").upstream_task_ids == {"publish"}
    assert [o.uri for o in dag.get_task("publish_dashboards").outlets] == ["serving://analytics/marts"]
    silver_outlet = dagbag["source_sync"].get_task("publish").outlets[0]
    scheduled_on = {a.uri for a in dag.timetable.asset_condition.objects}
    assert scheduled_on == {silver_outlet.uri}


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS_FOLDER.glob("*.py")))
def test_dag_files_are_thin(dag_file):
    """Parsing a DAG file must not import Spark, pandas or the job modules (the scheduler parses often)."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pyspark', 'pandas', 'great_expectations', 'spark_jobs', 'kafka') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS_FOLDER / dag_file)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([""], []), f"{dag_file} imports {out.stdout.strip()}"
