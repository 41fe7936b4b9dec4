"""ASGI middleware (plain ASGI, not BaseHTTPMiddleware: it costs nothing on the hot read path).

- request id: taken from ``X-Request-ID`` if sane, else new; set for logs and returned on every response;
- body limit: a request body over ``max_body_bytes`` (``max_upload_bytes`` for uploads) is refused with
  413 before the route runs;
- one JSON log line and Prometheus metrics per request;
- a refused write (any 4xx/5xx on a method that writes) and any refused read (401/403) is audited on its
  own, so an attempt leaves a trace although nothing was written.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import REQUEST_ID_HEADER, actor_var, new_request_id, request_id_var
from app.core.errors import PROBLEM_BASE, PROBLEM_JSON, TITLES

log = logging.getLogger("app.request")

REQUESTS = Counter("mo_api_requests_total", "Requests by route, method and status", ["route", "method", "status"])
LATENCY = Histogram(
    "mo_api_request_seconds",
    "Request latency by route",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class OutboxCollector:
    """The outbox's pending events and the oldest one's age, read from the source database at scrape time."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from mo.oltp.outbox import outbox_status

        try:
            status = outbox_status(self.engine())
        except Exception:  # a scrape must not fail with the database; the gauges are absent instead
            log.warning("outbox metrics unavailable: source database not answering")
            return
        yield GaugeMetricFamily("mo_outbox_pending_events", "API events waiting for the relay", value=status.pending)
        yield GaugeMetricFamily(
            "mo_outbox_lag_seconds", "Age of the oldest event waiting for the relay", value=status.lag_seconds
        )


class BodyTooLarge(Exception):
    pass


class RequestContext:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int, audit_refusal: Any) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.audit_refusal = audit_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = new_request_id(headers.get(REQUEST_ID_HEADER))
        request_id_var.set(request_id)
        actor_var.set(None)
        scope.setdefault("state", {})
        started = time.perf_counter()
        status_holder = {"status": 500}
        is_upload = headers.get("content-type", "").startswith("multipart/")
        # An upload's body is the file plus its multipart framing and form fields: the route checks the file
        # itself against max_upload_bytes (naming the field); this stops only bodies far past that.
        limit = self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES if is_upload else self.max_body_bytes

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, request_id, limit)
            status_holder["status"] = 413
            self._finish(scope, started, 413)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            status_holder["status"] = 413
            await self._too_large(scope, send, request_id, limit)
        self._finish(scope, started, status_holder["status"])
        status = status_holder["status"]
        if (scope["method"] in WRITE_METHODS and status >= 400) or status in (401, 403):
            state = scope.get("state", {})
            if not state.get("audited"):
                await anyio.to_thread.run_sync(self.audit_refusal, scope, status)

    async def _too_large(self, scope: Scope, send: Send, request_id: str, limit: int) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "request-too-large",
                "title": TITLES[413],
                "status": 413,
                "detail": f"request body over the limit of {limit} bytes",
                "instance": scope["path"],
                "request_id": request_id,
                "errors": [],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _finish(self, scope: Scope, started: float, status: int) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        REQUESTS.labels(template, scope["method"], str(status)).inc()
        LATENCY.labels(template, scope["method"]).observe(elapsed)
        log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={"fields": {"status": status, "duration_ms": round(elapsed * 1000, 2), "route": template}},
        )
