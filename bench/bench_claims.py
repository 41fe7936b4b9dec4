"""Claim submission through the serving API on PostgreSQL: writes per second and latency, against bare inserts.

One PostgreSQL database of its own (``MO_BENCH_CLAIMS_DB``, default ``mo_bench_claims`` on the machine's server,
``MO_BENCH_CLAIMS_ADMIN_URL``, default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``), migrated and
filled with a generated world of ``MO_BENCH_CLAIMS_CUSTOMERS`` customers (default 500), dropped at the end.

Measured in one run, with ``MO_BENCH_CLAIMS_CONCURRENCY`` concurrent writers (default 8) for
``MO_BENCH_CLAIMS_SECONDS`` each (default 15):

- the API: ``POST /v1/claims`` over HTTP to uvicorn (``MO_BENCH_CLAIMS_WORKERS`` processes, default 2), each
  request with a new Idempotency-Key and a bearer token of an app client; every accepted claim is one
  transaction holding the claims row, its status history row, the audit entry, the ``claim_filed`` outbox
  event and the idempotency record, after the policy, cover and visibility checks;
- the same transaction in process (``run_once`` + the claims service from threads, no HTTP, token or rate limit);
- baseline: the same number of threads inserting only the claims row, one transaction each, over SQLAlchemy
  (what the database takes for the bare business write, with no HTTP, no checks and no side records).

Beside the API load, ``mo outbox relay`` (the platform's environment, one process) publishes the outbox to an
embedded Kafka-protocol broker that ``run()`` starts; once the warm-up's events are published, the measured
events' lag (``published_at - created_at``: from the write to the broker's acknowledgement) is reported with
the time the relay needed to drain after the load.

The load generator runs in the serving environment (it imports the app's settings to build the server's
environment), as ``python bench/bench_claims.py --measure``; ``run()`` calls it and formats the section.
Everything shares this machine's cores (server, load generator, PostgreSQL), so compare the ratio.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "serving"
SERVING_PYTHON = SERVING / ".venv" / "bin" / "python"
REDIS_URL = "redis://127.0.0.1:6379/14"


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def _load(seconds: float, concurrency: int, call) -> tuple[int, list[float], float, int]:  # type: ignore[no-untyped-def]
    """Run ``call(worker_index, n)`` from ``concurrency`` threads for ``seconds``; count, latencies, wall, errors."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    deadline = time.perf_counter() + seconds
    started = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        started.wait()
        n = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ok = call(i, n)
            latencies[i].append(time.perf_counter() - t0)
            errors[i] += 0 if ok else 1
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    started.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for per in latencies for x in per]
    return len(flat), flat, wall, sum(errors)


def measure() -> dict[str, Any]:
    """In the serving environment: build the database, start the API, load it, then the baseline."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import httpx
    from sqlalchemy import create_engine, func, insert, select, text

    from app.services.accounts import create_client
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.oltp.models import Claim, Policy, Product

    customers = _env_int("MO_BENCH_CLAIMS_CUSTOMERS", 500)
    concurrency = _env_int("MO_BENCH_CLAIMS_CONCURRENCY", 8)
    seconds = _env_int("MO_BENCH_CLAIMS_SECONDS", 15)
    workers = _env_int("MO_BENCH_CLAIMS_WORKERS", 2)
    db = os.environ.get("MO_BENCH_CLAIMS_DB", "mo_bench_claims")
    admin_url = os.environ.get("MO_BENCH_CLAIMS_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    url = admin_url.rsplit("/", 1)[0] + f"/{db}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {db}"))
    home = Path(tempfile.mkdtemp(prefix="mo-bench-claims-"))
    server = None
    relay = None
    try:
        engine = make_engine(url)
        migrate(engine)
        generate_world(engine, customers=customers, seed=7)
        with engine.begin() as conn:
            secret = create_client(conn, client_id="bench-app", role="app", rate_limit_per_minute=10**9)
        claims, policies, products = Claim.__table__, Policy.__table__, Product.__table__
        today = datetime.now(UTC).date()
        with engine.connect() as conn:
            rows = conn.execute(
                select(policies.c.policy_no, policies.c.customer_id, policies.c.end_date, products.c.line)
                .select_from(policies.join(products, products.c.id == policies.c.product_id))
                .where(policies.c.status == "in_force", policies.c.start_date < today - timedelta(days=2))
            ).all()  # fmt: skip
        from mo.generator import reference

        bodies = [
            {
                "customer_id": r.customer_id,
                "policy_no": r.policy_no,
                "incident_at": f"{min(r.end_date, today - timedelta(days=1)).isoformat()}T08:00:00Z",
                "incident_type": reference.INCIDENT_TYPES[r.line][0][0],
                "incident_province": "广东省",
                "incident_city": "深圳市",
                "amount_claimed": "100.00",
            }
            for r in rows
        ]
        port = _free_port()
        env = {
            **os.environ,
            "MO_HOME": str(home),
            "MO_PII_KEY": "bench-claims-pii-key-0123456789abcdef",
            "MO_REDIS_PREFIX": "mo_bench_claims",
            "SERVING_SOURCE_URL": url,
            "SERVING_DATABASE_URL": f"sqlite:///{home / 'serving.db'}",
            "SERVING_REDIS_URL": REDIS_URL,
            "PYTHONPATH": f"{SERVING}:{ROOT}",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
            cwd=SERVING, env=env, stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("wb"),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = httpx.post(
            f"{base}/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": "bench-app", "client_secret": secret},
        ).json()["access_token"]
        clients = [
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) for _ in range(concurrency)
        ]
        statuses: dict[int, int] = {}

        def post(i: int, n: int) -> bool:
            body = bodies[(i * 7919 + n) % len(bodies)]
            answer = clients[i].post("/v1/claims", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            return answer.status_code == 201

        # The outbox relay runs beside the API for the whole load, as in production (its own process, the
        # platform's environment, the embedded broker run() started): its lag is each event's time from the
        # write's commit to the broker's acknowledgement (published_at - created_at).
        relay = None
        kafka = os.environ.get("MO_BENCH_CLAIMS_KAFKA")
        if kafka:
            relay = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "python"), "-m", "mo", "outbox", "relay", "--poll-interval", "0.1"],
                cwd=ROOT, env={**env, "MO_SOURCE_URL": url, "MO_KAFKA_BOOTSTRAP": kafka, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL, stderr=(home / "relay.log").open("wb"),
            )  # fmt: skip
        _load(2, concurrency, post)  # warm-up
        if relay is not None:  # the relay is up and has caught up before the measured load starts
            with engine.connect() as conn:
                started = time.monotonic()
                waiting = text("select count(*) from outbox where published_at is null")
                while conn.execute(waiting).scalar_one() and time.monotonic() - started < 120:
                    conn.commit()
                    time.sleep(0.1)
        with engine.connect() as conn:
            claims_before = conn.execute(select(func.count()).select_from(claims)).scalar_one()
            outbox_before = conn.execute(text("select count(*) from outbox")).scalar_one()
        statuses.clear()
        api = _load(seconds, concurrency, post)
        with engine.connect() as conn:
            written = conn.execute(select(func.count()).select_from(claims)).scalar_one() - claims_before
            events = conn.execute(text("select count(*) from outbox")).scalar_one() - outbox_before
        for c in clients:
            c.close()
        _stop(server)
        server = None
        relay_figures = None
        if relay is not None:
            load_end = time.monotonic()
            pending_sql = text("select count(*) from outbox where published_at is null")
            with engine.connect() as conn:
                while conn.execute(pending_sql).scalar_one() and time.monotonic() - load_end < 300:
                    conn.commit()
                    time.sleep(0.05)
                pending = conn.execute(pending_sql).scalar_one()
                drain = time.monotonic() - load_end
                lags = [
                    float(v)
                    for (v,) in conn.execute(
                        text(
                            "select extract(epoch from published_at - created_at) from outbox "
                            "where published_at is not null order by id offset :skip"
                        ),
                        {"skip": outbox_before},
                    )
                ]
            _stop(relay)
            relay = None
            relay_figures = {
                "events": len(lags),
                "pending_after": pending,
                "drain_s": drain,
                "p50_ms": _percentile(lags, 0.50) * 1000,
                "p99_ms": _percentile(lags, 0.99) * 1000,
                "max_ms": max(lags) * 1000 if lags else float("nan"),
            }

        # the same transaction in process: no HTTP, no token, no rate limit
        from app.api.deps import Caller
        from app.api.routes.claims import ClaimSubmission
        from app.core.roles import scopes_of
        from app.core.security import Principal
        from app.services import claims as service
        from app.services.idempotency import run_once

        direct_engine = create_engine(url, pool_size=concurrency, max_overflow=0)
        caller = Caller(
            Principal(subject="client:bench-direct", role="app", scopes=frozenset(map(str, scopes_of("app")))),
            "claims.submit",
            "POST /v1/claims",
        )
        validated = [ClaimSubmission(**b) for b in bodies]

        def direct(i: int, n: int) -> bool:
            body = validated[(i * 7919 + n) % len(validated)]
            values = body.model_dump()
            answer = run_once(
                direct_engine, caller, str(uuid.uuid4()), body.model_dump(mode="json"),
                lambda conn: (201, service.submit(conn, caller, values)),
            )  # fmt: skip
            return answer.status_code == 201

        _load(1, concurrency, direct)
        in_process = _load(seconds, concurrency, direct)
        direct_engine.dispose()

        bare_engine = create_engine(url, pool_size=concurrency, max_overflow=0)
        ids = iter(range(10**14, 10**15))  # above the generator's counters, below the API's block
        lock = threading.Lock()
        policy_ids = {}
        with bare_engine.connect() as conn:
            for pid, no in conn.execute(select(policies.c.id, policies.c.policy_no)):
                policy_ids[no] = pid

        def bare(i: int, n: int) -> bool:
            body = bodies[(i * 7919 + n) % len(bodies)]
            with lock:
                claim_id = next(ids)
            now = datetime.now(UTC).replace(tzinfo=None)
            with bare_engine.begin() as conn:
                conn.execute(
                    insert(claims).values(
                        id=claim_id, claim_no=f"CB{claim_id}", policy_id=policy_ids[body["policy_no"]],
                        customer_id=body["customer_id"], incident_at=now, incident_province="广东省",
                        incident_city="深圳市", incident_type=body["incident_type"], reported_at=now,
                        amount_claimed=100, status="submitted", submitted_at=now, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            return True

        _load(1, concurrency, bare)
        baseline = _load(seconds, concurrency, bare)
        bare_engine.dispose()
        engine.dispose()
        count, lat, wall, errors = api
        bcount, blat, bwall, _ = baseline
        dcount, dlat, dwall, derrors = in_process
        return {
            "customers": customers,
            "concurrency": concurrency,
            "seconds": seconds,
            "workers": workers,
            "api": {
                "requests": count,
                "errors": errors,
                "statuses": statuses,
                "claims_written": written,
                "events_written": events,
                "per_second": written / wall,
                "p50_ms": _percentile(lat, 0.50) * 1000,
                "p99_ms": _percentile(lat, 0.99) * 1000,
            },
            "direct": {
                "writes": dcount,
                "errors": derrors,
                "per_second": dcount / dwall,
                "p50_ms": _percentile(dlat, 0.50) * 1000,
                "p99_ms": _percentile(dlat, 0.99) * 1000,
            },
            "relay": relay_figures,
            "bare": {
                "writes": bcount,
                "per_second": bcount / bwall,
                "p50_ms": _percentile(blat, 0.50) * 1000,
                "p99_ms": _percentile(blat, 0.99) * 1000,
            },
        }
    finally:
        if server is not None:
            _stop(server)
        if relay is not None:
            _stop(relay)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        admin.dispose()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def run() -> str:
    if not SERVING_PYTHON.exists():
        raise SystemExit("bench claims: serving/.venv is missing; run `make serving-env` first")
    from mo.events.broker import start_embedded

    broker_dir = Path(tempfile.mkdtemp(prefix="mo-bench-claims-broker-"))
    broker = start_embedded(port=_free_port(), log_dir=broker_dir)
    try:
        done = subprocess.run(
            [str(SERVING_PYTHON), str(Path(__file__).resolve()), "--measure"],
            cwd=SERVING,
            env={**os.environ, "PYTHONPATH": f"{SERVING}:{ROOT}", "MO_BENCH_CLAIMS_KAFKA": broker.bootstrap},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        broker.stop()
        import shutil

        shutil.rmtree(broker_dir, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"bench claims failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    api, direct, bare = figures["api"], figures["direct"], figures["bare"]
    ratio = api["per_second"] / bare["per_second"] if bare["per_second"] else float("nan")
    return "\n".join(
        [
            "## Claim submission through the API (PostgreSQL, outbox and audit)",
            "",
            f"`POST /v1/claims` over HTTP, {figures['workers']} uvicorn workers, {figures['concurrency']} concurrent "
            f"writers for {figures['seconds']} s, a world of {figures['customers']:,} customers; each accepted claim "
            "is one transaction with the claims row, its status history, the audit entry, the `claim_filed` outbox "
            "event and the idempotency record. The same transaction is then run in process by the same number of "
            "threads (what the HTTP layer costs), and the baseline inserts the claims row alone over SQLAlchemy, "
            "one transaction each. Server, load generator and PostgreSQL share this machine's cores.",
            "",
            "| path | writes | writes/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
            f"| API: claim + history + audit + outbox + idempotency | {api['claims_written']:,} | "
            f"{api['per_second']:,.0f} | {api['p50_ms']:.1f} | {api['p99_ms']:.1f} |",
            f"| the same transaction in process (no HTTP, token or rate limit) | {direct['writes']:,} | "
            f"{direct['per_second']:,.0f} | {direct['p50_ms']:.1f} | {direct['p99_ms']:.1f} |",
            f"| baseline: bare claims insert | {bare['writes']:,} | {bare['per_second']:,.0f} | "
            f"{bare['p50_ms']:.1f} | {bare['p99_ms']:.1f} |",
            "",
            f"The API reaches {ratio:.0%} of the bare insert rate and "
            f"{api['per_second'] / direct['per_second']:.0%} of the in-process transaction's. "
            f"Answers: {api['statuses']} "
            f"({api['errors']} not 201); outbox events written: {api['events_written']:,} "
            f"for {api['claims_written']:,} claims.",
            *_relay_lines(figures.get("relay")),
        ]
    )


def _relay_lines(relay: dict[str, Any] | None) -> list[str]:
    if not relay:
        return []
    return [
        "",
        "Outbox relay lag: `mo outbox relay` (one process, the platform's environment, 0.1 s poll) ran beside the "
        "API for the whole load and published to the embedded Kafka-protocol broker on this machine. Lag is each "
        "event's time from the write's commit (`created_at`) to the broker's acknowledgement (`published_at`).",
        "",
        "| events relayed | lag p50 ms | lag p99 ms | lag max ms | drained after the load | left pending |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {relay['events']:,} | {relay['p50_ms']:.0f} | {relay['p99_ms']:.0f} | {relay['max_ms']:.0f} | "
        f"{relay['drain_s']:.1f} s | {relay['pending_after']:,} |",
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--measure"]:
        print(json.dumps(measure()))
    else:
        print(run())
