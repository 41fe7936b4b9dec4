"""mo.marts.dbt: vars, command line, failures named by node, docs, and dbt's files kept under MO_HOME."""

from __future__ import annotations

import json
import uuid
from datetime import date
from types import SimpleNamespace

import pytest

from mo.config import REPO_ROOT, Settings
from mo.errors import MoError
from mo.marts.dbt import build_vars, dbt_args, failed_nodes, layer_schemas, run_dbt


def test_build_vars_fixes_the_as_of_date(tmp_path):
    settings = Settings(home=tmp_path)
    assert build_vars(settings, as_of_date=date(2025, 12, 31))["as_of_date"] == "2025-12-31"
    assert build_vars(settings, as_of_date="2025-06-01")["as_of_date"] == "2025-06-01"
    assert date.fromisoformat(build_vars(settings)["as_of_date"])  # today, explicit in the build's vars
    with pytest.raises(MoError, match="31-12-2025"):
        build_vars(settings, as_of_date="31-12-2025")


def test_command_line_points_at_the_project_and_session_target(tmp_path):
    args = dbt_args(Settings(home=tmp_path), ["build", "--select", "fct_claims"], {"as_of_date": "2025-12-31"})
    assert args[:3] == ["build", "--select", "fct_claims"]
    assert args[args.index("--project-dir") + 1] == str(REPO_ROOT / "dbt")
    assert args[args.index("--profiles-dir") + 1] == str(REPO_ROOT / "dbt")
    assert args[args.index("--target") + 1] == "session"
    assert json.loads(args[args.index("--vars") + 1]) == {"as_of_date": "2025-12-31"}
    kept = dbt_args(Settings(home=tmp_path), ["run", "--target", "thrift"], None)
    assert kept.count("--target") == 1 and "--vars" not in kept


def test_failed_nodes_name_the_node_and_drop_the_java_stack():
    result = SimpleNamespace(
        results=[
            SimpleNamespace(status="success", node=SimpleNamespace(unique_id="model.mo.ok"), message="OK"),
            SimpleNamespace(
                status="error",
                node=SimpleNamespace(unique_id="model.mo.fct_claims"),
                message="Runtime Error\n  [PARSE_SYNTAX_ERROR] near 'x'\n\tat org.apache.spark.Foo(Foo.scala:1)",
            ),
            SimpleNamespace(status="fail", node=SimpleNamespace(unique_id="test.mo.unique_x"), message="Got 2 results"),
        ]
    )
    assert failed_nodes(result) == [
        ("model.mo.fct_claims", "Runtime Error [PARSE_SYNTAX_ERROR] near 'x'"),
        ("test.mo.unique_x", "Got 2 results"),
    ]


@pytest.mark.spark
def test_a_failing_model_raises_naming_it(dbt_world, customer_360_build):
    settings, _ = dbt_world
    with pytest.raises(MoError, match=r"model\.mo\.int_claims_sla_measured: .*no_such_column"):
        run_dbt(
            settings,
            ["run", "--select", "int_claims_sla_measured"],
            vars={"as_of_date": "2025-12-31", "claim_review_sla_working_days": "no_such_column"},
        )


@pytest.mark.spark
def test_docs_generate_writes_the_catalog_under_mo_home(dbt_world, customer_360_build):
    settings, spark = dbt_world
    default_catalog = spark.conf.get("spark.sql.defaultCatalog")
    run_dbt(settings, ["docs", "generate", "--select", "path:models/marts/claims", "path:models/marts/customer"])
    target = settings.home / "dbt" / "target"
    catalog = json.loads((target / "catalog.json").read_text())
    assert "model.mo.fct_claims" in catalog["nodes"]
    columns = catalog["nodes"]["model.mo.fct_claims"]["columns"]
    assert "is_review_sla_breached" in {c.lower() for c in columns}
    assert (target / "index.html").exists() and (settings.home / "dbt" / "logs" / "dbt.log").exists()
    # the shared session's default catalog is given back after the run
    assert spark.conf.get("spark.sql.defaultCatalog") == default_catalog


def test_layer_schemas_come_from_the_project():
    assert layer_schemas() == ["staging", "intermediate", "marts"]


@pytest.mark.spark
def test_a_selected_model_builds_on_a_lake_without_the_layer_namespaces(spark, tmp_path):
    """dbt lists every project schema before creating the selected models' ones: on a fresh lake a
    `--select` of one staging model failed on the missing `intermediate` namespace."""
    settings = Settings(home=tmp_path, catalog_name=f"lake_fresh_{uuid.uuid4().hex[:8]}")
    run_dbt(settings, ["run", "--select", "stg_events__events"])
    namespaces = {row[0] for row in spark.sql(f"SHOW NAMESPACES IN {settings.catalog_name}").collect()}
    assert set(layer_schemas()) <= namespaces
    assert spark.table(f"{settings.catalog_name}.staging.stg_events__events").count() == 0
