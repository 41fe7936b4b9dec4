"""The dbt project's yml agrees with the contracts in schemas/ (no Spark needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mo.config import REPO_ROOT, SCHEMAS_DIR
from mo.contracts import load_source_contracts
from spark_jobs.lake import silver_columns

DBT = REPO_ROOT / "dbt"
PUBLISHED = ["dim_customer", "fct_customer_events", "fct_policies", "fct_claims", "fct_sales_recordings"]


def models_in(path: Path) -> dict[str, dict]:
    return {m["name"]: m for m in yaml.safe_load(path.read_text())["models"]}


def all_models() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in (DBT / "models").rglob("_*__models.yml"):
        found.update(models_in(path))
    return found


def declared_tests(column: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for test in column.get("data_tests", []):
        if isinstance(test, str):
            out[test] = True
        else:
            (name, spec), *_ = test.items()
            out[name] = spec
    return out


def test_fct_customer_events_yml_matches_the_published_contract():
    contract = yaml.safe_load((SCHEMAS_DIR / "marts" / "fct_customer_events.yaml").read_text())
    model = models_in(DBT / "models" / "marts" / "customer" / "_customer__models.yml")["fct_customer_events"]
    assert model["config"]["contract"]["enforced"] is True
    assert [(c["name"], c["data_type"]) for c in model["columns"]] == [
        (c["name"], c["type"]) for c in contract["columns"]
    ]
    for declared, agreed in zip(model["columns"], contract["columns"], strict=True):
        tests = declared_tests(declared)
        assert ("not_null" in tests) == (not agreed["nullable"]), declared["name"]
        if agreed.get("enum"):
            assert tests["accepted_values"]["arguments"]["values"] == agreed["enum"], declared["name"]
        else:
            assert "accepted_values" not in tests, declared["name"]
    pk = next(c for c in model["columns"] if c["name"] == contract["primary_key"])
    assert {"unique", "not_null"} <= set(declared_tests(pk))


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_marts_enforce_contracts_with_tested_keys(name):
    model = all_models()[name]
    assert model["config"]["contract"]["enforced"] is True
    assert all(c.get("data_type") for c in model["columns"]), f"{name}: a column without data_type"
    key = model["columns"][0]
    assert {"unique", "not_null"} <= set(declared_tests(key)), f"{name}.{key['name']} lacks unique/not_null"
    for column in model["columns"][1:]:
        if column["name"] == "customer_id" and name != "dim_customer":
            assert "relationships" in declared_tests(column), f"{name}.customer_id has no relationships test"


def test_staging_models_expose_exactly_the_silver_columns():
    contracts = load_source_contracts()
    models = models_in(DBT / "models" / "staging" / "silver" / "_silver__models.yml")
    sources = yaml.safe_load((DBT / "models" / "staging" / "silver" / "_silver__sources.yml").read_text())
    assert {t["name"] for t in sources["sources"][0]["tables"]} == set(contracts)
    for table, contract in contracts.items():
        model = models[f"stg_silver__{table}"]
        assert [(c["name"], c["data_type"]) for c in model["columns"]] == silver_columns(contract), table
        sql = (DBT / "models" / "staging" / "silver" / f"stg_silver__{table}.sql").read_text()
        for name, _ in silver_columns(contract):
            assert f"        {name}" in sql, f"stg_silver__{table}.sql does not select {name}"


def test_pii_columns_are_tagged_and_only_tokens_or_masks():
    for name, model in all_models().items():
        for column in model.get("columns", []):
            if "pii" in column.get("tags", []):
                assert column["name"].endswith(("_token", "_masked")), f"{name}.{column['name']}"
                assert column.get("meta", {}).get("classification"), f"{name}.{column['name']} has no classification"


def test_only_staging_reads_sources():
    for sql in (DBT / "models").rglob("*.sql"):
        if "staging" not in sql.relative_to(DBT / "models").parts:
            assert "source(" not in sql.read_text(), f"{sql} calls source(): only staging models may"


def render_target(target: str, env: dict[str, str]) -> dict:
    """A target of profiles.yml with its env_var() calls rendered the way dbt renders them."""
    import jinja2

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise KeyError(name)
        return default

    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string((DBT / "profiles.yml").read_text())
    return yaml.safe_load(text.render(env_var=env_var))["mo"]["outputs"][target]


def test_standalone_target_opens_the_catalog_the_platform_opens(tmp_path):
    """A bare `dbt` call gets the embedded catalog as catalog_conf defines it, init switch included:
    Iceberg creating the SQLite catalog's tables itself leaves a lock that fails other processes' commits."""
    from mo.config import Settings
    from spark_jobs.session import catalog_conf, session_conf

    settings = Settings(home=tmp_path, catalog_name="lake", catalog_type="jdbc", catalog_uri=None, warehouse=None)
    params = {
        k: str(v)
        for k, v in render_target("standalone", {"MO_HOME": str(tmp_path), "MO_SPARK_JARS": "a.jar"})[
            "server_side_parameters"
        ].items()
    }
    expected = catalog_conf(settings)
    assert {k: v for k, v in params.items() if k.startswith("spark.sql.catalog.lake")} == expected
    assert expected["spark.sql.catalog.lake.jdbc.init-catalog-tables"] == "false"
    platform = session_conf(settings)
    for key in ("spark.sql.extensions", "spark.sql.session.timeZone", "spark.driver.extraJavaOptions"):
        assert params[key] == platform[key], key


def test_standalone_target_opens_a_postgres_catalog_as_the_platform_does(tmp_path):
    """With MO_CATALOG_URI on a server, the bare `dbt` call's catalog keys are catalog_conf's too (views
    included, and Iceberg creating the catalog's tables, which only the embedded SQLite file must not)."""
    from mo.config import Settings
    from spark_jobs.session import catalog_conf

    uri = "jdbc:postgresql://catalog-db:5432/iceberg_catalog?user=iceberg"
    env = {"MO_HOME": str(tmp_path), "MO_SPARK_JARS": "a.jar", "MO_CATALOG_URI": uri}
    params = {k: str(v) for k, v in render_target("standalone", env)["server_side_parameters"].items()}
    expected = catalog_conf(Settings(home=tmp_path, catalog_name="lake", catalog_uri=uri))
    expected["spark.sql.catalog.lake.jdbc.init-catalog-tables"] = "true"  # Iceberg's default, written out
    assert {k: v for k, v in params.items() if k.startswith("spark.sql.catalog.lake")} == expected
