"""Profile read over HTTP: the serving API's ``GET /v1/customers/{customer_id}`` against Feast's Python feature
server (``feast serve``, ``POST /get-online-features``) serving the same profiles from the same Redis.

Both stores hold the same ``MO_BENCH_READ_PROFILES`` synthetic profiles (default 1,000,000: every contract column
and the segment list, the publish bench's generator), in the machine's Redis (``MO_BENCH_READ_REDIS_URL``,
default ``redis://127.0.0.1:6379/11``):

- the platform's layout, published by ``publish_batches`` (the refresh recorded in a SQLite serving store whose
  tables stay empty, the Redis keys written under the key prefix ``mo_bench_read``, the pointer switched);
- Feast's layout (a hash per customer, one field per feature), loaded by ``feast apply`` and then Feast's
  ``write_to_online_store`` of the same rows from a Parquet file in chunks (bench/feast/load_online.py;
  bench/feast/feature_repo, project ``mo_bench_feast``).

Both servers run with ``MO_BENCH_READ_WORKERS`` worker processes (default 2, the machine's cores), access logs
off (the API still writes its own JSON line per request, as in production); Feast's gunicorn does not recycle
workers (``--max-requests 0``: its default restarts a worker every 1,000 requests, which would cost Feast
throughput). One load generator (bench/loadgen.py: wrk, keep-alive, the same
file of random customer ids) runs against each in turn for ``MO_BENCH_READ_SECONDS`` (default 15) at each
concurrency in ``MO_BENCH_READ_CONNECTIONS`` (default ``1,8,32``), ``MO_BENCH_READ_ROUNDS`` rounds (default 2)
alternating which server goes first, after a warm-up of each. Before the load, a sample of customers is read
from both and compared field by field, so both serve the same profiles.

The API is called as an app would: a bearer token from ``POST /v1/auth/token`` (client credentials), sent on
every request; Feast runs without authentication (its default).

``MO_BENCH_READ_KEEP=1`` keeps the loaded data (and its files under bench/out/profile_read) for the next run,
which reuses it when the size matches; otherwise the bench deletes its keys at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import loadgen

ROOT = Path(__file__).resolve().parent.parent
FEAST_VENV = ROOT / "bench" / "feast" / ".venv"
FEAST_REPO = ROOT / "bench" / "feast" / "feature_repo"
SERVING = ROOT / "serving"
OUT = Path(os.environ.get("MO_BENCH_READ_DIR", ROOT / "bench" / "out" / "profile_read"))
PREFIX = "mo_bench_read"
FEAST_PROJECT = "mo_bench_feast"
SERVING_DB = OUT / "serving.db"  # the serving store the refresh is recorded in
API_HOME = OUT / "api_home"
CHECKED = 50  # customers compared between the two servers before the load
MEMORY_SAMPLE = 2_000
UNLINK_BATCH = 1_000


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _redis_url() -> str:
    return os.environ.get("MO_BENCH_READ_REDIS_URL", "redis://127.0.0.1:6379/11")


def _feast_connection(url: str) -> str:
    """Feast's ``host:port,db=N`` form of a redis:// URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    db = parts.path.strip("/") or "0"
    return f"{parts.hostname}:{parts.port or 6379},db={db}"


def _feast_env() -> dict[str, str]:
    return {
        **os.environ,
        "MO_BENCH_FEAST_DIR": str(OUT),
        "MO_BENCH_FEAST_REDIS": _feast_connection(_redis_url()),
    }


# --- data ---------------------------------------------------------------------------------------------------


def _feast_table(batch: pa.RecordBatch) -> pa.Table:
    """The same row for Feast's Parquet source: dates as ISO text (Feast has no date type), plus the event
    timestamp Feast's materialisation needs (the refresh time)."""
    columns, names = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        columns.append(column.cast(pa.string()) if pa.types.is_date(column.type) else column)
        names.append(name)
    columns.append(batch.column("refreshed_at"))
    names.append("event_timestamp")
    return pa.Table.from_arrays(columns, names=names)


def _delete(client: Any, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=UNLINK_BATCH):
        batch.append(key)
        if len(batch) == UNLINK_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def _clean(client: Any) -> None:
    _delete(client, f"{PREFIX}:*")
    _delete(client, f"*{FEAST_PROJECT}")  # Feast's keys: the serialised entity key, then the project name


def _bytes_per_key(client: Any, keys: list[Any]) -> float:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    sizes = [s for s in pipe.execute() if s is not None]
    if len(sizes) != len(keys):
        raise RuntimeError(f"memory sample: {len(keys) - len(sizes)} of {len(keys)} sampled keys are missing")
    return float(np.mean(sizes))


def _feast_keys(client: Any, count: int) -> list[bytes]:
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"*{FEAST_PROJECT}", count=UNLINK_BATCH):
        keys.append(key)
        if len(keys) == count:
            break
    return keys


def _feast_load(parquet: Path) -> None:
    """``feast apply``, then bench/feast/load_online.py in one process per core (``feast materialize`` of 1M
    profiles needs more memory than this machine has: see that file)."""
    proc = subprocess.run(
        [str(FEAST_VENV / "bin" / "feast"), "apply"],
        cwd=FEAST_REPO,
        env=_feast_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"feast apply failed: {proc.stderr[-2000:]}")
    parts = os.cpu_count() or 1
    loaders = [
        subprocess.Popen(
            [
                str(FEAST_VENV / "bin" / "python"),
                str(FEAST_REPO.parent / "load_online.py"),
                str(FEAST_REPO),
                str(parquet),
                "customer_profile",
                str(part),
                str(parts),
            ],
            cwd=FEAST_REPO,
            env=_feast_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in range(parts)
    ]
    failures = []
    for loader in loaders:
        _, err = loader.communicate()
        if loader.returncode != 0:
            failures.append(err[-2000:])
    if failures:
        raise RuntimeError("loading Feast's online store failed: " + "\n".join(failures))


def _load(client: Any, n: int) -> dict[str, Any]:
    """Publish the profiles the platform's way (``publish_batches``: a refresh recorded in a serving store, its
    Redis keys written, the pointer switched) and load the same rows into Feast."""
    from bench.bench_preview import AS_OF
    from bench.bench_publish import World
    from mo.serving_store import publish_batches
    from mo.serving_store.redis_store import ProfileKeys
    from mo.serving_store.store import SqlServingStore

    OUT.mkdir(parents=True, exist_ok=True)
    _clean(client)
    (OUT / "loaded.json").unlink(missing_ok=True)
    SERVING_DB.unlink(missing_ok=True)
    (OUT / "registry.db").unlink(missing_ok=True)  # a fresh Feast registry: no state left by an earlier run
    parquet = OUT / "profiles.parquet"
    writer: pq.ParquetWriter | None = None
    generate_s = 0.0

    def tee() -> Iterator[pa.RecordBatch]:
        """Each generated batch to the Parquet file for Feast, then on to the platform's Redis writer."""
        nonlocal writer, generate_s
        batches = World(n).redis_profiles()
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                return
            table = _feast_table(batch)
            if writer is None:
                writer = pq.ParquetWriter(parquet, table.schema)
            writer.write_table(table)
            generate_s += time.perf_counter() - t0
            yield batch

    store = SqlServingStore(f"sqlite:///{SERVING_DB}")
    try:
        # Profiles go to Redis only: the profile read never touches the database copy (left empty here).
        result = publish_batches(
            store,
            as_of=AS_OF,
            tables={},
            redis_profiles=tee(),
            redis_client=client,
            redis_prefix=PREFIX,
            published_by="bench_profile_read",
        )
    finally:
        store.dispose()
    assert writer is not None
    writer.close()
    if result.redis_keys != n:
        raise RuntimeError(f"published {result.redis_keys} profiles, expected {n}")
    publish_s = result.seconds["redis"] + result.seconds["swap"] - generate_s

    t0 = time.perf_counter()
    _feast_load(parquet)
    feast_s = time.perf_counter() - t0

    keys = ProfileKeys(PREFIX)
    rng = np.random.default_rng(3)
    sample = rng.integers(1, n + 1, min(MEMORY_SAMPLE, n))
    ours_bytes = _bytes_per_key(client, [keys.profile(result.refresh_id, int(i)) for i in sample])
    feast_bytes = _bytes_per_key(client, _feast_keys(client, min(MEMORY_SAMPLE, n)))
    figures = {
        "n": n,
        "refresh_id": result.refresh_id,
        "generate_s": round(generate_s, 1),
        "publish_s": round(publish_s, 1),
        "feast_s": round(feast_s, 1),
        "ours_bytes": round(ours_bytes),
        "feast_bytes": round(feast_bytes),
    }
    (OUT / "loaded.json").write_text(json.dumps(figures), encoding="utf-8")
    return figures


def _reuse(client: Any, n: int) -> dict[str, float] | None:
    """The figures of a kept earlier load of the same size, if its keys are all still there."""
    from mo.serving_store.redis_store import ProfileKeys, current_refresh

    marker = OUT / "loaded.json"
    if not marker.exists():
        return None
    figures = json.loads(marker.read_text(encoding="utf-8"))
    keys = ProfileKeys(PREFIX)
    refresh_id = figures.get("refresh_id")
    if figures.get("n") != n or current_refresh(client, prefix=PREFIX) != refresh_id or not SERVING_DB.exists():
        return None
    if not client.exists(keys.profile(refresh_id, n)) or len(_feast_keys(client, 10)) < min(10, n):
        return None
    return figures


# --- servers ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextmanager
def _server(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], health_url: str) -> Iterator[int]:
    """A server in its own process group (all its workers stopped together), up once ``health_url`` answers;
    yields its pid."""
    log = OUT / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(health_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer {health_url} within 120s") from None
                time.sleep(0.5)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _feast_server(port: int, workers: int):
    argv = [
        str(FEAST_VENV / "bin" / "feast"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--max-requests",
        "0",
        "--registry_ttl_sec",
        "3600",
    ]
    return _server("feast", argv, cwd=FEAST_REPO, env=_feast_env(), health_url=f"http://127.0.0.1:{port}/health")


FEAST_BODY = '{"feature_service": "customer_profile_service", "entities": {"customer_id": [{id}]}}'


def _feast_profile(base: str, customer_id: int) -> dict[str, Any]:
    body = FEAST_BODY.replace("{id}", str(customer_id)).encode()
    answer = _http("POST", f"{base}/get-online-features", data=body, headers={"Content-Type": "application/json"})
    names = answer["metadata"]["feature_names"]
    return {name: result["values"][0] for name, result in zip(names, answer["results"], strict=True)}


# --- the serving API ---------------------------------------------------------------------------------------

# Run in the serving environment: the source database migrated by the platform's migrations, and one app
# client registered through the API's own account service (its limit high enough not to refuse the load).
_API_SETUP = """
import sys
from mo.oltp.db import make_engine, migrate
from app.services.accounts import create_client
engine = make_engine(sys.argv[1])
migrate(engine)
with engine.begin() as conn:
    print(create_client(conn, client_id="bench-app", role="app", rate_limit_per_minute=10**9))
engine.dispose()
"""
CLIENT_ID = "bench-app"


def _api_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{SERVING}",
        "MO_HOME": str(API_HOME),
        "MO_PII_KEY": os.environ.get("MO_PII_KEY", "bench-key"),
        "MO_REDIS_PREFIX": PREFIX,
        "SERVING_SECRET_KEY": API_SECRET,
        "SERVING_SOURCE_URL": f"sqlite:///{API_HOME / 'source.db'}",
        "SERVING_DATABASE_URL": f"sqlite:///{SERVING_DB}",
        "SERVING_REDIS_URL": _redis_url(),
        "SERVING_ACCESS_TOKEN_MINUTES": "240",
    }


API_SECRET = os.urandom(24).hex()


def _api_client() -> str:
    """A fresh source database with the bench's app client; returns the client's secret."""
    API_HOME.mkdir(parents=True, exist_ok=True)
    (API_HOME / "source.db").unlink(missing_ok=True)
    proc = subprocess.run(
        [str(SERVING / ".venv" / "bin" / "python"), "-c", _API_SETUP, f"sqlite:///{API_HOME / 'source.db'}"],
        cwd=SERVING,
        env=_api_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"setting up the API's source database failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _our_server(port: int, workers: int):
    argv = [
        str(SERVING / ".venv" / "bin" / "uvicorn"),
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
    ]
    return _server("serving", argv, cwd=SERVING, env=_api_env(), health_url=f"http://127.0.0.1:{port}/health")


def _our_token(base: str, secret: str) -> str:
    from urllib.parse import urlencode

    form = urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": secret})
    answer = _http(
        "POST",
        f"{base}/v1/auth/token",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return answer["access_token"]


def _our_profile(base: str, token: str, customer_id: int) -> dict[str, Any]:
    return _http("GET", f"{base}/v1/customers/{customer_id}", headers={"Authorization": f"Bearer {token}"})


# --- measurement --------------------------------------------------------------------------------------------


NULL_TIMESTAMP = -(2**63)  # how Feast answers a null UnixTimestamp


def _comparable(name: str, ours: Any, feast: Any) -> tuple[Any, Any]:
    """Our JSON value and Feast's in one form: timestamps as epoch seconds, the custom tags parsed."""
    if name in ("last_active_at", "refreshed_at"):
        from datetime import datetime

        seconds = None if ours is None else int(datetime.fromisoformat(ours.replace("Z", "+00:00")).timestamp())
        return seconds, None if feast == NULL_TIMESTAMP else feast
    if name == "custom_tags":
        return ours, json.loads(feast)
    return ours, feast


def _same_profiles(feast_base: str, our_base: str, token: str, ids: list[int]) -> None:
    """Both servers answer each sampled customer with the same values, field by field."""
    for customer_id in ids:
        # The API leaves out the join tokens (phone_token, id_number_token: pseudonymous, still personal data,
        # see routes/customers.py); Feast serves every feature of its service, tokens included.
        feast = {k: v for k, v in _feast_profile(feast_base, customer_id).items() if not k.endswith("_token")}
        ours = _our_profile(our_base, token, customer_id)
        fields = dict(ours["profile"])
        fields["segments"] = ",".join(ours["segments"])
        fields.setdefault("customer_id", ours["customer_id"])
        if set(feast) != set(fields):
            raise RuntimeError(f"customer {customer_id}: Feast has {sorted(set(feast) ^ set(fields))} differently")
        for name, raw in feast.items():
            mine, value = _comparable(name, fields[name], raw)
            if mine != value and not (isinstance(mine, float) and abs(mine - value) < 1e-9):
                raise RuntimeError(f"customer {customer_id}: {name} is {mine!r} here and {value!r} in Feast")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server: its master process and every worker."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _measure(target: loadgen.Target, pid: int, ids: Path, connections: int, seconds: float) -> Measured:
    before = _cpu_seconds(pid)
    result = loadgen.run(target, ids=ids, connections=connections, seconds=seconds)
    return Measured(result, 1000 * (_cpu_seconds(pid) - before) / max(result.requests, 1))


@dataclass(frozen=True)
class Measured:
    result: loadgen.Result
    cpu_ms: float  # server CPU per request answered


def _row(measured: Measured, baseline: Measured | None) -> str:
    result = measured.result
    if baseline is None:
        ratio, cpu_ratio = "1.00x (baseline)", "1.00x"
    else:
        ratio = f"{result.throughput / baseline.result.throughput:.2f}x"
        cpu_ratio = f"{measured.cpu_ms / baseline.cpu_ms:.2f}x"
    return (
        f"| {result.connections} | {result.target} | {result.throughput:,.0f} | {ratio} | {result.p50_ms:.1f} | "
        f"{result.p90_ms:.1f} | {result.p99_ms:.1f} | {measured.cpu_ms:.2f} ({cpu_ratio}) | "
        f"{result.errors:,} / {result.requests:,} |"
    )


def run() -> str:
    import redis

    n = _env_int("MO_BENCH_READ_PROFILES", 1_000_000)
    workers = _env_int("MO_BENCH_READ_WORKERS", 2)
    seconds = float(os.environ.get("MO_BENCH_READ_SECONDS", "15"))
    rounds = _env_int("MO_BENCH_READ_ROUNDS", 2)
    levels = [int(c) for c in os.environ.get("MO_BENCH_READ_CONNECTIONS", "1,8,32").split(",") if c.strip()]
    keep = os.environ.get("MO_BENCH_READ_KEEP") == "1"
    loadgen.require_wrk()
    if not (FEAST_VENV / "bin" / "feast").exists():
        raise RuntimeError("no Feast environment: run `make bench-env-feast`")
    OUT.mkdir(parents=True, exist_ok=True)

    client = redis.Redis.from_url(_redis_url())
    loaded = _reuse(client, n) if keep else None
    reused = loaded is not None
    if loaded is None:
        loaded = _load(client, n)
    ids = loadgen.write_ids(OUT / "ids.txt", customers=n, count=200_000, seed=17)
    secret = _api_client()
    feast_port, our_port = _free_port(), _free_port()
    feast_base, our_base = f"http://127.0.0.1:{feast_port}", f"http://127.0.0.1:{our_port}"
    loads: list[tuple[float, float, float]] = []
    results: list[tuple[int, int, Measured, Measured]] = []
    try:
        with _feast_server(feast_port, workers) as feast_pid, _our_server(our_port, workers) as our_pid:
            token = _our_token(our_base, secret)
            rng = np.random.default_rng(23)
            _same_profiles(feast_base, our_base, token, [int(i) for i in rng.integers(1, n + 1, CHECKED)])
            feast = loadgen.Target(
                "Feast feature server",
                feast_base,
                "/get-online-features",
                method="POST",
                body_template=FEAST_BODY,
                headers=(("Content-Type", "application/json"),),
            )
            ours = loadgen.Target(
                "serving API",
                our_base,
                "/v1/customers/{id}",
                headers=(("Authorization", f"Bearer {token}"),),
            )
            for target in (feast, ours):  # warm-up: connections, imports, Redis pools of every worker
                loadgen.run(target, ids=ids, connections=max(levels), seconds=3)
            for connections in levels:
                for round_no in range(rounds):
                    order = (feast, ours) if round_no % 2 == 0 else (ours, feast)
                    loads.append(os.getloadavg())
                    pids = {feast.name: feast_pid, ours.name: our_pid}
                    measured = {t.name: _measure(t, pids[t.name], ids, connections, seconds) for t in order}
                    results.append((connections, round_no, measured[feast.name], measured[ours.name]))
            loads.append(os.getloadavg())
    finally:
        if not keep:
            _clean(client)
            (OUT / "loaded.json").unlink(missing_ok=True)
        client.close()

    return _report(n, workers, seconds, rounds, loaded, reused, loads, results)


def _report(
    n: int,
    workers: int,
    seconds: float,
    rounds: int,
    loaded: dict[str, float],
    reused: bool,
    loads: list[tuple[float, float, float]],
    results: list[tuple[int, int, Measured, Measured]],
) -> str:
    lines = [
        "## Profile read over HTTP: serving API against Feast's feature server",
        "",
        f"{n:,} published profiles (every contract column and the segment list) in the machine's Redis, read one "
        f"customer per request, uniformly random ids. Our `GET /v1/customers/{{id}}` (uvicorn, {workers} workers, "
        f"bearer token on every request) against Feast 0.67's Python feature server (`feast serve`, {workers} "
        "gunicorn/uvicorn workers, `POST /get-online-features` with the feature service of every column, no auth) "
        f"on the same Redis; one load generator (wrk, keep-alive, same id sequence), {seconds:g}s per run, "
        f"{rounds} rounds per concurrency alternating who goes first. Ratios: against Feast in the same round. "
        "Server CPU per request (user + system time of the server's processes over the run, divided by the "
        "requests answered) depends far less on what else the shared machine is doing than req/s and latency do.",
        "",
        "| connections | server | req/s | x Feast | p50 ms | p90 ms | p99 ms | server CPU ms/request (x Feast) "
        "| errors / requests |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, _, feast, ours in results:
        lines.append(_row(feast, None))
        lines.append(_row(ours, feast))
    load_text = ", ".join(f"{one:.1f}" for one, _, _ in loads)
    source = "kept from an earlier run (MO_BENCH_READ_KEEP=1); load figures from it" if reused else "this run"
    lines += [
        "",
        f"- Machine load average (1 min) before each round and after the last: {load_text} (2 cores, shared with "
        "other sessions).",
        f"- Load ({source}): generating the profiles {loaded['generate_s']:.0f}s; the platform's publish of them "
        f"to Redis (`publish_batches`: keys written, pointer switched) {loaded['publish_s']:.0f}s; Feast "
        f"(`feast apply`, then `write_to_online_store` of the same rows in 20,000-row chunks, one process per core) "
        f"{loaded['feast_s']:.0f}s ({loaded['feast_s'] / max(loaded['publish_s'], 0.1):.0f}x). `feast materialize` "
        "of the whole 1M-row source was killed by the kernel at 22 GB (this machine has 23 GB).",
        f"- Redis memory per profile (`MEMORY USAGE` of {MEMORY_SAMPLE:,} sampled keys): packed profile "
        f"{loaded['ours_bytes']:,.0f} bytes, Feast's hash {loaded['feast_bytes']:,.0f} bytes "
        f"({loaded['feast_bytes'] / loaded['ours_bytes']:.1f}x), i.e. about "
        f"{loaded['ours_bytes'] * n / 2**20:,.0f} MB against {loaded['feast_bytes'] * n / 2**20:,.0f} MB for {n:,}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m bench.bench_profile_read` runs this section alone, printing it
    print(run())
    sys.exit(0)
