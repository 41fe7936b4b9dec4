"""The campaign results in the lake: campaign rows written by hand into a generated world's source, ingested
(spark_jobs/campaign_sync.py), built by dbt (fct_contact_touches, mart_campaign_results, mart_campaign_uplift),
compared with the live funnel (mo/campaigns/results.campaign_funnel) on the same rows, published to a serving
store and read back through the shared reader. One module-scoped Spark fixture builds everything once."""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from mo.campaigns.results import BEFORE_HOLDOUT, campaign_funnel
from mo.oltp.campaign_tables import Delivery, LedgerEntry
from tests.campaigns.campaign_rows import CUSTOMERS, REASONS, START
from tests.campaigns.campaign_rows import write_campaign_rows as _write_campaign_rows

SILVER_VIEWS = ["stg_silver__policies", "stg_silver__products"]
AS_OF = date(2026, 12, 31)


class _Verdict:
    passed = True
    modes: dict = {}

    def summary(self) -> str:
        return "passed"


def _count_gate(spark, settings, tables, source_counts, scopes=None, pending=None) -> _Verdict:
    """The full GX gate is tested with the sync; this module only needs silver products and policies."""
    for name, count in source_counts.items():
        assert tables[name].count() == count, name
    return _Verdict()


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory: pytest.TempPathFactory):
    """(settings, spark, engine, written): the world synced, then build_profiles' campaign_results task (the
    campaign tables ingested, the marts built), run as the DAG runs it, from the MO_* environment."""
    from mo.config import get_settings
    from mo.generator.world import generate_world
    from mo.marts.dbt import build_vars, run_dbt
    from mo.oltp.db import make_engine, migrate
    from mo.pipelines import profiles_campaign_results
    from spark_jobs.sync import run_sync

    home = tmp_path_factory.mktemp("results_lake")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MO_HOME", str(home))
        env.setenv("MO_CATALOG_NAME", f"lake_res_{uuid.uuid4().hex[:8]}")
        for name in ("MO_SOURCE_URL", "MO_CATALOG_URI", "MO_WAREHOUSE"):
            env.delenv(name, raising=False)
        settings = get_settings()
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)
        generate_world(engine, customers=CUSTOMERS, seed=5)
        written = _write_campaign_rows(engine)
        run_sync(spark, settings, ["products", "policies"], gate=_count_gate)
        # build_profiles' dbt_build made these views before; here only what the campaign marts read
        run_dbt(settings, ["run", "--select", *SILVER_VIEWS], vars=build_vars(settings, as_of_date=AS_OF))
        written["task"] = profiles_campaign_results(AS_OF.isoformat())
    yield settings, spark, engine, written
    engine.dispose()


def _rows(spark, settings, table: str) -> list[dict]:
    return [r.asDict() for r in spark.table(f"{settings.catalog_name}.marts.{table}").collect()]


def test_the_marts_give_the_live_funnels_figures_on_the_same_rows(lake) -> None:
    settings, spark, engine, written = lake
    results = _rows(spark, settings, "mart_campaign_results")
    uplift = {r["uplift_key"]: r for r in _rows(spark, settings, "mart_campaign_uplift")}
    for which in ("first", "second"):
        campaign_id = written[which]
        with engine.connect() as conn:
            funnel = campaign_funnel(conn, campaign_id)
        assert funnel is not None and funnel.uplift is not None
        for period in ("week", "month"):
            rows = [r for r in results if r["campaign_id"] == campaign_id and r["period_type"] == period]
            total = {k: sum(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], int)}
            assert total["audience"] == funnel.audience, (which, period)  # every member was decided here
            assert (total["decided"], total["waiting"]) == (funnel.decided, funnel.waiting)
            assert (total["sent"], total["delivered"], total["failed"], total["dead_letter"]) == (
                funnel.sent, funnel.delivered, funnel.failed, funnel.dead_letter
            )  # fmt: skip
            assert (total["opened"], total["clicked"], total["converted"]) == (
                funnel.opened, funnel.clicked, funnel.converted
            )  # fmt: skip
            suppressed = {k.removeprefix("suppressed_"): v for k, v in total.items() if k.startswith("suppressed_")}
            assert {k: v for k, v in suppressed.items() if v} == funnel.suppressed
            assert total["suppressed"] == sum(funnel.suppressed.values())
            for channel, counts in funnel.by_channel.items():
                assert sum(r["sent"] for r in rows if r["channel"] == channel) == counts["sent"], channel
        mart = uplift[f"campaign:{campaign_id}"]
        live = funnel.uplift
        assert (mart["treated"], mart["treated_converted"], mart["holdout"], mart["holdout_converted"]) == (
            live.treated, live.treated_converted, live.holdout, live.holdout_converted
        )  # fmt: skip
        for mart_name, live_value in (("treated_rate", live.treated_rate), ("holdout_rate", live.holdout_rate),
                                      ("difference", live.difference), ("ci_low", live.low),
                                      ("ci_high", live.high)):  # fmt: skip
            assert mart[mart_name] == pytest.approx(live_value, abs=1e-12), (which, mart_name)
    # the seeded rows exercise every branch: conversions in both groups of the first campaign, every reason
    first = uplift[f"campaign:{written['first']}"]
    assert first["treated_converted"] and first["holdout_converted"]
    with engine.connect() as conn:
        funnel = campaign_funnel(conn, written["first"])
    assert set(funnel.suppressed) == set(REASONS) - {"ok", "quiet_hours", "deferred_then_sent"}
    assert funnel.waiting and funnel.clicked and funnel.failed and funnel.dead_letter
    # per line: the line's campaigns together (one campaign each here)
    line = uplift[f"product_line:{written['line']}"]
    assert (line["treated"], line["holdout"]) == (first["treated"], first["holdout"])


def test_periods_are_iso_weeks_and_calendar_months(lake) -> None:
    settings, spark, _, written = lake
    rows = [r for r in _rows(spark, settings, "mart_campaign_results") if r["campaign_id"] == written["first"]]
    weeks = {(r["period_start"], r["period_label"]) for r in rows if r["period_type"] == "week"}
    months = {(r["period_start"], r["period_label"]) for r in rows if r["period_type"] == "month"}
    assert weeks == {(date(2026, 11, 23), "2026-W48"), (date(2026, 11, 30), "2026-W49")}
    assert months == {(date(2026, 11, 1), "2026-11"), (date(2026, 12, 1), "2026-12")}
    touches = _rows(spark, settings, "fct_contact_touches")
    assert len({t["touch_key"] for t in touches}) == len(touches)
    assert any(t["touch_source"] == "journey" and t["campaign_id"] is None for t in touches)


def test_the_dbt_reasons_are_the_live_views() -> None:
    macro = (Path(__file__).parents[2] / "dbt" / "macros" / "campaign_results.sql").read_text()
    before = re.search(r"campaign_reasons_before_holdout\(\) -%}(.*?){%-", macro, re.S).group(1)
    assert set(re.findall(r"'(\w+)'", before)) == set(BEFORE_HOLDOUT)
    from mo.serving_store.campaign_reports import SUPPRESS_REASONS

    listed = re.search(r"campaign_suppress_reasons\(\) -%}(.*?){%-", macro, re.S).group(1)
    assert re.findall(r"'(\w+)'", listed) == list(SUPPRESS_REASONS)


def test_the_append_only_ingest_appends_only_what_the_lake_lacks(lake) -> None:
    from spark_jobs.campaign_sync import sync_campaign_tables

    settings, spark, engine, written = lake
    with engine.connect() as conn:
        ledger_rows = conn.execute(select(func.count()).select_from(LedgerEntry.__table__)).scalar_one()
    assert written["task"]["synced"]["contact_ledger"] == ledger_rows
    assert written["task"]["synced"]["holdout_assignments"] == 1
    assert {"success", "pass"} <= set(written["task"]["nodes"])  # tag:campaign_results: models built, tests passed
    again = sync_campaign_tables(spark, settings, tables=["contact_ledger", "contact_deliveries"])
    assert again["contact_ledger"]["rows_written"] == 0 and again["contact_deliveries"]["rows_written"] == 0
    with engine.begin() as conn:
        conn.execute(
            insert(Delivery.__table__).values(
                message_id="m-late", ledger_id=1, customer_id=1, state="opened", provider="sandbox", at=START
            )
        )
    # a small look-back still finds the new id; the lake then holds the source's rows exactly once
    third = sync_campaign_tables(spark, settings, tables=["contact_deliveries"], lookback_ids=1)
    assert third["contact_deliveries"]["rows_written"] == 1
    lake_ids = [r[0] for r in spark.table(f"{settings.catalog_name}.silver.contact_deliveries").select("id").collect()]
    assert len(lake_ids) == len(set(lake_ids)) == third["contact_deliveries"]["source_rows"]


def test_published_results_read_back_through_the_shared_reader(lake, tmp_path) -> None:
    from mo.serving_store.campaign_reports import campaign_uplift, line_uplift, results_page
    from mo.serving_store.extract import PublishInputs, campaign_frames, iter_arrow_batches, pin_inputs
    from mo.serving_store.publish import publish_batches
    from mo.serving_store.store import open_store

    settings, spark, _, written = lake
    store = open_store(settings, url=f"sqlite:///{tmp_path / 'serving.db'}")
    try:
        pinned = pin_inputs(spark, PublishInputs.for_catalog(settings.catalog_name), required=())
        frames = campaign_frames(pinned, store.contract)
        publish_batches(store, as_of=date(2026, 12, 31), tables={n: iter_arrow_batches(f) for n, f in frames.items()})
        mart = [r for r in _rows(spark, settings, "mart_campaign_results") if r["period_type"] == "week"]
        with store.read_transaction() as conn:
            seen, after = [], None
            while True:
                page, after = results_page(conn, store, period="week", after=after, limit=4)
                seen += page
                if after is None:
                    break
            one = results_page(conn, store, period="month", campaign_id=written["first"], limit=100)[0]
            narrowed = results_page(
                conn, store, period="week", date_from=date(2026, 11, 30), date_to=date(2026, 11, 30),
                product_line=written["line"], limit=100,
            )[0]  # fmt: skip
            uplift = campaign_uplift(conn, store, written["first"])
            lines = line_uplift(conn, store)
    finally:
        store.dispose()
    assert len(seen) == len(mart) and sum(r["sent"] for r in seen) == sum(r["sent"] for r in mart)
    keys = [(r["period_start"], r["campaign_id"], r["channel"], r["product_line"]) for r in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {r["campaign_id"] for r in one} == {written["first"]} and {r["period"] for r in one} == {"month"}
    assert narrowed and all(r["period_start"] == date(2026, 11, 30) for r in narrowed)
    assert all(r["product_line"] == written["line"] for r in narrowed)
    assert uplift is not None and uplift["scope"] == "campaign" and uplift["ci_low"] <= uplift["difference"]
    assert {u["product_line"] for u in lines} == {written["line"], written["other_line"]}


def test_an_ingest_that_cannot_reconcile_writes_nothing(lake, monkeypatch) -> None:
    import spark_jobs.campaign_sync as campaign_sync

    settings, spark, engine, _ = lake
    with engine.begin() as conn:
        for state in ("delivered", "clicked"):
            conn.execute(
                insert(Delivery.__table__).values(
                    message_id="m-lost", ledger_id=1, customer_id=1, state=state, provider="sandbox", at=START
                )
            )
    target = f"{settings.catalog_name}.silver.contact_deliveries"
    before = spark.table(target).count()
    read = campaign_sync._read
    # a source read that loses a row (as a connection cut mid-read would): the counts cannot agree
    monkeypatch.setattr(campaign_sync, "_read", lambda *a, **k: read(*a, **k).where("state != 'clicked'"))
    with pytest.raises(campaign_sync.CampaignSyncFailed, match="contact_deliveries"):
        campaign_sync.sync_campaign_tables(spark, settings, tables=["contact_deliveries"])
    assert spark.table(target).count() == before
    monkeypatch.setattr(campaign_sync, "_read", read)
    done = campaign_sync.sync_campaign_tables(spark, settings, tables=["contact_deliveries"])
    assert done["contact_deliveries"]["rows_written"] == 2


def test_the_marts_gate_passes_the_built_campaign_marts_and_stops_a_wrong_one(lake) -> None:
    """The invariants quality/marts.py checks hold on what dbt built from every kind of touch and delivery; a mart
    with more delivered than sent, a negative count, or an interval that misses its point fails the gate."""
    from pyspark.sql import functions as F

    from quality.marts import CAMPAIGN_MARTS, run_marts_gate

    settings, spark, _engine, _written = lake
    frames = {name: spark.table(f"{settings.catalog_name}.marts.{name}") for name in CAMPAIGN_MARTS}
    assert all(frame.count() for frame in frames.values())
    clean = run_marts_gate(spark, settings, frames)
    assert clean.passed, clean.summary()

    results, uplift = frames["mart_campaign_results"], frames["mart_campaign_uplift"]
    wrong = {
        "mart_campaign_results": results.withColumn("delivered", F.col("sent") + 1).withColumn(
            "clicked", F.when(F.col("channel") == "sms", F.lit(-1)).otherwise(F.col("clicked"))
        ),
        "mart_campaign_uplift": uplift.withColumn("ci_low", F.col("difference") + 0.01),
    }
    result = run_marts_gate(spark, settings, wrong)
    assert not result.passed
    summary = result.summary()
    assert "marts.mart_campaign_results: delivered <= sent failed" in summary
    assert "marts.mart_campaign_results: clicked >= 0 failed" in summary
    assert "marts.mart_campaign_uplift: ci_low <= difference failed" in summary
    assert "suppressed" not in summary  # only what was broken is named
