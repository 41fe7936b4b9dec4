"""Tracked links: ``GET /v1/t/{token}`` records the click and redirects.

The token is signed by the platform (mo.channels.links) and carries the message id, the target URL and an
expiry; or, in an SMS, it is an 8-character short code the dispatcher stored with them (``short_links``): an
unknown code is answered 404 like a message never sent. A tampered, malformed or expired token, or a target off
the allow-list, is answered 400 naming the problem; a token for a message that was never sent, 404. Either way
nothing is recorded but the audit entry.
A good one appends ``opened`` (when missing) and ``clicked`` to the message's deliveries and answers 302.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from app.api.deps import SettingsDep, SourceDep
from app.core.errors import ApiError, problem_responses
from app.services import audit
from mo.channels import links, receipts

router = APIRouter(prefix="/v1/t", tags=["tracking"])
Token = Annotated[
    str,
    Path(min_length=3, max_length=links.MAX_TOKEN, pattern=r"^[A-Za-z0-9_.-]+$",
         examples=["eyJtIjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIn0.c2lnbmF0dXJl"]),
]  # fmt: skip


def _refused(source: Engine, request: Request, status: int, detail: str, message_id: str | None = None) -> None:
    audit.record_alone(
        source, principal=None, action="tracking.click", resource=f"GET {request.url.path}"[:200], status=status,
        detail=f"{detail}{f' (message {message_id})' if message_id else ''}",
    )  # fmt: skip


@router.get(
    "/{token}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "Redirect to the link's target"}, **problem_responses(400, 404, 422)},
    summary="Follow a tracked link (signed token; no bearer token)",
)
async def follow(token: Token, request: Request, settings: SettingsDep, source: SourceDep) -> RedirectResponse:
    request.state.action = "tracking.click"

    def short() -> tuple[str, str] | None:
        with source.connect() as conn:
            return links.read_short(conn, token, settings.platform)

    try:
        if links.is_short_code(token):
            found = await run_in_threadpool(short)
            if found is None:
                await run_in_threadpool(_refused, source, request, 404, "unknown short link")
                raise ApiError(404, "tracked link: no such short link", errors=[("/path/token", "unknown link")])
            message_id, url = found
        else:
            message_id, url = links.read_token(token, settings.platform)
    except links.LinkError as exc:
        await run_in_threadpool(_refused, source, request, 400, f"{exc.problem}: {exc}")
        raise ApiError(400, f"tracked link refused: {exc}", kind=f"link-{exc.problem.replace('_', '-')}",
                       errors=[("/path/token", exc.problem)]) from None  # fmt: skip

    def click() -> bool:
        with source.begin() as conn:
            return receipts.record_click(conn, message_id) is not None

    if not await run_in_threadpool(click):
        await run_in_threadpool(_refused, source, request, 404, "message never sent", message_id)
        raise ApiError(404, f"tracked link names message {message_id}, which was never sent",
                       errors=[("/path/token", "unknown message")])  # fmt: skip
    return RedirectResponse(url, status_code=302)
