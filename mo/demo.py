"""`make demo`: the main job end to end on the embedded defaults.

Creates (or reuses) the synthetic world under MO_HOME, starts the local broker, moves the world
forward a day (changes and events), then runs the `source_sync`, `events_ingest` and `build_profiles`
DAGs through Airflow (sync, events, dbt marts and tags, segments, the marts gate, the serving store
publish), prints the segment sizes and the platform status. Rerunning advances the world again, syncs
incrementally and rebuilds the profiles for the world's new day.

It ends by starting the serving API (serving/, its own environment) in the background on the same
MO_HOME, calling it as the demo app client (token, a published profile, readiness), running one campaign
through the whole path (a marketer drafts it, an approver approves it, the dispatcher decides every touch, a
channel worker delivers through the provider sandbox, receipts come back to the API) and printing its funnel
and the URL of the interactive docs. The API and the sandbox keep running for you to try; `make serve-stop`
stops them.

Last, it publishes the analytics marts and brings Superset up as `make dashboards` does (`mo dashboards up`:
metadata database, admin, roles, the bundle) and prints its URL and where the demo login is kept (the file's
path, as for the serving API's demo accounts; never the password). A Superset that fails to start is reported on
its own line after everything else the demo printed; `make dashboards-stop` (or `make serve-stop`) stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import click

from mo.config import get_settings
from mo.errors import MoError
from mo.progress import Progress, log_path_for


def _segment_sizes(settings) -> dict[str, int]:
    """Segment sizes of the serving store's current refresh."""
    from sqlalchemy import text

    from mo.serving_store import open_store

    store = open_store(settings)
    with store.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT segment_id, size FROM {store.qualified('segments')} ORDER BY segment_id"))
        return {r[0]: int(r[1] or 0) for r in rows}


REPO = Path(__file__).resolve().parents[1]
SERVING_DIR = REPO / "serving"
API_START_TIMEOUT_S = 90


def _api_pid_file(settings) -> Path:
    return settings.home / "serving" / "api.pid"


def stop_api(settings) -> bool:
    """Stop the API a previous demo left running (its pid file under MO_HOME); True if one was running."""
    pid_file = _api_pid_file(settings)
    if not pid_file.is_file():
        return False
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    return True


def _serving_env() -> dict[str, str]:
    """The platform's settings as they are (MO_HOME, MO_PII_KEY, ...), the repository on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVING_")}
    env["PYTHONPATH"] = f"{REPO}:{SERVING_DIR}"
    return env


def _http(method: str, url: str, *, data: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def start_api(settings, progress: Progress, port: int) -> str:
    """Start the serving API in the background on this MO_HOME and call it as the demo app client."""
    from sqlalchemy import text

    from mo.serving_store import open_store

    python = SERVING_DIR / ".venv" / "bin" / "python"
    if not python.exists():
        raise MoError(f"the serving environment is missing ({python}): run `make serving-env`")
    env = _serving_env()
    base = f"http://127.0.0.1:{port}"

    with progress.step("serving API: demo admin and app client") as result:
        done = subprocess.run(
            [str(python), "-m", "app.cli", "bootstrap-demo", "--quiet"],
            cwd=SERVING_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise MoError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "bootstrap-demo failed")
        credentials_file = Path(done.stdout.strip().splitlines()[-1])
        result["detail"] = f"credentials in {credentials_file} (mode 0600)"
    credentials = json.loads(credentials_file.read_text())["app_client"]

    with progress.step(f"serving API: start on {base}") as result:
        if stop_api(settings):
            result["detail"] = "restarted"
        log_path = settings.home / "logs" / "serving-api.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            server = subprocess.Popen(
                [str(python), "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                cwd=SERVING_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives the demo; `make serve-stop` ends it
            )
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                code = server.returncode
                raise MoError(f"the serving API exited with code {code} (is port {port} taken?): see {log_path}")
            try:
                if _http("GET", f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                server.terminate()
                raise MoError(f"the serving API did not answer within {API_START_TIMEOUT_S} s: see {log_path}")
            time.sleep(0.3)
        _api_pid_file(settings).parent.mkdir(parents=True, exist_ok=True)
        _api_pid_file(settings).write_text(str(server.pid))
        result["detail"] = f"pid {server.pid}, log {log_path}"

    with progress.step("serving API: token for the demo app client") as result:
        status, body = _http(
            "POST",
            f"{base}/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"],
            },
        )
        if status != 200:
            raise MoError(f"POST /v1/auth/token answered {status}: {body.get('detail')}")
        token = body["access_token"]
        result["detail"] = f"scopes {body['scope']}, valid {body['expires_in']} s"

    with progress.step("serving API: a customer's published profile") as result:
        store = open_store(settings)
        try:
            with store.engine.connect() as conn:
                customer_id = conn.execute(
                    text(f"SELECT min(customer_id) FROM {store.qualified('customer_profile')}")
                ).scalar_one()
        finally:
            store.dispose()
        status, body = _http("GET", f"{base}/v1/customers/{customer_id}", token=token)
        if status != 200:
            raise MoError(f"GET /v1/customers/{customer_id} answered {status}: {body.get('detail')}")
        result["detail"] = (
            f"GET /v1/customers/{customer_id}: refresh {body['refresh_id']} as of {body['as_of_date']}, "
            f"{len(body['segments'])} segments, {len(body['profile'])} attributes"
        )

    with progress.step("serving API: readiness") as result:
        status, body = _http("GET", f"{base}/ready")
        result["detail"] = ", ".join(f"{name} {state}" for name, state in body.get("checks", {}).items())
        if status != 200:
            raise MoError(f"GET /ready answered {status}: {body.get('checks')}")
    return base


# A health cross-sell to well-off families without health cover: a segment of the checked-in examples, the
# catalogue's medical product (its facts rendered on every channel), three channels in order of preference:
# WeChat (its link is tracked), then SMS, then the app's push.
DEMO_SEGMENT = "high-value-family-no-health"
DEMO_PRODUCT = "HE-MED"
DEMO_CHANNELS = [
    {
        "channel": "wechat",
        "template": {
            "template_id": "TM_PRODUCT_OFFER",
            "url": "https://m.example-insurer.cn/he",
            "data": {"thing1": "{{product.name}}", "amount2": "{{product.base_premium}}", "thing3": "家庭健康保障"},
        },
    },
    {
        "channel": "sms",
        "template": {
            "sign_name": "中安保险",
            "template_code": "SMS_OFFER_01",
            "params": {
                "name": "{{profile.name_masked}}",
                "product": "{{product.name}}",
                "sum_insured": "{{product.sum_insured}}",
                "premium": "{{product.base_premium}}",
                "link": "https://m.example-insurer.cn/he",
            },
        },
    },
    {
        "channel": "push",
        "template": {"title": "{{product.name}}", "body": "一家人的健康保障，{{product.base_premium}}元起"},
    },
]
RECEIPT_WAIT_S = 15.0


def _call(method: str, url: str, *, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """A JSON call with a fresh Idempotency-Key on writes."""
    import uuid

    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    request.add_header("Content-Type", "application/json")
    if method == "POST":
        request.add_header("Idempotency-Key", str(uuid.uuid4()))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _checked(answer: tuple[int, dict], what: str, expected: int = 200) -> dict:
    status, body = answer
    if status != expected:
        raise MoError(f"{what} answered {status}: {body.get('detail')} {body.get('errors') or ''}".strip())
    return body


def _token(base: str, username: str, password: str) -> str:
    status, body = _http(
        "POST", f"{base}/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )
    if status != 200:
        raise MoError(f"login of {username} answered {status}: {body.get('detail')}")
    return str(body["access_token"])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _tap_a_link(settings, campaign_id: int) -> str:  # type: ignore[no-untyped-def]
    """Follow the tracked link of one WeChat message of the campaign, as the customer's phone would (the redirect
    is answered, not followed: the insurer's page is outside this machine)."""
    from sqlalchemy import select

    from mo.oltp.campaign_tables import LedgerEntry
    from mo.oltp.db import make_engine

    ledger = LedgerEntry.__table__
    engine = make_engine(settings.resolved_source_url)
    try:
        with engine.connect() as conn:
            ids = set(
                conn.execute(
                    select(ledger.c.message_id).where(ledger.c.campaign_id == campaign_id, ledger.c.channel == "wechat")
                ).scalars()
            )
    finally:
        engine.dispose()
    sandbox = settings.channel_sandbox_url
    with urllib.request.urlopen(f"{sandbox}/_sandbox/log?table=received&provider=wechat", timeout=10) as response:
        received = json.loads(response.read())["items"]
    mine = [json.loads(r["body"]) for r in received if r["client_msg_id"] in ids]
    if not mine:
        return "no WeChat message in this campaign"
    link = mine[0]["url"]
    try:
        urllib.request.build_opener(_NoRedirect).open(link, timeout=10)
        return f"{link[:60]}... answered without a redirect"
    except urllib.error.HTTPError as exc:
        return f"answered {exc.code}, redirect to {exc.headers.get('Location')}"


def run_campaign(settings, progress: Progress, base: str) -> dict:  # type: ignore[no-untyped-def]
    """One campaign through the whole path on the demo world: a marketer drafts it, an approver (not the
    author) approves it, the dispatcher freezes its audience and decides every touch, a channel worker delivers
    through the provider sandbox, whose receipts come back to the API's webhooks; then its funnel."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from mo.campaigns.dispatch import run_round
    from mo.channels.messages import send_producer
    from mo.channels.sandbox import start_detached
    from mo.channels.worker import ChannelWorker
    from mo.oltp.db import make_engine
    from mo.serving_store import open_store
    from mo.serving_store.redis_store import close_redis, connect_redis

    with progress.step("campaign: provider sandbox (SMS, WeChat, push, coupons)") as result:
        os.environ["MO_CHANNEL_WEBHOOK_URL"] = f"{base}/v1/webhooks"  # receipts go to the API's webhooks
        os.environ["MO_CHANNEL_LINK_BASE_URL"] = base  # tracked links are this API's redirects
        settings = get_settings()
        result["detail"] = start_detached(settings)

    with progress.step("campaign: a marketer and an approver (accounts API)") as result:
        admin = json.loads((settings.home / "serving-demo-credentials.json").read_text())["admin"]
        admin_token = _token(base, admin["username"], admin["password"])
        people = {}
        for role in ("marketer", "approver"):
            username = f"demo-{role}-{uuid.uuid4().hex[:6]}"
            made = _checked(
                _call("POST", f"{base}/v1/accounts/users", body={"username": username, "role": role},
                      token=admin_token), "POST /v1/accounts/users", 201)  # fmt: skip
            people[role] = _token(base, username, made["initial_password"])
        result["detail"] = "created by the demo admin, passwords shown once"

    with progress.step("campaign: drafted, submitted, approved by another person, scheduled") as result:
        ends = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        draft = {
            "name": "家庭医疗险推荐 Family medical cover",
            "objective": "cross_sell",
            "product_line": "health",
            "purpose": "marketing",
            "offer": {"type": "product", "product_code": DEMO_PRODUCT},
            "segment_id": DEMO_SEGMENT,
            "channels": DEMO_CHANNELS,
            "schedule": {"kind": "now"},
            "priority": 50,
            "holdout_share": "0.1000",
            "ends_at": ends,
        }
        campaign = _checked(
            _call("POST", f"{base}/v1/campaigns", body=draft, token=people["marketer"]), "POST /v1/campaigns", 201
        )
        url = f"{base}/v1/campaigns/{campaign['id']}"
        for action, who in (("submit", "marketer"), ("approve", "approver"), ("schedule", "marketer")):
            campaign = _checked(
                _call("POST", f"{url}/{action}", body={"version": campaign["version"], "note": "demo"},
                      token=people[who]), f"POST {action}")  # fmt: skip
        result["detail"] = f"campaign {campaign['id']} {campaign['status']}, segment {DEMO_SEGMENT}"

    engine = make_engine(settings.resolved_source_url)
    store = open_store(settings)
    client = connect_redis(settings)
    try:
        with progress.step("campaign: dispatched (audience frozen, every touch decided once)") as result:
            producer = send_producer(settings)
            try:
                report = run_round(engine, client, store, settings, producer=producer)
            finally:
                producer.close(timeout=5)
            mine = [o for o in report.occurrences if o.campaign_id == campaign["id"]]
            if not mine:
                raise MoError(f"the dispatcher did not take campaign {campaign['id']}")
            result["detail"] = f"audience {mine[0].audience}, decided {mine[0].decided}, produced {mine[0].produced}"
        with progress.step("campaign: delivered through the sandbox") as result:
            stats = ChannelWorker(settings, engine).run(once=True)
            result["detail"] = ", ".join(f"{k} {v}" for k, v in stats.as_dict().items() if v)
    finally:
        close_redis(client)
        store.dispose()
        engine.dispose()

    with progress.step("campaign: receipts back through the API's webhooks") as result:
        deadline, delivered = time.monotonic() + RECEIPT_WAIT_S, -1
        while True:
            funnel = _checked(_call("GET", f"{url}/funnel", token=people["marketer"]), "GET funnel")
            if funnel["delivered"] + funnel["failed"] >= funnel["sent"] or time.monotonic() > deadline:
                break
            if funnel["delivered"] != delivered:
                delivered = funnel["delivered"]
            time.sleep(0.5)
        result["detail"] = f"{funnel['delivered']} delivered of {funnel['sent']} sent"

    with progress.step("campaign: a customer taps the link in a WeChat message") as result:
        result["detail"] = _tap_a_link(settings, campaign["id"])
        funnel = _checked(_call("GET", f"{url}/funnel", token=people["marketer"]), "GET funnel")

    progress.line("")
    progress.line(f"campaign {campaign['id']} funnel (GET /v1/campaigns/{campaign['id']}/funnel):")
    progress.line(f"  {'audience':<32}{funnel['audience']:>8,}")
    for reason, count in funnel["suppressed"].items():
        progress.line(f"  {'suppressed: ' + reason:<32}{count:>8,}")
    if funnel["waiting"]:
        progress.line(f"  {'deferred to the send window':<32}{funnel['waiting']:>8,}")
    for state in ("sent", "delivered", "failed", "dead_letter", "opened", "clicked", "converted"):
        progress.line(f"  {state:<32}{funnel[state]:>8,}")
    uplift = funnel.get("uplift")
    if uplift and uplift["difference"] is not None:
        progress.line(
            f"  uplift over the holdout         {uplift['difference']:+.3f} (95% {uplift['low']:+.3f} .. "
            f"{uplift['high']:+.3f}; {uplift['treated']} treated, {uplift['holdout']} held out)"
        )
    return funnel


def start_dashboards(settings, progress: Progress, port: int, status: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    """What `make dashboards` runs, on the demo's MO_HOME: publish the analytics marts, set Superset up, serve it
    in the background (restarted when a previous demo left one running). ``status``: the demo's `mo status`
    report (the platform health marts), else collected again. Returns its URL."""
    import getpass

    from mo.analytics import publish_analytics
    from mo.dashboards import setup_superset, start_superset, stop_superset
    from mo.lake_sql import bring_up, has_lake

    with_lake = has_lake(settings)
    if with_lake:
        # build_profiles ran before the campaign: its results and the marts over them are built again, as the next
        # daily run would, so the Campaign operations dashboard shows the demo's campaign.
        with progress.step("dashboards: campaign results and analytics marts rebuilt (dbt)") as result:
            from sqlalchemy import select

            from mo.oltp.db import make_engine
            from mo.oltp.models import WorldClock
            from mo.profiles import build_analytics, build_campaign_results

            engine = make_engine(settings.resolved_source_url)
            try:
                with engine.connect() as conn:
                    day = conn.execute(select(WorldClock.current_date)).scalar_one()
            finally:
                engine.dispose()
            synced = build_campaign_results(settings, day)["synced"]
            built = build_analytics(settings, day)
            ingested = synced.get("contact_ledger", 0)
            result["detail"] = f"new ledger rows ingested {ingested:,}; analytics {built.get('nodes', {})}"
    with progress.step("dashboards: analytics marts published (schema analytics)") as result:
        published = publish_analytics(
            settings, status_report=status, with_lake=with_lake, published_by=getpass.getuser()
        )
        result["detail"] = f"refresh {published.refresh_id} as of {published.as_of}"
    with progress.step("dashboards: Superset set up (metadata database, admin, roles, bundle)") as result:
        setup_superset(settings)
        result["detail"] = f"log {settings.home / 'logs' / 'superset-setup.log'}"
    with progress.step("dashboards: SQL Lab's lake endpoint") as result:
        ok, line = bring_up(settings)  # as `make dashboards`; its failure leaves the dashboards working
        result["detail"] = line.removeprefix("SQL Lab's Lake: ")
        if not ok:
            result["outcome"] = "not started"
    with progress.step(f"dashboards: Superset on 127.0.0.1:{port}") as result:
        if stop_superset(settings):
            result["detail"] = "restarted"
        url = start_superset(settings, port=port)
        result["detail"] = (result.get("detail", "") + f" log {settings.home / 'logs' / 'superset.log'}").strip()
    return url


def run_demo(customers: int, seed: int, days: int, progress: Progress, airflow_home: Path | None = None) -> dict:
    """The demo's steps, one progress line each (a line per task for the DAG runs), then the summary.

    Call it inside ``progress.capture()`` so that the tools' own output goes to the log file.
    ``airflow_home``: where Airflow keeps its metadata (default ``MO_HOME/airflow``).
    """
    from sqlalchemy import select

    from mo.airflow_local import configure, load_dags, run_dag
    from mo.events.broker import ensure_broker
    from mo.events.producer import EventPublisher
    from mo.generator.advance import advance_day
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.oltp.models import WorldClock
    from mo.status import collect_status, format_status

    settings = get_settings()
    timings: dict[str, float] = {}

    with progress.step("source database: migrate"):
        engine = make_engine(settings.resolved_source_url)
        migrate(engine)

    with engine.connect() as conn:
        exists = conn.execute(select(WorldClock.current_date)).scalar_one_or_none()
    if exists is None:
        t = time.perf_counter()
        with progress.step(f"generate a world of {customers:,} customers (seed {seed})") as result:
            report = generate_world(engine, customers=customers, seed=seed)
            result["detail"] = f"{sum(report.get('rows', {}).values()):,} rows"
        timings["generate_s"] = time.perf_counter() - t
    else:
        progress.line(f"world exists (day {exists}): advancing it")

    with progress.step("local Kafka-protocol broker") as result:
        result["detail"] = ensure_broker(settings)

    t = time.perf_counter()
    with progress.step(f"advance the world {days} day(s): changes in the source, events to Kafka") as result:
        publisher = EventPublisher(settings)
        try:
            for _ in range(days):
                day = advance_day(engine, emit=publisher.publish)
                result["detail"] = f"now {day['date']}, {day['events_total']:,} events"
                click.echo(f"{day['date']}: {day['events']}")  # the counts per event type, in the log
        finally:
            publisher.close()
    timings["advance_s"] = time.perf_counter() - t

    with engine.connect() as conn:
        world_day = conn.execute(select(WorldClock.current_date)).scalar_one()
    with progress.step("Airflow: metadata database, DAGs"):
        configure(airflow_home or settings.home / "airflow")
        load_dags()
    # the profiles' reference date is the simulated world's day, not the calendar's
    runs = {
        "source_sync": None,
        "events_ingest": None,
        "build_profiles": {"as_of": str(world_day), "force": True},
    }
    for dag_id, conf in runs.items():
        t = time.perf_counter()
        run = run_dag(dag_id, run_conf=conf, progress=progress)
        timings[f"{dag_id}_s"] = time.perf_counter() - t
        if run["state"] != "success":
            failed = [task for task, state in run["tasks"].items() if state == "failed"]
            raise MoError(f"DAG {dag_id} ended {run['state']} (failed: {', '.join(failed) or 'none'})")

    sizes = _segment_sizes(settings)
    status = collect_status(settings)
    progress.line("")
    progress.line("segments published to the serving store:")
    for segment_id, size in sizes.items():
        progress.line(f"  {segment_id:<32}{size:>10,} customers")
    progress.line("")
    progress.line(format_status(status))
    out_of_sync = [name for name, row in status["tables"].items() if not row["in_sync"]]
    if out_of_sync:
        raise MoError(f"source and silver disagree after the sync for: {', '.join(out_of_sync)}")
    if not status["serving"].get("refresh"):
        raise MoError("build_profiles ran but the serving store has no current refresh")
    progress.line("")
    progress.line("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    progress.line(
        click.style(
            "Demo finished: source and silver agree for every table; profiles and segments are published.",
            fg="green",
            bold=True,
        )
    )
    return status


@click.command()
@click.option("--customers", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--api-port",
    type=click.IntRange(min=1, max=65535),
    default=8000,
    show_default=True,
    help="Port of the serving API started at the end",
)
@click.option("--no-api", is_flag=True, help="Do not start the serving API at the end")
@click.option(
    "--dashboards-port",
    type=click.IntRange(min=1, max=65535),
    default=8088,
    show_default=True,
    help="Port of the Superset started last",
)
@click.option("--no-dashboards", is_flag=True, help="Do not start Superset at the end")
def main(customers: int, seed: int, days: int, api_port: int, no_api: bool, dashboards_port: int,
         no_dashboards: bool) -> None:  # fmt: skip
    """Run the demo end to end: progress lines here, the tools' output (Spark, dbt, Airflow) in a log file."""
    try:
        settings = get_settings()
    except MoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    progress = Progress(log_path_for(settings.home, "demo"))
    click.echo(f"MO_HOME={settings.home}")
    click.echo(f"tool logs (Spark, dbt, Airflow): {progress.log_path}")
    failure: str | None = None
    api: str | None = None
    dashboards: str | None = None
    dashboards_failure: str | None = None
    with progress.capture():
        status: dict | None = None
        try:
            status = run_demo(customers, seed, days, progress)
            if not no_api:
                api = start_api(settings, progress, api_port)
                run_campaign(settings, progress, api)
        except MoError as exc:
            failure = str(exc)
        except Exception as exc:  # an unexpected error: its traceback goes to the log, its message here
            traceback.print_exc()
            failure = f"{type(exc).__name__}: {exc}"
        # Superset comes last and on its own: its failure is reported beside the rest, never instead of it.
        if not no_dashboards and failure is None:
            try:
                dashboards = start_dashboards(settings, progress, dashboards_port, status)
            except MoError as exc:
                dashboards_failure = str(exc)
            except Exception as exc:
                traceback.print_exc()
                dashboards_failure = f"{type(exc).__name__}: {exc}"
    click.echo(f"log: {progress.log_path}")
    if api is not None:
        click.echo(f"serving API running at {api}: interactive docs {api}/docs (stop it: make serve-stop)")
    if dashboards is not None:
        from mo.dashboards import login_hint

        click.echo(
            f"Superset running at {dashboards}/dashboard/list/ ({login_hint(settings)}; stop it: make dashboards-stop)"
        )
    if failure is not None:
        click.echo(f"error: {failure}", err=True)
    if dashboards_failure is not None:
        click.echo(f"error: Superset did not start: {dashboards_failure}", err=True)
    if failure is not None or dashboards_failure is not None:
        sys.exit(1)


if __name__ == "__main__":
    main()
