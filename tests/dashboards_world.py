"""The one world every dashboard test reads, built once per test session (tests/conftest.py: ``dashboards_world``
and ``dashboards``).

A generated world in the embedded defaults (SQLite source, Iceberg catalog under its own MO_HOME) with campaign
rows written by hand (tests/campaigns/campaign_rows.py), one simulated day whose events reach bronze as the ingest
writes them, synced to silver through the real quality gate, then ``build_profiles`` in-process on the tests'
shared SparkSession: marts, segments, insights, campaign results, the analytics marts, the gate, the serving
store and the dashboards' publish (schema ``analytics``). ``make dashboards`` then serves Superset over it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

WORLD_CUSTOMERS = 2000
WORLD_SEED = 7
# The generator's default start (2026-01-01): the history ends on 2025-12-31 and one simulated day makes the
# world's "today" 2026-01-01, in the past, as a real source's latest day is (the claims SLA's "today").
CAMPAIGN_START = datetime(2025, 11, 27, 9, 0, 0)  # a Thursday: the touches run into the next ISO week and month
PII_KEY = "test-key"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "images" / "dashboards"
# Settings the session's other tests may have exported that would point this world elsewhere.
FOREIGN_SETTINGS = ("MO_SOURCE_URL", "MO_CATALOG_URI", "MO_WAREHOUSE", "MO_SERVING_DB_URL", "MO_REDIS_URL",
                    "MO_SPARK_MASTER")  # fmt: skip


@dataclass
class DashboardsWorld:
    home: Path
    settings: Any
    env: dict[str, str]  # what a process of this world gets (MO_HOME, catalog, key), without other MO_/SUPERSET_
    as_of: date
    campaigns: dict[str, Any]
    build: dict[str, Any] = field(default_factory=dict)  # build_profiles' report

    @property
    def source_url(self) -> str:
        return f"sqlite:///{self.home / 'source.db'}"

    @property
    def analytics_url(self) -> str:
        return f"sqlite:///{self.home / 'serving' / 'analytics.db'}"


def _write_events(spark, settings, events: list[dict]) -> None:
    """The day's events appended to bronze.events the way the ingest job writes them."""
    from mo.events.contracts import topic_for
    from spark_jobs.events_ingest import EVENTS_COLUMNS, _append, ensure_tables, event_row

    ensure_tables(spark, settings)
    now = datetime.now(UTC)
    batch = uuid.uuid4().hex[:16]
    rows = [event_row(e, topic_for(settings, e["event_type"]), 0, i, "dashboards-world", batch, now)
            for i, e in enumerate(events)]  # fmt: skip
    _append(spark, settings, "bronze.events", rows, EVENTS_COLUMNS)


def fill_source(engine, customers: int = WORLD_CUSTOMERS, seed: int = WORLD_SEED) -> tuple[date, dict, list[dict]]:
    """A generated world in the (migrated) source ``engine`` with the hand-written campaign rows and one simulated
    day; returns its as-of date, the campaigns and the day's events (for :func:`load_lake`). Shared by this world
    and the dashboards benchmark (bench/bench_dashboards.py)."""
    from sqlalchemy import select

    from mo.generator.advance import advance_day
    from mo.generator.world import generate_world
    from mo.oltp.db import migrate
    from mo.oltp.models import WorldClock
    from tests.campaigns.campaign_rows import write_campaign_rows

    migrate(engine)
    generate_world(engine, customers=customers, seed=seed)
    campaigns = write_campaign_rows(engine, CAMPAIGN_START)
    events: list[dict] = []
    advance_day(engine, emit=events.append)
    with engine.connect() as conn:
        as_of = conn.execute(select(WorldClock.current_date)).scalar_one()
    return as_of, campaigns, events


def load_lake(spark, settings, events: list[dict]) -> None:
    """The day's events into bronze as the ingest writes them, then the source synced to silver (quality gate)."""
    from spark_jobs.sync import run_sync

    _write_events(spark, settings, events)
    run_sync(spark, settings)


def build_dashboards_world(spark, home: Path) -> DashboardsWorld:
    from mo.config import get_settings
    from mo.oltp.db import make_engine
    from mo.profiles import build_profiles
    from spark_jobs.session import get_spark
    from tests.conftest import free_port

    catalog = f"lake_dash_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MO_", "SUPERSET_"))}
    env.update({"MO_HOME": str(home), "MO_CATALOG_NAME": catalog, "MO_PII_KEY": PII_KEY})
    env["MO_LAKE_SQL_PORT"] = str(free_port())  # the lake's SQL endpoint `make dashboards` starts over this world
    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN_SETTINGS:
            patch.delenv(name, raising=False)
        for name in ("MO_HOME", "MO_CATALOG_NAME", "MO_PII_KEY", "MO_LAKE_SQL_PORT"):
            patch.setenv(name, env[name])
        settings = get_settings()
        engine = make_engine(settings.resolved_source_url)
        try:
            as_of, campaigns, events = fill_source(engine)
        finally:
            engine.dispose()
        session = get_spark(settings)
        assert session is spark  # the tests' one session, with this world's catalog registered
        load_lake(spark, settings, events)
        world = DashboardsWorld(home, settings, env, as_of, campaigns)
        world.build = build_profiles(settings, as_of, run_id="dashboards-world")
    (home / "world.json").write_text(json.dumps({"as_of": as_of.isoformat(), "catalog": catalog}))
    return world


def source_open_claims(source_url: str, org_id: int | None) -> int:
    """Open claims straight from the source: the policy's organisation is ``org_id`` or one of its children."""
    from sqlalchemy import create_engine, text

    engine = create_engine(source_url)
    with engine.connect() as conn:
        count = conn.execute(
            text(
                "SELECT COUNT(*) FROM claims c JOIN policies p ON p.id = c.policy_id "
                "JOIN organizations o ON o.id = p.org_id WHERE c.deleted_at IS NULL "
                "AND c.status NOT IN ('paid', 'rejected') AND (:org IS NULL OR o.id = :org OR o.parent_id = :org)"
            ),
            {"org": org_id},
        ).scalar()
    engine.dispose()
    return int(count)


ANALYST_PASSWORD = "analyst-test-pw"
MARKETER_PASSWORD = "marketer-test-pw"


class Dashboards:
    """Superset as `make dashboards` left it over the dashboards world, with its admin and two test accounts."""

    def __init__(self, world: DashboardsWorld, port: int, branch: tuple[int, str], branches: list[str]):
        self.world = world
        self.home = world.home
        self.url = f"http://127.0.0.1:{port}"
        self.env = world.env
        self.branch_id, self.branch_name = branch
        self.other_branches = [b for b in branches if b != self.branch_name]
        creds = json.loads((self.home / "superset-demo-credentials.json").read_text())["admin"]
        self.admin = (creds["username"], creds["password"])
        self.source_url = world.source_url
        self.analytics_url = world.analytics_url
        self.analyst = ("analyst_branch", ANALYST_PASSWORD)
        self.marketer = ("marketer", MARKETER_PASSWORD)
        self.head_analyst = ("analyst_head", ANALYST_PASSWORD)  # head office: the whole company, and the lake

    def client(self, user: tuple[str, str] | None = None):
        from mo.dashboards import Superset

        return Superset(self.url, *(user or self.admin))


def start_dashboards(world: DashboardsWorld, port: int, scratch: Path) -> Dashboards:
    """`make dashboards` over the world (publishes the analytics marts, sets Superset up, serves it), with an
    analyst of the branch with the most open claims (fewer than the whole company's) and a marketer."""
    import subprocess

    from sqlalchemy import create_engine, text

    from mo.config import REPO_ROOT

    engine = create_engine(world.source_url)
    with engine.connect() as conn:
        branches = conn.execute(text("SELECT id, name FROM organizations WHERE level = 'branch'")).all()
    engine.dispose()
    branch = max(branches, key=lambda b: source_open_claims(world.source_url, b.id))
    users = scratch / "users.jsonl"
    accounts = [
        {"username": "analyst_branch", "role": "analyst", "org": branch.id, "password": ANALYST_PASSWORD},
        {"username": "marketer", "role": "marketer", "org": None, "password": MARKETER_PASSWORD},
        {"username": "analyst_head", "role": "analyst", "org": None, "password": ANALYST_PASSWORD},
    ]
    users.write_text("".join(json.dumps(a) + "\n" for a in accounts))
    run = subprocess.run(
        ["make", "--no-print-directory", "dashboards", f"DASHBOARDS_PORT={port}", f"DASHBOARDS_USERS={users}"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=world.env, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"Superset: http://127.0.0.1:{port}/dashboard/list/" in run.stdout
    return Dashboards(world, port, (branch.id, branch.name), [b.name for b in branches])


def stop_dashboards(dashboards: Dashboards) -> None:
    import subprocess

    from mo.config import REPO_ROOT

    stop = subprocess.run(
        ["make", "--no-print-directory", "dashboards-stop"], cwd=REPO_ROOT, capture_output=True, text=True,
        env=dashboards.env, timeout=120,
    )  # fmt: skip
    # the world has a lake, so `make dashboards` also started the lake's SQL endpoint
    assert stop.stdout.split() == ["Superset", "stopped", "lake", "SQL", "server", "stopped"], stop.stdout + stop.stderr


# --- in the browser (the session `browser` fixture: the machine's Chromium through Playwright) -------------


DRAWN = """() => {
    const slots = [...document.querySelectorAll('[data-test-chart-name]')];
    return slots.length > 0
        && document.querySelectorAll('[data-test="loading-indicator"], .loading').length === 0
        && slots.every(s => s.querySelector('canvas, svg, table, .header-line, [role="alert"]'));
}"""


ECHARTS_ANIMATION_MS = 1500


def expect_charts(page, count: int) -> None:
    """The dashboard shows ``count`` chart slots (waits, like every Playwright expectation, through a re-render)."""
    from playwright.sync_api import expect

    expect(page.locator("[data-test-chart-name]")).to_have_count(count, timeout=60_000)


def log_in(page, url: str, user: tuple[str, str]) -> None:
    """Log ``user`` in on Superset's login form (the page's browser context keeps the session)."""
    page.goto(f"{url}/login/")
    # The login form is drawn by React: typing before it has settled can be wiped by a re-render.
    page.wait_for_load_state("networkidle", timeout=60_000)
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    assert page.input_value("#username") == user[0] and page.input_value("#password") == user[1]
    page.keyboard.press("Enter")
    try:
        page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    except Exception as exc:
        raise AssertionError(f"login of {user[0]} failed; the page says: {page.inner_text('body')[:500]}") from exc


def block_telemetry(page) -> None:
    """Superset 6.1's navigation bar always loads a telemetry pixel from an outside host (not configurable; the
    machine is offline): answer it with an empty image so that every other console error still counts."""
    page.route("https://apachesuperset.gateway.scarf.sh/**", lambda route: route.fulfill(status=204, body=""))


def open_dashboard(browser, dashboards: Dashboards, user: tuple[str, str], slug: str, shot: Path, query: str = ""):
    """Log in, open the dashboard (``query``: URL parameters, e.g. native filter values), wait for every chart to
    draw; returns the page and the browser's errors."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    page = browser.new_page(viewport={"width": 1400, "height": 1800}, locale="zh-CN")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    block_telemetry(page)
    log_in(page, dashboards.url, user)
    page.goto(f"{dashboards.url}/superset/dashboard/{slug}/{query}")
    # The dashboard draws its charts, then draws them again once its native filters are ready: wait for the
    # network to settle, then for every chart slot to hold a drawn chart and nothing to be loading.
    page.wait_for_load_state("networkidle", timeout=90_000)
    page.wait_for_function(DRAWN, timeout=90_000)
    # Once its native filters are ready Superset rewrites the URL with their key and may mount the charts again
    # (a moment with no chart on the page): wait for that, then for every chart drawn again.
    try:
        page.wait_for_url(lambda url: "native_filters_key" in url, timeout=20_000)
    except PlaywrightTimeoutError:
        pass  # a dashboard without native filters gets no key
    page.wait_for_load_state("networkidle", timeout=90_000)
    page.wait_for_function(DRAWN, timeout=90_000)
    # ECharts animates a line from left to right after it is drawn: a picture taken at once shows it cut short.
    page.wait_for_timeout(ECHARTS_ANIMATION_MS)
    take_drawn_screenshot(page, shot)
    if os.environ.get("MO_UPDATE_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / shot.name)
    return page, errors


# Marks what each chart slot has drawn; after the picture, every slot must still hold a marked drawing (no re-mount
# or re-render of a chart in between: Superset sometimes mounts the charts once more after all the waits above,
# and a picture taken in that moment showed an empty dashboard while the test's later checks passed).
MARK_DRAWN = """() => document.querySelectorAll('[data-test-chart-name]').forEach(slot =>
    slot.querySelectorAll('canvas, svg, table, .header-line, [role="alert"]').forEach(e => e.dataset.moShot = '1'))"""
STILL_DRAWN = """() => {
    const slots = [...document.querySelectorAll('[data-test-chart-name]')];
    return slots.length > 0
        && document.querySelectorAll('[data-test="loading-indicator"], .loading').length === 0
        && slots.every(s => s.querySelector('[data-mo-shot="1"]'));
}"""


def take_drawn_screenshot(page, shot: Path, attempts: int = 3) -> None:
    """A full-page picture of the dashboard with every chart drawn in it, taken again (after the charts are drawn
    once more) when a chart was mounted or drawn anew while it was taken."""
    for _ in range(attempts):
        page.wait_for_function(DRAWN, timeout=90_000)
        page.evaluate(MARK_DRAWN)
        page.screenshot(path=str(shot), full_page=True)
        if page.evaluate(STILL_DRAWN):
            return
        page.wait_for_load_state("networkidle", timeout=90_000)
        page.wait_for_function(DRAWN, timeout=90_000)
        page.wait_for_timeout(ECHARTS_ANIMATION_MS)
    raise AssertionError(f"the charts were drawn anew during each of {attempts} pictures ({shot.name})")


def chart_errors(page) -> list[str]:
    return page.locator('[data-test-chart-name] [role="alert"], [data-test="error-alert"]').all_inner_texts()


def big_number(page, name: str) -> int:
    text_ = page.locator(f'[data-test-chart-name="{name}"] .header-line').inner_text()
    return int(text_.replace(",", "").strip())
