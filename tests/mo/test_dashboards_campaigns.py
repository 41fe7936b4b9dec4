"""The Campaign operations dashboard: its analytics marts (campaign_funnel, campaign_uplift, campaign_contact_pressure,
built by dbt in the lake and published to schema ``analytics``) against the live views of the core database (the
funnel of mo/campaigns/results.campaign_funnel, the send decision's rolling window counts), and the dashboard in the
machine's Chromium with every chart drawn and the live funnel's figures on screen.

Reads the session's dashboards world and Superset (tests/dashboards_world.py); the screenshot goes to the test's
folder (and to docs/images/dashboards/campaigns.png with MO_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from mo.campaigns.ledger import window_counts
from mo.campaigns.results import Funnel, campaign_funnel
from mo.oltp.campaign_tables import Campaign, LedgerEntry
from tests.dashboards_world import big_number, chart_errors, expect_charts, open_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FUNNEL_FIGURES = ("audience", "decided", "waiting", "sent", "delivered", "failed", "dead_letter", "opened", "clicked",
                  "converted")  # fmt: skip
TITLE = "营销活动运营 Campaign operations"


def _live_funnels(source_url: str) -> dict[int, Funnel]:
    engine = create_engine(source_url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(select(Campaign.__table__.c.id)).scalars().all()
            funnels = {i: campaign_funnel(conn, i) for i in ids}
    finally:
        engine.dispose()
    return {i: f for i, f in funnels.items() if f is not None}


def _published(analytics_url: str, table: str) -> list[dict]:
    engine = create_engine(analytics_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def test_the_campaign_marts_give_the_live_funnel(dashboards_world):
    world = dashboards_world
    live = _live_funnels(world.source_url)
    assert {world.campaigns["first"], world.campaigns["second"]} <= set(live)
    funnel_rows = _published(world.analytics_url, "campaign_funnel")
    uplift = {r["uplift_key"]: r for r in _published(world.analytics_url, "campaign_uplift")}
    for campaign_id, funnel in live.items():
        for period in ("week", "month"):  # a campaign's weeks, and its months, add up to its whole funnel
            rows = [r for r in funnel_rows if r["campaign_id"] == campaign_id and r["period_type"] == period]
            assert {k: sum(r[k] for r in rows) for k in FUNNEL_FIGURES} == {
                k: getattr(funnel, k) for k in FUNNEL_FIGURES
            }, (campaign_id, period)
            by_reason = {k: sum(r[f"suppressed_{k}"] for r in rows) for k in funnel.suppressed}
            assert by_reason == funnel.suppressed and sum(r["suppressed"] for r in rows) == sum(by_reason.values())
            for channel, states in funnel.by_channel.items():
                assert sum(r["sent"] for r in rows if r["channel"] == channel) == states["sent"], channel
        mart, groups = uplift[f"campaign:{campaign_id}"], funnel.uplift
        assert groups is not None
        assert (mart["treated"], mart["holdout"], mart["treated_converted"], mart["holdout_converted"]) == (
            groups.treated, groups.holdout, groups.treated_converted, groups.holdout_converted
        )  # fmt: skip
        assert (mart["difference"], mart["ci_low"], mart["ci_high"]) == pytest.approx(
            (groups.difference, groups.low, groups.high), abs=1e-12
        )
    # per product line: the line's campaigns together (one campaign per line in this world)
    for funnel in live.values():
        line = uplift[f"product_line:{funnel.product_line}"]
        assert line["treated"] == funnel.uplift.treated and line["holdout"] == funnel.uplift.holdout


def _pressure_from_the_ledger(source_url: str, as_of: date) -> dict[date, Counter]:
    """Per day, customers by (marketing sends in the 7 x 24 h before the day's end, the most on one channel),
    counted by the send decision's own window query."""
    engine = create_engine(source_url)
    ledger = LedgerEntry.__table__
    try:
        with engine.connect() as conn:
            sends = conn.execute(
                select(ledger.c.customer_id, ledger.c.decided_at).where(
                    ledger.c.decision == "send", ledger.c.purpose == "marketing"
                )
            ).all()
            customers = sorted({s.customer_id for s in sends})
            first = min(s.decided_at for s in sends).date()
            last = min(max(s.decided_at for s in sends).date() + timedelta(days=7), max(as_of, first))
            found: dict[date, Counter] = {}
            day = first
            while day <= last:
                end = datetime(day.year, day.month, day.day) + timedelta(days=1)
                counts = window_counts(conn, customers, end)
                found[day] = Counter(
                    (sum(w[0] for w in c.values()), max(w[0] for w in c.values()))
                    for c in counts.values()
                    if sum(w[0] for w in c.values())
                )
                day += timedelta(days=1)
    finally:
        engine.dispose()
    return found


def test_contact_pressure_is_the_decisions_rolling_week_beside_its_caps(dashboards_world):
    world = dashboards_world
    rows = _published(world.analytics_url, "campaign_contact_pressure")
    expected = _pressure_from_the_ledger(world.source_url, world.as_of)
    published: dict[date, Counter] = {day: Counter() for day in expected}
    for r in rows:
        day = r["pressure_date"] if isinstance(r["pressure_date"], date) else date.fromisoformat(r["pressure_date"])
        published.setdefault(day, Counter())[(r["touches_7d"], r["busiest_channel_touches_7d"])] += r["customers"]
    assert published == expected
    assert any(k[0] > 1 for c in expected.values() for k in c)  # some customer had more than one message in a week
    settings = world.settings
    assert {(r["cap_7d"], r["cap_channel_7d"], r["cap_30d"]) for r in rows} == {
        (settings.contact_cap_7d, settings.contact_cap_channel_7d, settings.contact_cap_30d)
    }


def test_the_campaign_dashboard_renders_with_the_live_funnels_figures(browser, dashboards, tmp_path):
    live = _live_funnels(dashboards.source_url)
    shot = tmp_path / "campaigns.png"
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "campaign-operations", shot)
    try:
        expect_charts(page, 12)
        assert chart_errors(page) == [] and errors == []
        assert TITLE in page.inner_text("body")
        assert big_number(page, "已发送 Sent") == sum(f.sent for f in live.values()) > 0
        assert big_number(page, "触达对象 Audience") == sum(f.audience for f in live.values())
        assert big_number(page, "已转化 Converted") == sum(f.converted for f in live.values())
        table = page.locator('[data-test-chart-name="各活动与渠道漏斗 Funnel per campaign and channel"]').inner_text()
        assert "CMP-LAKE-1" in table and "CMP-LAKE-2" in table
    finally:
        page.close()


def _native_filter(key: str, column: str, value: str) -> str:
    """A native filter's value in the dashboard URL (rison), as the filter bar would set it."""
    return (
        f"(NATIVE_FILTER-campaign_operations-{key}:(extraFormData:(filters:!((col:{column},op:IN,val:!({value})))),"
        f"filterState:(value:!({value}))))"
    )


def test_the_channel_filter_narrows_the_funnel_and_leaves_the_other_charts_drawn(browser, dashboards, tmp_path):
    live = _live_funnels(dashboards.source_url)
    sms = sum(f.by_channel.get("sms", {}).get("sent", 0) for f in live.values())
    assert 0 < sms < sum(f.sent for f in live.values())
    query = "?native_filters=" + _native_filter("channel", "channel", "sms")
    shot = tmp_path / "campaigns-sms.png"
    page, errors = open_dashboard(browser, dashboards, dashboards.admin, "campaign-operations", shot, query)
    try:
        # the uplift and pressure datasets have no channel column: their charts are drawn unfiltered, not failed
        assert chart_errors(page) == [] and errors == []
        assert big_number(page, "已发送 Sent") == sms
    finally:
        page.close()
