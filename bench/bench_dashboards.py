"""Every Superset dashboard in a real browser: time until all its charts are drawn, and its slowest chart's query
against the same figure computed straight from silver, in one run.

World: a SQLite source of ``MO_BENCH_DASHBOARDS_CUSTOMERS`` customers (default 20,000, seed 42) made as the
dashboard tests' world is (tests/dashboards_world.py ``fill_source``: the generator, the hand-written campaign
rows, one simulated day whose events reach bronze), synced to silver and built by ``build_profiles`` (marts,
segments, campaign results, the analytics marts, the gate and both publishes). ``MO_BENCH_DASHBOARDS_SOURCE_URL``
syncs an existing source instead (read only: no campaign rows, no simulated day). The build is not timed here
(see the profiles section). ``MO_BENCH_DASHBOARDS_HOME`` keeps the world (MO_HOME, lake, stores) in that
folder, and a later run with the same folder measures it again without building.

Superset (``mo.dashboards``: set-up, bundle import, gunicorn as ``make dashboards`` runs it, no lake SQL
endpoint) serves the analytics store; headless Chromium (Playwright) logs in as the admin and opens each
dashboard:

- load time: from the start of the navigation to the moment every chart slot the dashboard's layout has holds a
  drawn chart (canvas, svg, table or big number), nothing is loading, no chart-data request is in flight and, on a
  dashboard with native filters, Superset has written their key into the URL; that state must then hold for
  ``SETTLE_MS`` (the moment it began is the figure; Superset mounts the charts again once its filters are
  ready). Any chart error fails the bench.
- the first load of each dashboard (``cold``: Superset's data cache empty) is reported alone; then
  ``MO_BENCH_DASHBOARDS_LOADS`` (default 6) loads with ``?force=true`` (Superset bypasses its cache: every
  chart's query runs; p50 and p95, nearest rank) and ``MO_BENCH_DASHBOARDS_CACHED_LOADS`` (default 3) plain loads
  (answered from Superset's cache; p50).
- chart queries: each chart's request as the browser sent it, replayed to ``/api/v1/chart/data`` with
  ``force`` (median of 3), and its SQL (as Superset generated it) run straight against the analytics store
  (median of 3).
- baseline: one chart per dashboard computed straight from silver (and bronze, the segments' membership) with
  Spark SQL on the build's session (median of 3, after one unmeasured run), against that chart's replayed query.

Stores: the embedded default (SQLite) and, unless ``MO_BENCH_DASHBOARDS_POSTGRES=0``, PostgreSQL (the stack's
analytics store: the same marts published into a database of its own, ``MO_BENCH_DASHBOARDS_ADMIN_URL``,
default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``, dropped at the end; the bundle is imported
again pointing at it). Superset, Chromium, Spark, the temporary MO_HOME and the database are all stopped or
removed at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/dashboards_world.py is imported as `tests.dashboards_world`
    sys.path.insert(0, str(ROOT))

TARGET_S = 3.0
# Superset 6.1's navigation bar loads a telemetry pixel from an outside host (the machine is offline): the browser
# resolves that host to nothing. Not Playwright's request routing (tests/dashboards_world.py block_telemetry):
# routing turns the browser's HTTP cache off, and an analyst's browser keeps Superset's scripts (cached for a
# year) between loads.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP apachesuperset.gateway.scarf.sh ~NOTFOUND"]
SETTLE_MS = 500
SEED = 42
RUN_ID = "bench-dashboards"

# A fetch wrapper the page gets before its own scripts: how many chart-data requests are in flight.
COUNT_REQUESTS = """(() => {
    const CHART_DATA = ['/api/v1/chart/data', '/superset/explore_json/'];
    const original = window.fetch;
    window.__moChartRequests = 0;
    window.fetch = function (...args) {
        const target = args[0];
        const url = String((target && target.url) || target);
        if (!CHART_DATA.some(path => url.includes(path))) return original.apply(this, args);
        window.__moChartRequests += 1;
        const answer = original.apply(this, args);
        const done = () => { window.__moChartRequests -= 1; };
        answer.then(done, done);
        return answer;
    };
})()"""


def settled(drawn: str) -> str:
    """The page-side predicate: every chart drawn (``drawn``, the tests' check), ``expected`` slots, no chart
    request in flight, the filters' key in the URL when ``need_key``, held for ``settle_ms``; the moment the
    state began (ms since the navigation started) is left in ``window.__moDrawnSince``."""
    return f"""([expected, needKey, settleMs]) => {{
        const ready = document.querySelectorAll('[data-test-chart-name]').length === expected
            && ({drawn})()
            && (window.__moChartRequests || 0) === 0
            && (!needKey || location.href.includes('native_filters_key'));
        const now = performance.now();
        if (!ready) {{ window.__moDrawnSince = null; return false; }}
        if (window.__moDrawnSince == null) window.__moDrawnSince = now;
        return now - window.__moDrawnSince >= settleMs;
    }}"""


# In ms since the navigation started: the first chart-data request's start, the last one's answer, and the
# dashboard's own API calls made before the charts' (layout, charts, datasets): the first one's start (Superset's
# application has booted) and the last one's answer.
TIME_LINE = """() => {
    const all = performance.getEntriesByType('resource');
    const sent = all.filter(e => e.name.includes('/api/v1/chart/data') || e.name.includes('/superset/explore_json/'));
    if (!sent.length) return [null, null, null, null];
    const first = Math.min(...sent.map(e => e.startTime));
    const meta = all.filter(e => e.name.includes('/api/v1/dashboard/') && e.startTime <= first);
    return [first, Math.max(...sent.map(e => e.responseEnd)),
            meta.length ? Math.min(...meta.map(e => e.startTime)) : null,
            meta.length ? Math.max(...meta.map(e => e.responseEnd)) : null];
}"""


# --- pure figures -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1): the smallest value with at least q of the values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def slice_of(url: str, body: dict[str, Any]) -> int | None:
    """The chart a chart-data request is for: ``form_data={"slice_id": N}`` in its URL (the body's form data
    on some viz types); None for a request of no chart (a native filter's values)."""
    from urllib.parse import parse_qs, urlparse

    for raw in parse_qs(urlparse(url).query).get("form_data", []):
        found = json.loads(raw).get("slice_id")
        if found is not None:
            return int(found)
    found = (body.get("form_data") or {}).get("slice_id")
    return None if found is None else int(found)


def english(title: str) -> str:
    """The English half of a bilingual title ('理赔服务 Claims service' -> 'Claims service')."""
    found = re.search(r"[A-Za-z].*", title)
    return found.group(0) if found else title


@dataclass
class Phases:
    """One load's time line (s since the navigation started)."""

    first_request: float  # the first chart-data request left: the page, its scripts and the dashboard's metadata
    last_answer: float  # the last chart-data answer arrived
    drawn: float  # every chart drawn
    scripts: float = float("nan")  # Superset's application has booted: the dashboard's first API call
    metadata: float = float("nan")  # the dashboard's own API calls (layout, charts, datasets) answered


@dataclass
class DashboardFigures:
    title: str
    charts: int
    cold_s: float
    forced_s: list[float]
    cached_s: list[float]
    chart_api_s: dict[str, float] = field(default_factory=dict)  # chart -> replayed /api/v1/chart/data (force)
    chart_sql_s: dict[str, float] = field(default_factory=dict)  # chart -> its SQL alone on the store
    compared: str | None = None  # the chart computed from silver too
    silver_s: float | None = None
    phases: list[Phases] = field(default_factory=list)  # of the forced loads

    @property
    def p50(self) -> float:
        return percentile(self.forced_s, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.forced_s, 0.95)

    @property
    def met(self) -> bool:
        return self.p95 <= TARGET_S and self.cold_s <= TARGET_S

    @property
    def slowest(self) -> tuple[str, float]:
        name = max(self.chart_api_s, key=lambda n: self.chart_api_s[n])
        return name, self.chart_api_s[name]


def render_loads(store: str, figures: list[DashboardFigures], loads: int) -> list[str]:
    lines = [
        f"**{store}**: time until every chart is drawn (s; forced: each load bypasses Superset's cache, {loads} loads)",
        "",
        "| dashboard | charts | cold load | forced p50 | forced p95 | cached p50 | within 3 s? |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in figures:
        cached = f"{percentile(f.cached_s, 0.5):.2f}" if f.cached_s else "-"
        lines.append(
            f"| {english(f.title)} | {f.charts} | {f.cold_s:.2f} | {f.p50:.2f} | {f.p95:.2f} | {cached} | "
            f"{'yes' if f.met else 'NO'} |"
        )
    return lines


def render_phases(store: str, figures: list[DashboardFigures]) -> list[str]:
    lines = [
        f"**{store}**: where a forced load's time goes (s since the navigation started, medians over the forced "
        "loads; the chart-request and drawing columns are durations)",
        "",
        "| dashboard | application booted (first dashboard API call) | dashboard metadata answered | "
        "first chart request sent | chart requests (first sent to last answered) | drawing after the last answer | "
        "drawn |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in figures:
        if not f.phases:
            continue
        first = statistics.median(p.first_request for p in f.phases)
        span = statistics.median(p.last_answer - p.first_request for p in f.phases)
        draw = statistics.median(p.drawn - p.last_answer for p in f.phases)
        drawn = statistics.median(p.drawn for p in f.phases)
        scripts = statistics.median(p.scripts for p in f.phases)
        meta = statistics.median(p.metadata for p in f.phases)
        lines.append(
            f"| {english(f.title)} | {scripts:.2f} | {meta:.2f} | {first:.2f} | {span:.2f} | {draw:.2f} | {drawn:.2f} |"
        )
    return lines


def render_queries(store: str, figures: list[DashboardFigures]) -> list[str]:
    lines = [
        f"**{store}**: chart queries (ms) and one figure per dashboard from silver",
        "",
        "| dashboard | slowest chart | its query via Superset | its SQL alone | chart compared | its query via "
        "Superset | same figure from silver | silver / mart |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for f in figures:
        name, api_s = f.slowest
        sql_s = f.chart_sql_s.get(name)
        alone = "-" if sql_s is None else f"{1000 * sql_s:,.1f}"
        row = f"| {english(f.title)} | {english(name)} | {1000 * api_s:,.0f} | {alone} |"
        if f.compared and f.compared in f.chart_api_s and f.silver_s is not None:
            mart_s = f.chart_api_s[f.compared]
            row += (
                f" {english(f.compared)} | {1000 * mart_s:,.0f} | {1000 * f.silver_s:,.0f} | "
                f"{f.silver_s / mart_s:.1f}x |"
            )
        else:
            row += " - | - | - | - |"
        lines.append(row)
    return lines


# --- one figure per dashboard straight from the lake ----------------------------------------------------------

# dashboard slug -> (the English part of the chart's name, Spark SQL over the lake computing its figure); {c} is
# the catalog, {as_of} the build's date, {run_id} the build's segment run.
SILVER_FIGURES: dict[str, tuple[str, str]] = {
    "claims-service": (
        "Open claims by status and age",
        """select c.status,
                  case when datediff(date'{as_of}', to_date(c.reported_at)) <= 3 then '0-3'
                       when datediff(date'{as_of}', to_date(c.reported_at)) <= 5 then '4-5'
                       when datediff(date'{as_of}', to_date(c.reported_at)) <= 10 then '6-10'
                       else '10+' end as age_band,
                  count(*) as open_claims
           from {c}.silver.claims c
           join {c}.silver.policies p on p.id = c.policy_id
           join {c}.silver.organizations o on o.id = p.org_id
           where c.deleted_at is null and c.status not in ('paid', 'rejected')
           group by 1, 2""",
    ),
    "customers": (
        "Lines held",
        """select coalesce(l.lines_held, 'none') as lines_held, count(*) as customers
           from {c}.silver.customers cu
           left join (select p.customer_id, concat_ws(',', sort_array(collect_set(pr.line))) as lines_held
                      from {c}.silver.policies p join {c}.silver.products pr on pr.id = p.product_id
                      where p.deleted_at is null and p.status = 'in_force'
                      group by p.customer_id) l on l.customer_id = cu.id
           where cu.deleted_at is null
           group by 1""",
    ),
    "segments": (
        "Segments by gender",
        """select m.segment_id, cu.gender, count(*) as customers
           from {c}.segments.membership m join {c}.silver.customers cu on cu.id = m.customer_id
           where m.run_id = '{run_id}'
           group by 1, 2""",
    ),
    "campaign-operations": (
        "Funnel per campaign and channel",
        """select l.campaign_id, l.channel, l.decision, d.state, count(distinct l.customer_id) as customers
           from {c}.silver.contact_ledger l
           left join {c}.silver.contact_deliveries d on d.message_id = l.message_id
           group by 1, 2, 3, 4""",
    ),
    "sales-recordings": (
        "Review status by organisation",
        """select o.name, r.review_status, count(*) as recordings
           from {c}.silver.sales_recordings r join {c}.silver.organizations o on o.id = r.org_id
           where r.deleted_at is null
           group by 1, 2""",
    ),
    "platform-health": ("Rows per layer (source, bronze, silver)", ""),  # built from the contracts below
}


def silver_sql(slug: str, catalog: str, as_of: str, run_id: str) -> tuple[str, str]:
    chart, sql = SILVER_FIGURES[slug]
    if slug == "platform-health":
        from mo.contracts import load_source_contracts

        sql = " union all ".join(
            f"select '{layer}' as layer, '{t}' as table_name, count(*) as rows from {catalog}.{layer}.{t}"
            for t in load_source_contracts()
            for layer in ("bronze", "silver")
        )
    return chart, sql.format(c=catalog, as_of=as_of, run_id=run_id)


def _median_time(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# --- the world --------------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"bench dashboards: {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build_world(settings: Any, source_url: str | None, customers: int) -> tuple[Any, Any, dict[str, Any]]:
    """Source (generated unless given), lake, build_profiles; returns (spark, as_of, facts)."""
    from mo.generator.storage import read_clock
    from mo.oltp.db import make_engine, migrate
    from mo.profiles import build_profiles
    from spark_jobs.lake import silver_table
    from spark_jobs.session import get_spark
    from spark_jobs.sync import run_sync
    from tests.dashboards_world import fill_source, load_lake

    engine = make_engine(settings.resolved_source_url)
    started = time.perf_counter()
    try:
        if source_url is None:
            as_of, _, events = fill_source(engine, customers=customers, seed=SEED)
        else:
            migrate(engine)
            events = []
            with engine.connect() as conn:
                as_of = read_clock(conn).current_date  # type: ignore[union-attr]
    finally:
        engine.dispose()
    generate_s = time.perf_counter() - started
    _log(f"source ready in {generate_s:.0f}s (as of {as_of})")
    spark = get_spark(settings, "bench-dashboards")
    started = time.perf_counter()
    if source_url is None:
        load_lake(spark, settings, events)
    else:
        run_sync(spark, settings)
    sync_s = time.perf_counter() - started
    _log(f"synced in {sync_s:.0f}s")
    started = time.perf_counter()
    build_profiles(settings, as_of, run_id=RUN_ID)
    build_s = time.perf_counter() - started
    _log(f"build_profiles in {build_s:.0f}s")
    live = spark.table(silver_table(settings, "customers")).where("deleted_at is null").count()
    facts = {"live": live, "events": len(events), "generate_s": generate_s, "sync_s": sync_s, "build_s": build_s}
    return spark, as_of, facts


def _bundle_dashboards() -> list[dict[str, Any]]:
    """Each dashboard of the bundle: slug, title, chart slots in its layout, whether it has native filters."""
    from mo.dashboards import read_bundle

    found = []
    for rel, d in read_bundle().items():
        if rel.startswith("dashboards/"):
            slots = sum(
                1 for v in (d.get("position") or {}).values() if isinstance(v, dict) and v.get("type") == "CHART"
            )
            filters = (d.get("metadata") or {}).get("native_filter_configuration") or []
            found.append({"slug": d["slug"], "title": d["dashboard_title"], "charts": slots, "filters": bool(filters)})
    return sorted(found, key=lambda d: d["slug"])


# --- in the browser ---------------------------------------------------------------------------------------------


def _load(context, url: str, dash: dict[str, Any], predicate: str, force: bool) -> tuple[float, list[dict], Phases]:  # type: ignore[no-untyped-def]
    """Open the dashboard once; returns (seconds until every chart is drawn, the chart-data requests sent, when
    the first chart request left and the last answer arrived)."""
    from tests.dashboards_world import chart_errors

    page = context.new_page()
    bodies: list[dict] = []
    failed: list[str] = []

    def on_request(request) -> None:  # type: ignore[no-untyped-def]
        if "/api/v1/chart/data" in request.url and request.method == "POST":
            bodies.append({"url": request.url, "body": request.post_data_json})

    def on_response(response) -> None:  # type: ignore[no-untyped-def]
        if "/api/v1/chart/data" in response.url and response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("request", on_request)
    page.on("response", on_response)
    try:
        page.goto(f"{url}/superset/dashboard/{dash['slug']}/{'?force=true' if force else ''}", wait_until="commit")
        page.wait_for_function(
            predicate, arg=[dash["charts"], dash["filters"], SETTLE_MS], polling="raf", timeout=180_000
        )
        drawn_ms = page.evaluate("window.__moDrawnSince")
        first_ms, last_ms, scripts_ms, meta_ms = page.evaluate(TIME_LINE)
        errors = chart_errors(page)
        unforced = [
            b["url"] for b in bodies if slice_of(b["url"], b["body"]) is not None and not b["body"].get("force")
        ]
        if force and unforced:
            errors.append(f"chart queries not forced (Superset ignored ?force=true): {unforced}")
        if errors or failed:
            raise RuntimeError(f"dashboard {dash['slug']}: chart errors {errors} {failed}")
    finally:
        page.close()
    phases = None
    if first_ms is not None:
        scripts = scripts_ms / 1000 if scripts_ms is not None else float("nan")
        meta = meta_ms / 1000 if meta_ms is not None else float("nan")
        phases = Phases(first_ms / 1000, last_ms / 1000, drawn_ms / 1000, scripts, meta)
    return drawn_ms / 1000, bodies, phases


def _replay(client, bodies: list[dict], names: dict[int, str]) -> tuple[dict[str, float], dict[str, str]]:  # type: ignore[no-untyped-def]
    """Each chart's last request (URL and body as the browser sent them) sent again with force (median of 3);
    returns seconds and SQL per chart name."""
    latest: dict[int, dict] = {}
    for sent in bodies:
        slice_id = slice_of(sent["url"], sent["body"])
        if slice_id is not None:
            latest[slice_id] = sent
    seconds: dict[str, float] = {}
    sql: dict[str, str] = {}
    for slice_id, sent in latest.items():
        forced = {**sent["body"], "force": True}
        name = names.get(slice_id, str(slice_id))
        target = sent["url"]

        def post(forced: dict = forced, name: str = name, target: str = target) -> dict:
            answer = client.http.post(target, json=forced, timeout=300)
            if answer.status_code >= 400:
                raise RuntimeError(f"chart {name}: {answer.status_code} {answer.text[:500]}")
            return answer.json()

        seconds[name] = _median_time(post)
        queries = [r.get("query") for r in post().get("result", []) if r.get("query")]
        if queries:
            sql[name] = ";\n".join(queries)
    return seconds, sql


def _sql_alone(url: str, sql: dict[str, str]) -> dict[str, float]:
    """Each chart's SQL as Superset generated it, run on the analytics store (median of 3)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    seconds: dict[str, float] = {}
    try:
        with engine.connect() as conn:
            for name, statements in sql.items():

                def run(statements: str = statements) -> None:
                    for statement in statements.split(";\n"):
                        if statement.strip():
                            result = conn.execute(text(statement.replace(":", r"\:")))
                            if result.returns_rows:
                                result.fetchall()

                try:
                    seconds[name] = _median_time(run)
                except Exception as exc:  # noqa: BLE001 - a statement the plain driver cannot run is reported, not fatal
                    _log(f"SQL of {name!r} not run alone: {str(exc).splitlines()[0][:200]}")
    finally:
        engine.dispose()
    return seconds


def _measure_store(url: str, admin: tuple[str, str], dashboards: list[dict], loads: int, cached: int):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    from mo.dashboards import Superset
    from tests.dashboards_world import DRAWN, log_in

    predicate = settled(DRAWN.strip())
    client = Superset(url, *admin, timeout=300)
    names = {c["id"]: c["slice_name"] for c in client.list_all("chart")}
    figures: dict[str, DashboardFigures] = {}
    sql: dict[str, dict[str, str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1800}, locale="zh-CN")
            context.add_init_script(COUNT_REQUESTS)
            page = context.new_page()
            log_in(page, url, admin)
            page.close()
            for dash in dashboards:
                cold, _, _ = _load(context, url, dash, predicate, force=False)
                forced, bodies, phases = [], [], []
                for _ in range(loads):
                    seconds, bodies, span = _load(context, url, dash, predicate, force=True)
                    forced.append(seconds)
                    phases += [span] if span else []
                warm = [_load(context, url, dash, predicate, force=False)[0] for _ in range(cached)]
                fig = DashboardFigures(dash["title"], dash["charts"], cold, forced, warm, phases=phases)
                fig.chart_api_s, sql[dash["slug"]] = _replay(client, bodies, names)
                figures[dash["slug"]] = fig
                _log(
                    f"{dash['slug']}: cold {cold:.2f}s, forced p50 {fig.p50:.2f}s p95 {fig.p95:.2f}s, "
                    f"slowest chart {fig.slowest[0]!r} {fig.slowest[1]:.3f}s"
                )
            context.close()
        finally:
            browser.close()
    return figures, sql


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _pg_database(admin_url: str, name: str, *, create: bool) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            if create:
                conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


# --- the section --------------------------------------------------------------------------------------------


def run() -> str:
    from mo.config import Settings
    from mo.dashboards import import_dashboards, setup_superset, start_superset, stop_superset

    source_url = os.environ.get("MO_BENCH_DASHBOARDS_SOURCE_URL")
    customers = int(os.environ.get("MO_BENCH_DASHBOARDS_CUSTOMERS", "20000"))
    loads = int(os.environ.get("MO_BENCH_DASHBOARDS_LOADS", "6"))
    cached = int(os.environ.get("MO_BENCH_DASHBOARDS_CACHED_LOADS", "3"))
    with_pg = os.environ.get("MO_BENCH_DASHBOARDS_POSTGRES", "1") != "0"
    pg_admin = os.environ.get("MO_BENCH_DASHBOARDS_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    port = int(os.environ.get("MO_BENCH_DASHBOARDS_PORT") or _free_port())
    pg_name = f"mo_bench_dashboards_{os.getpid()}"
    dashboards = _bundle_dashboards()
    results: dict[str, dict[str, DashboardFigures]] = {}
    spark = None
    started_superset = False
    pg_url = None
    kept = os.environ.get("MO_BENCH_DASHBOARDS_HOME")
    with tempfile.TemporaryDirectory(prefix="mo-bench-dashboards-") as tmp:
        home = Path(kept or tmp)
        home.mkdir(parents=True, exist_ok=True)
        settings = Settings(home=home, source_url=source_url, catalog_name="bench_dash", pii_key="bench-key",
                            serving_db_url=None)  # fmt: skip
        saved = {k: os.environ.get(k) for k in ("MO_HOME", "MO_CATALOG_NAME")}
        os.environ.update({"MO_HOME": str(home), "MO_CATALOG_NAME": settings.catalog_name})
        try:
            built = home / "bench-world.json"
            if kept and built.exists():  # a world an earlier run built and kept: measure it again
                from spark_jobs.session import get_spark

                facts = json.loads(built.read_text())
                as_of = dt.date.fromisoformat(facts["as_of"])
                spark = get_spark(settings, "bench-dashboards")
                _log(f"reusing the world built in {home} ({facts['live']:,} customers)")
            else:
                spark, as_of, facts = _build_world(settings, source_url, customers)
                built.write_text(json.dumps({**facts, "as_of": as_of.isoformat()}))
            workers, threads = settings.dashboards_workers, settings.dashboards_threads
            facts["superset"] = f"{workers} gunicorn worker{'s' if workers > 1 else ''}, {threads} threads each"
            from mo.analytics import analytics_url

            stores = {"SQLite (embedded default)": analytics_url(settings)}
            if with_pg:
                from mo.analytics import publish_analytics

                pg_url = _pg_database(pg_admin, pg_name, create=True)
                started = time.perf_counter()
                publish_analytics(settings, as_of=as_of, url=pg_url, spark=spark, published_by=RUN_ID)
                _log(f"analytics marts published to PostgreSQL in {time.perf_counter() - started:.0f}s")
                stores["PostgreSQL (the stack's store)"] = pg_url
            setup_superset(settings)
            start_superset(settings, port=port)
            started_superset = True
            url = f"http://127.0.0.1:{port}"
            creds = json.loads((home / "superset-demo-credentials.json").read_text())["admin"]
            admin = (creds["username"], creds["password"])
            for store, store_url in stores.items():
                from mo.dashboards import Superset

                import_dashboards(Superset(url, *admin, timeout=300), store_url)
                figures, sql = _measure_store(url, admin, dashboards, loads, cached)
                (home / f"chart-sql-{len(results)}.json").write_text(json.dumps(sql, ensure_ascii=False, indent=1))
                for slug, fig in figures.items():
                    fig.chart_sql_s = _sql_alone(store_url, sql[slug])
                results[store] = figures
            stop_superset(settings)
            started_superset = False
            # the same figures from silver, on the build's session, once the browser and Superset are gone
            for dash in dashboards:
                chart, statement = silver_sql(dash["slug"], settings.catalog_name, as_of.isoformat(), RUN_ID)
                spark.sql(statement).collect()  # unmeasured: file listings and plans warm, as the mart's are
                seconds = _median_time(lambda statement=statement: spark.sql(statement).collect())
                for figures in results.values():
                    fig = figures[dash["slug"]]
                    fig.compared = next((n for n in fig.chart_api_s if english(n) == chart), None)
                    fig.silver_s = seconds
                _log(f"{dash['slug']}: {chart!r} from silver {seconds:.3f}s")
        finally:
            if started_superset:
                stop_superset(settings)
            if spark is not None:
                spark.stop()
            if pg_url is not None:
                _pg_database(pg_admin, pg_name, create=False)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return render(results, facts, loads, cached, source_url)


def render(
    results: dict[str, dict[str, DashboardFigures]], facts: dict[str, Any], loads: int, cached: int, source: str | None
) -> str:
    origin = "an existing source" if source else f"a generated SQLite world (seed {SEED})"
    lines = [
        "## Dashboards: every chart drawn in the browser, and the slowest chart against silver",
        "",
        f"World: {facts['live']:,} live customers from {origin}, synced and built by `build_profiles` (build "
        f"{facts['build_s']:.0f}s, not counted). Superset 6.1 ({facts.get('superset', 'gunicorn')}) over the "
        "published analytics marts, headless Chromium logged in as the admin on the same 2 cores, its HTTP cache kept "
        "between loads as an analyst's browser keeps it. A load is timed from the start of the navigation "
        "to the moment every chart of the layout is drawn with no chart request in flight (and the native filters' "
        f"key is in the URL), held {SETTLE_MS} ms. Cold: the first load after Superset started. Forced: "
        f"{loads} loads with `?force=true` (every chart's query runs; p95 nearest rank, with {loads} loads the "
        f"slowest). Cached: {cached} plain loads from Superset's data cache. Target: every dashboard drawn within "
        f"{TARGET_S:.0f} s (cold and forced p95).",
        "",
    ]
    for store, figures in results.items():
        lines += render_loads(store, list(figures.values()), loads) + [""]
    for store, figures in results.items():
        lines += render_phases(store, list(figures.values())) + [""]
    for store, figures in results.items():
        lines += render_queries(store, list(figures.values())) + [""]
    lines += [
        "Chart queries: each chart's request as the browser sent it, replayed to `/api/v1/chart/data` with `force` "
        "(median of 3; Superset's own work included), and its SQL alone on the store (median of 3). From silver: "
        "the chart's figure computed by Spark SQL over the lake's silver tables (bronze and silver counts for the "
        "platform's rows per layer, the segments' membership for the segments), median of 3 after a warm-up run.",
    ]
    return "\n".join(lines)


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
