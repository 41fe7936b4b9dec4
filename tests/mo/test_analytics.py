"""The analytics marts the dashboards read (schemas/serving/analytics.yaml) and the bundle's checks, without a
Superset server: the atomic swap, the platform's figures, refused bundles; and, on the session's dashboards world
(tests/dashboards_world.py: built through build_profiles, so its marts come from dbt in the lake), every figure
against the source, no identity in any table, the same figures published to PostgreSQL."""

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
        "broker": {"reachable": True, "ingest_lag": {"waiting": 5}},
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
    assert metrics["events_waiting"] == 5
    assert problems == report["problems"]


# --- the bundle -------------------------------------------------------------------------------------------------


def test_the_bundle_in_the_repository_passes_its_checks():
    check_bundle(read_bundle())


def test_no_chart_compares_a_boolean_column_with_a_number():
    """SQLite stores booleans as 0/1, PostgreSQL (the stack's analytics store) refuses `boolean = integer`: a chart
    filtering `flag = 1` draws on the embedded default and fails in production."""
    import re

    from mo.serving_store.contract import load_analytics_contract

    booleans = {c.name for t in load_analytics_contract().tables.values() for c in t.columns if c.type == "boolean"}
    wrong = []
    for rel, chart in read_bundle().items():
        if not rel.startswith("charts/"):
            continue
        params = chart.get("params") or {}
        sql = [f.get("sqlExpression") or "" for f in params.get("adhoc_filters") or []]
        sql += [m.get("sqlExpression") or "" for m in params.get("metrics") or [] if isinstance(m, dict)]
        for expression in sql:
            for column in re.findall(r"\b(\w+)\s*(?:=|<>|!=)\s*[01]\b", expression):
                if column in booleans:
                    wrong.append(f"{chart['slice_name']}: {expression}")
    assert wrong == []


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


# --- the marts built by dbt in the lake, on the dashboards world ------------------------------------------------


def _rows(url: str, sql: str, **params) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _one(url: str, sql: str, **params):
    return _rows(url, sql, **params)[0][0]


@pytest.mark.spark
@pytest.mark.slow
def test_claims_marts_equal_the_source_per_organisation_subtree(dashboards_world):
    world = dashboards_world
    subtree = (
        "SELECT COUNT(*) FROM claims c JOIN policies p ON p.id = c.policy_id "
        "JOIN organizations o ON o.id = p.org_id "
        "WHERE c.deleted_at IS NULL AND (:org IS NULL OR o.id = :org OR o.parent_id = :org)"
    )
    open_filter = " AND c.status NOT IN ('paid', 'rejected')"
    branches = [r[0] for r in _rows(world.source_url, "SELECT id FROM organizations WHERE level = 'branch'")]
    expected_open = {b: _one(world.source_url, subtree + open_filter, org=b) for b in branches}
    assert sum(expected_open.values()) > 0
    assert _one(world.analytics_url, "SELECT SUM(claims) FROM claims_sla_daily") == _one(
        world.source_url, subtree, org=None
    )
    for branch, expected in expected_open.items():
        got = _one(
            world.analytics_url,
            "SELECT COALESCE(SUM(open_claims), 0) FROM claims_open WHERE org_path LIKE :p",
            p=f"%/{branch}/%",
        )
        assert got == expected, f"branch {branch}"
    # The daily table's open count agrees with the snapshot's; the SLA date is the build's as-of date.
    assert _one(world.analytics_url, "SELECT SUM(open_claims) FROM claims_sla_daily") == sum(expected_open.values())
    assert _rows(world.analytics_url, "SELECT DISTINCT as_of_date FROM claims_open") == [(world.as_of.isoformat(),)]
    # A claim is at risk or breached, never both.
    totals = _rows(world.analytics_url, "SELECT SUM(open_claims), SUM(at_risk), SUM(breached) FROM claims_open")[0]
    assert totals[1] + totals[2] <= totals[0]


@pytest.mark.spark
@pytest.mark.slow
def test_customer_marts_equal_the_source(dashboards_world):
    world = dashboards_world
    as_of = world.as_of.isoformat()
    live = dict(_rows(world.source_url, "SELECT province, COUNT(*) FROM customers WHERE deleted_at IS NULL GROUP BY 1"))
    # Consent coverage: every channel of every province, opted in by the latest decision up to the as-of date.
    latest = """
        SELECT cu.province, x.channel, SUM(x.status = 'opt_in') FROM customers cu JOIN (
            SELECT customer_id, channel, status, ROW_NUMBER() OVER (
                PARTITION BY customer_id, channel ORDER BY decided_at DESC, updated_at DESC, id DESC) AS n
            FROM consents WHERE deleted_at IS NULL AND DATE(decided_at) <= :d) x
        ON x.customer_id = cu.id AND x.n = 1 WHERE cu.deleted_at IS NULL GROUP BY 1, 2"""
    opted = {(p, ch): n for p, ch, n in _rows(world.source_url, latest, d=as_of)}
    consent = _rows(world.analytics_url, "SELECT province, channel, customers, opted_in FROM customer_consent")
    assert {ch for _, ch, _, _ in consent} == {"app_push", "sms", "wechat", "phone", "email"}
    assert len(consent) == 5 * len(live)
    for province, channel, customers, opted_in in consent:
        assert customers == live[province], (province, channel)
        assert opted_in == opted.get((province, channel), 0), (province, channel)
    # Lines held: the product lines of the policies in force on the as-of date, per province; tiers add up.
    in_force = """
        SELECT cu.province, COALESCE(h.lines, 'none'), COUNT(*) FROM customers cu LEFT JOIN (
            SELECT customer_id, GROUP_CONCAT(line, ',') AS lines FROM (
                SELECT DISTINCT p.customer_id, pr.line FROM policies p JOIN products pr ON pr.id = p.product_id
                WHERE p.deleted_at IS NULL AND p.status = 'in_force' AND p.start_date <= :d AND p.end_date >= :d
                ORDER BY p.customer_id, pr.line) GROUP BY customer_id) h ON h.customer_id = cu.id
        WHERE cu.deleted_at IS NULL GROUP BY 1, 2"""
    expected = {(p, lines): n for p, lines, n in _rows(world.source_url, in_force, d=as_of)}
    got = _rows(world.analytics_url, "SELECT province, lines_held, SUM(customers) FROM customer_lines GROUP BY 1, 2")
    assert {(p, lines): n for p, lines, n in got} == expected
    tiers = _rows(world.analytics_url, "SELECT DISTINCT customer_tier FROM customer_lines")
    assert {t for (t,) in tiers} <= {"platinum", "gold", "silver", "bronze"}
    # Tag distributions: every categorical tag counts every live customer once; gender as in the source.
    per_tag = _rows(world.analytics_url, "SELECT tag_name, SUM(customers) FROM customer_tag_distribution GROUP BY 1")
    assert {n for _, n in per_tag} == {sum(live.values())}
    assert {"gender", "customer_tier", "has_auto", "consent_sms", "engagement_status"} <= {t for t, _ in per_tag}
    genders = _rows(world.source_url, "SELECT gender, COUNT(*) FROM customers WHERE deleted_at IS NULL GROUP BY 1")
    got_genders = _rows(
        world.analytics_url, "SELECT tag_value, customers FROM customer_tag_distribution WHERE tag_name = 'gender'"
    )
    assert sorted(got_genders) == sorted(genders)


@pytest.mark.spark
@pytest.mark.slow
def test_timeline_volume_equals_the_published_timeline(dashboards_world):
    """Events per day and type equal the serving store's timeline (fct_customer_events) over its retention."""
    world = dashboards_world
    serving = f"sqlite:///{world.home / 'serving' / 'serving.db'}"
    counted = _rows(serving, "SELECT event_date, event_type, COUNT(*) FROM customer_events GROUP BY 1, 2")
    timeline = {(str(d), t): n for d, t, n in counted}
    first = min(d for d, _ in timeline)
    volume = _rows(
        world.analytics_url,
        "SELECT event_date, event_type, events, customers FROM customer_event_volume WHERE event_date >= :f",
        f=first,
    )
    assert {(str(d), t): n for d, t, n, _ in volume} == timeline
    assert all(0 < c <= n for _, _, n, c in volume)
    # The simulated day's stream events are in the timeline of the as-of date.
    assert _one(
        world.analytics_url,
        "SELECT SUM(events) FROM customer_event_volume WHERE event_date = :d AND domain IN ('app', 'wechat')",
        d=world.as_of.isoformat(),
    )


@pytest.mark.spark
@pytest.mark.slow
def test_platform_marts_show_the_builds_step_times_and_the_event_lag(dashboards_world, spark):
    world = dashboards_world
    steps = _rows(
        world.analytics_url, "SELECT pipeline, run_id, step, seconds, status FROM platform_steps ORDER BY started_at"
    )
    build = [s for p, r, s, _, _ in steps if p == "build_profiles" and r == "dashboards-world"]
    # publish_dashboards is recorded after its own publish: a later publish (make dashboards) shows it too.
    steps_before_it = ["marts", "models", "segments", "insights", "campaign_results", "analytics_marts", "gate"]
    assert build[:8] == [*steps_before_it, "publish"]
    assert build[8:] in ([], ["publish_dashboards"])
    assert "publish" in [s for p, _, s, _, st in steps if p == "sync" and st == "published"]
    assert {s for p, _, s, _, _ in steps if p == "sync"} >= {"extract", "merge", "gate", "publish"}
    assert all(seconds >= 0 for *_, seconds, _ in steps)
    landed = spark.sql(f"SELECT COUNT(DISTINCT event_id) FROM {world.settings.catalog_name}.bronze.events").first()[0]
    lag = _rows(
        world.analytics_url, "SELECT SUM(events), MIN(avg_lag_seconds), MAX(max_lag_seconds) FROM platform_event_lag"
    )
    assert lag[0][0] == landed > 0 and lag[0][1] >= 0


@pytest.mark.spark
@pytest.mark.slow
def test_no_analytics_table_holds_a_customer_identity(dashboards_world):
    world = dashboards_world
    names = {n for (n,) in _rows(world.source_url, "SELECT name FROM customers")}
    phones = {p for (p,) in _rows(world.source_url, "SELECT phone FROM customers")}
    contract = open_analytics_store(world.settings, url=world.analytics_url)
    tables = list(contract.contract.tables.values())
    contract.dispose()
    for table in tables:
        assert not IDENTITY_COLUMNS & set(table.column_names), table.name
        strings = [c.name for c in table.columns if c.type == "string"]
        for row in _rows(world.analytics_url, f"SELECT {', '.join(strings) or '1'} FROM {table.name}"):
            assert not (set(row) & (names | phones)), f"{table.name}: {row}"
    assert _one(world.analytics_url, "SELECT COUNT(*) FROM customer_consent") > 0


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.postgres
def test_the_marts_publish_to_postgresql_schema_analytics_with_the_same_figures(dashboards_world, spark, postgres_url):
    world = dashboards_world
    status = {"generated_at": "2027-01-01T10:00:00Z", "tables": {}, "events": {}, "outbox": {}, "serving": {},
              "problems": []}  # fmt: skip
    on_postgres = publish_analytics(world.settings, status_report=status, spark=spark, url=postgres_url)
    engine = create_engine(postgres_url)
    with engine.connect() as pg:
        for sql in (
            "SELECT SUM(open_claims), SUM(at_risk), SUM(breached) FROM {s}claims_open",
            "SELECT SUM(claims), SUM(reviewed), SUM(review_working_days), SUM(paid) FROM {s}claims_sla_daily",
            "SELECT SUM(customers), SUM(opted_in) FROM {s}customer_consent",
            "SELECT SUM(customers) FROM {s}customer_lines",
            "SELECT SUM(events) FROM {s}customer_event_volume",
        ):
            got = tuple(pg.execute(text(sql.format(s="analytics."))).one())
            assert got == _rows(world.analytics_url, sql.format(s=""))[0], sql
            assert got[0], sql
        refreshes = pg.execute(text("SELECT status FROM analytics.refreshes")).scalars().all()
        # The serving store's own schema is untouched by the analytics publish.
        serving = pg.execute(
            text("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'serving'")
        ).scalar()
    engine.dispose()
    assert refreshes == ["current"] and serving == 0 and on_postgres.row_counts["claims_open"] > 0
