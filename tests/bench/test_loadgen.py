"""The benches' load generator (bench/loadgen.py) against a small local HTTP server: every request follows the
id file, carries the target's headers and body, and a non-2xx answer is counted as an error."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import loadgen

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make bench-env-feast`")


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: list[tuple[str, str, str, bytes]] = []
    status = 200

    def _answer(self, body: bytes) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        payload = b'{"ok": true}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "status": 200})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_get_follows_the_id_file_with_headers(server, tmp_path: Path) -> None:
    url, handler = server
    ids = loadgen.write_ids(tmp_path / "ids.txt", customers=50, count=200, seed=1)
    target = loadgen.Target("t", url, "/v1/customers/{id}", headers=(("Authorization", "Bearer abc"),))

    result = loadgen.run(target, ids=ids, connections=1, seconds=1)

    expected = ids.read_text().split()
    assert result.requests > 0 and result.errors == 0
    paths = [path for _, path, _, _ in handler.seen]
    # one connection, one thread: the requests walk the id file in order (wrk builds one request before the
    # first it sends, so the walk starts at the second id)
    assert paths[:10] == [f"/v1/customers/{i}" for i in expected[1:11]]
    assert all(int(p.rsplit("/", 1)[1]) in range(1, 51) for p in paths)
    assert {auth for _, _, auth, _ in handler.seen} == {"Bearer abc"}
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


def test_post_body_carries_the_id_and_errors_are_counted(server, tmp_path: Path) -> None:
    url, handler = server
    handler.status = 404
    ids = loadgen.write_ids(tmp_path / "ids.txt", customers=1000, count=100, seed=2)
    target = loadgen.Target(
        "t",
        url,
        "/get-online-features",
        method="POST",
        body_template='{"entities": {"customer_id": [{id}]}}',
        headers=(("Content-Type", "application/json"),),
    )

    result = loadgen.run(target, ids=ids, connections=2, seconds=1)

    assert result.requests > 0 and result.errors == result.requests
    first_ids = ids.read_text().split()
    bodies = [json.loads(body) for method, _, _, body in handler.seen if method == "POST"]
    assert bodies and all(len(b["entities"]["customer_id"]) == 1 for b in bodies)
    # two connections on one thread share the walk from the second id on (arrivals may swap neighbours)
    assert {b["entities"]["customer_id"][0] for b in bodies[:10]} <= {int(i) for i in first_ids[1:13]}
