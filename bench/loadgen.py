"""HTTP load generator for the serving benches: `wrk` (keep-alive connections, C event loop) driven by a Lua
script that walks one fixed file of random customer ids, so every server under test gets the same request
sequence at the same concurrency.

wrk was chosen over a Python client because the client shares the machine's two cores with the servers: a
Python client needs about as much CPU per request as the server it measures, wrk a small fraction of it.
Each wrk thread starts at its own offset in the id file and walks it in order (wrapping around). Latency is
wrk's per-request histogram (microsecond resolution); a non-2xx answer, a timeout or a socket error counts as
an error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# {{PLACEHOLDERS}} are filled by _script(); %d etc. are Lua's own format directives.
_LUA = r"""
local ids = {}
for line in io.lines("{{IDS}}") do ids[#ids + 1] = line end
local counter = 0
local threads = {}

function setup(thread)
  thread:set("offset", #threads * math.floor(#ids / {{THREADS}}))
  table.insert(threads, thread)
end

function init(args)
  position = tonumber(offset) or 0
  method = "{{METHOD}}"
  headers = {}
  {{HEADERS}}
end

function request()
  position = position + 1
  if position > #ids then position = 1 end
  local id = ids[position]
  {{REQUEST}}
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class Target:
    """One server under test: a GET of ``path_template`` or a POST of ``body_template`` (``{id}`` replaced)."""

    name: str
    url: str  # scheme, host and port
    path_template: str
    method: str = "GET"
    body_template: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    target: str
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: `make bench-env-feast` installs it (apt-get install -y wrk)")
    return path


def write_ids(path: Path, *, customers: int, count: int, seed: int) -> Path:
    """``count`` customer ids drawn uniformly from 1..customers, one per line (the shared request sequence)."""
    ids = np.random.default_rng(seed).integers(1, customers + 1, count)
    path.write_text("\n".join(map(str, ids)) + "\n", encoding="ascii")
    return path


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for these ASCII texts


def _script(target: Target, ids: Path, threads: int) -> str:
    headers = [f"headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in target.headers]
    path_parts = target.path_template.split("{id}")
    path_expr = " .. id .. ".join(_lua_string(p) for p in path_parts)
    if target.body_template is not None:
        body_parts = target.body_template.split("{id}")
        body_expr = " .. id .. ".join(_lua_string(p) for p in body_parts)
        call = f"return wrk.format(method, {path_expr}, headers, {body_expr})"
    else:
        call = f"return wrk.format(method, {path_expr}, headers)"
    return (
        _LUA.replace("{{IDS}}", str(ids))
        .replace("{{THREADS}}", str(threads))
        .replace("{{METHOD}}", target.method)
        .replace("{{HEADERS}}", "\n  ".join(headers))
        .replace("{{REQUEST}}", call)
    )


def run(
    target: Target, *, ids: Path, connections: int, seconds: float, threads: int = 1, timeout_s: float = 2.0
) -> Result:
    """Run wrk against ``target`` for ``seconds`` with ``connections`` keep-alive connections."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="mo-loadgen-", delete=False) as script:
        script.write(_script(target, ids, threads))
    try:
        proc = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds:g}s",
                f"--timeout={timeout_s:g}s",
                "-s",
                script.name,
                target.url,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
    finally:
        Path(script.name).unlink()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk against {target.name} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        target=target.name,
        connections=connections,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
