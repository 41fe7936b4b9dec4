"""The analytics marts the dashboards read (schemas/serving/analytics.yaml) and the bundle's checks, without a
Superset server: figures against the source, no identity in any table, the atomic swap, refused bundles."""

from __future__ import annotations

import copy
import os
import subprocess
import zipfile
from io import BytesIO

import pytest
from sqlalchemy import create_engine, text

from mo.analytics import analytics_url, open_analytics_store, publish_analytics
from mo.config import REPO_ROOT
from mo.dashboards import DashboardError, analytics_connection, check_bundle, read_bundle, render_steps
from mo.generator.world import generate_world
from mo.oltp.db import make_engine, migrate

# Column names that would carry a customer's identity; no analytics table may have one.
IDENTITY_COLUMNS = {"customer_id", "name", "name_masked", "phone", "phone_masked", "phone_token", "id_number",
                    "id_number_token", "wechat_openid", "app_user_id", "birth_date", "claim_no",
                    "policy_no"}  # fmt: skip


@pytest.fixture
def world(settings):
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    generate_world(engine, customers=300, seed=7, batch_size=300)
    engine.dispose()
    return settings


def _analytics(settings):
    return create_engine(analytics_url(settings))


def _source(settings):
    return create_engine(settings.resolved_source_url)


def test_claims_marts_equal_the_source_per_organisation_subtree(world):
    result = publish_analytics(world, with_lake=False)
    assert result.row_counts["claims_sla_daily"] > 0
    with _source(world).connect() as src:
        branches = src.execute(text("SELECT id FROM organizations WHERE level = 'branch'")).scalars().all()
        subtree = (
            "SELECT COUNT(*) FROM claims c JOIN policies p ON p.id = c.policy_id "
            "JOIN organizations o ON o.id = p.org_id "
            "WHERE c.deleted_at IS NULL AND (:org IS NULL OR o.id = :org OR o.parent_id = :org)"
        )
        open_filter = " AND c.status NOT IN ('paid', 'rejected')"
        expected_all = src.execute(text(subtree), {"org": None}).scalar()
        expected_open = {b: src.execute(text(subtree + open_filter), {"org": b}).scalar() for b in branches}
    with _analytics(world).connect() as mart:
        assert mart.execute(text("SELECT SUM(claims) FROM claims_sla_daily")).scalar() == expected_all
        for branch, expected in expected_open.items():
            got = mart.execute(
                text("SELECT COALESCE(SUM(open_claims), 0) FROM claims_open WHERE org_path LIKE :p"),
                {"p": f"%/{branch}/%"},
            ).scalar()
            assert got == expected, f"branch {branch}"
        # The daily table's open count agrees with the snapshot's.
        assert mart.execute(text("SELECT SUM(open_claims) FROM claims_sla_daily")).scalar() == sum(
            expected_open.values()
        )


def test_no_analytics_table_holds_a_customer_identity(world):
    publish_analytics(world, with_lake=False)
    store = open_analytics_store(world)
    with _source(world).connect() as src:
        names = set(src.execute(text("SELECT name FROM customers")).scalars())
        phones = set(src.execute(text("SELECT phone FROM customers")).scalars())
    with _analytics(world).connect() as mart:
        for table in store.contract.tables.values():
            assert not IDENTITY_COLUMNS & set(table.column_names), table.name
            strings = [c.name for c in table.columns if c.type == "string"]
            for row in mart.execute(text(f"SELECT {', '.join(strings) or '1'} FROM {table.name}")):
                assert not (set(row) & (names | phones)), f"{table.name}: {row}"
    store.dispose()


def test_a_second_publish_swaps_every_view_at_once_and_keeps_the_audit(world):
    first = publish_analytics(world, with_lake=False)
    second = publish_analytics(world, with_lake=False)
    assert second.previous_refresh_id == first.refresh_id
    assert second.row_counts == first.row_counts
    store = open_analytics_store(world)
    statuses = {r["refresh_id"]: r["status"] for r in store.refreshes()}
    assert statuses == {first.refresh_id: "superseded", second.refresh_id: "current"}
    with store.engine.connect() as conn:
        for table in store.contract.tables:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = :n"), {"n": table})
            assert f"{table}__r{second.refresh_id}" in sql.scalar(), table
    store.dispose()


def test_platform_health_comes_from_the_status_report(world):
    report = {
        "generated_at": "2026-12-01T10:00:00Z",
        "tables": {
            "claims": {
                "source": 10,
                "bronze": 10,
                "silver": 10,
                "in_sync": True,
                "last_sync_at": "2026-12-01T08:00:00",
                "last_run": {"status": "published"},
            },
            "policies": {
                "source": 5,
                "bronze": 5,
                "silver": 4,
                "in_sync": False,
                "last_sync_at": "2026-12-01T04:00:00",
                "last_run": {"status": "gate_failed"},
            },
        },  # fmt: skip
        "events": {"events": 1234, "dead_letter": 3},
        "outbox": {"pending": 2, "lag_seconds": 7.5},
        "serving": {"refresh": None},
        "problems": ["policies: the last sync stopped at the quality gate"],
    }
    publish_analytics(world, status_report=report, with_lake=False)
    with _analytics(world).connect() as mart:
        rows = {r.table_name: r for r in mart.execute(text("SELECT * FROM platform_tables"))}
        metrics = dict(mart.execute(text("SELECT metric, value FROM platform_metrics")).all())
        problems = mart.execute(text("SELECT problem FROM platform_problems")).scalars().all()
    assert rows["claims"].gate_status == "passed" and rows["claims"].sync_age_hours == 2.0
    assert rows["policies"].gate_status == "failed" and not rows["policies"].in_sync
    assert metrics["dead_letters"] == 3 and metrics["events_landed"] == 1234 and metrics["tables_out_of_sync"] == 1
    assert problems == report["problems"]


# --- the bundle -------------------------------------------------------------------------------------------------


def test_the_bundle_in_the_repository_passes_its_checks():
    check_bundle(read_bundle())


def test_a_chart_naming_a_missing_column_is_refused_with_the_charts_name():
    files = copy.deepcopy(read_bundle())
    rel = "charts/Open_claims_by_status_and_age.yaml"
    files[rel]["params"]["groupby"] = ["age_bucket"]
    with pytest.raises(DashboardError) as caught:
        check_bundle(files)
    assert f"chart '按状态与账龄的未结案件 Open claims by status and age' ({rel}): column age_bucket" in str(
        caught.value
    )


def test_a_dataset_column_the_contract_no_longer_has_is_refused():
    files = read_bundle()
    # The contract drops a column the bundle's dataset still lists (a mart changed under the dashboards).
    contract = {
        f["table_name"]: [c["column_name"] for c in f["columns"]] for r, f in files.items() if r.startswith("datasets/")
    }
    contract["claims_open"].remove("age_band")
    with pytest.raises(DashboardError, match="dataset claims_open .*column age_band is not in the analytics contract"):
        check_bundle(files, contract)


def test_a_native_filter_on_a_missing_column_is_refused_with_the_dashboard_and_filter():
    files = copy.deepcopy(read_bundle())
    filters = files["dashboards/Claims_service.yaml"]["metadata"]["native_filter_configuration"]
    org = next(f for f in filters if f["name"] == "机构 Organisation")
    org["targets"][0]["column"]["name"] = "region"
    with pytest.raises(DashboardError) as caught:
        check_bundle(files)
    assert (
        "dashboard '理赔服务 Claims service' filter '机构 Organisation': column region is not a column of dataset "
        "claims_sla_daily" in str(caught.value)
    )


def test_a_chart_of_a_dataset_missing_from_the_bundle_is_refused():
    files = copy.deepcopy(read_bundle())
    del files["datasets/Analytics/platform_problems.yaml"]
    with pytest.raises(DashboardError, match=r"chart '问题清单 Problems' \(charts/Problems.yaml\): its dataset"):
        check_bundle(files)


def test_the_rendered_bundle_never_carries_the_database_password():
    connection = analytics_connection("postgresql+psycopg://mo:s3cret-pw@db.internal:5432/mo")
    assert connection.password == "s3cret-pw" and "s3cret" not in connection.uri
    assert connection.uri.startswith("postgresql+psycopg2://mo:XXXXXXXXXX@db.internal")
    for _, archive, passwords in render_steps(read_bundle(), connection):
        with zipfile.ZipFile(BytesIO(archive)) as zf:
            assert not any(b"s3cret" in zf.read(n) for n in zf.namelist())
        assert passwords == {"bundle/databases/Analytics.yaml": "s3cret-pw"}


SUPERSET_PYTHON = REPO_ROOT / "dashboards" / ".venv" / "bin" / "python"


def test_superset_refuses_to_start_without_a_secret_key_outside_development(tmp_path):
    assert SUPERSET_PYTHON.exists(), "Superset's environment is missing: run `make dashboards-env` (make test does)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPERSET_", "MO_"))}
    env.update({"SUPERSET_ENVIRONMENT": "production", "MO_HOME": str(tmp_path)})
    config = REPO_ROOT / "dashboards" / "superset_config.py"
    run = subprocess.run(
        [str(SUPERSET_PYTHON), "-c", f"import runpy; runpy.run_path({str(config)!r})"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: SUPERSET_SECRET_KEY is not set (environment 'production'); Superset refuses to start"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_the_marts_publish_to_postgresql_schema_analytics_with_the_same_figures(world, postgres_url):
    on_sqlite = publish_analytics(world, with_lake=False)
    on_postgres = publish_analytics(world, with_lake=False, url=postgres_url)
    assert on_postgres.row_counts == on_sqlite.row_counts
    engine = create_engine(postgres_url)
    with engine.connect() as pg, _analytics(world).connect() as lite:
        for sql in (
            "SELECT SUM(open_claims), SUM(at_risk), SUM(breached) FROM {s}claims_open",
            "SELECT SUM(claims), SUM(reviewed), SUM(review_working_days), SUM(paid) FROM {s}claims_sla_daily",
            "SELECT SUM(customers), SUM(opted_in) FROM {s}customer_consent",
        ):
            assert tuple(pg.execute(text(sql.format(s="analytics."))).one()) == tuple(
                lite.execute(text(sql.format(s=""))).one()
            ), sql
        status = pg.execute(text("SELECT status FROM analytics.refreshes")).scalars().all()
        # The serving store's own schema is untouched by the analytics publish.
        serving = pg.execute(
            text("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'serving'")
        ).scalar()
    engine.dispose()
    assert status == ["current"] and serving == 0
