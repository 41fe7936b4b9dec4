"""Tracked links: a signed token carrying (message id, target URL, expiry), redeemed by the serving API's
``GET /v1/t/{token}``, which records ``clicked`` and redirects.

Token: ``base64url(json{"m","u","e"}) "." base64url(HMAC-SHA256(secret, first part))``. Only hosts on the
allow-list (``MO_CHANNEL_LINK_ALLOWED_HOSTS``) are accepted, when the link is made and when it is followed, so a
token can never turn the API into an open redirect.

SMS short links: a provider caps a template variable at 35 characters (schemas/channels/templates.yaml), far too
short for a signed token. An SMS link is ``<MO_CHANNEL_LINK_BASE_URL>/v1/t/<code>``, the code 8 characters of
base62 from an HMAC of (message id, target) under the link secret (unguessable without it; the same message and
target always get the same code, so a dispatch rerun makes the same link), stored in ``short_links`` with the
target and expiry: the same redirect then records the click. With the development base URL
(``http://127.0.0.1:8000``) a short link is 35 characters; production gives the API a short domain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import IntegrityError

from mo.config import Settings, get_settings
from mo.oltp.campaign_tables import ShortLink

MAX_TOKEN = 2048
SHORT_CODE_LENGTH = 8
SHORT_CODE = re.compile(rf"^[0-9A-Za-z]{{{SHORT_CODE_LENGTH}}}$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SHORT_LINKS = cast(Table, ShortLink.__table__)


class LinkError(ValueError):
    """A token that cannot be honoured; ``problem`` names why (malformed, tampered, expired, host_not_allowed)."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def allowed_hosts(settings: Settings) -> set[str]:
    return {h.strip().lower() for h in settings.channel_link_allowed_hosts.split(",") if h.strip()}


def check_target(url: str, settings: Settings) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LinkError("bad_url", f"link target '{url[:100]}' is not an http(s) URL")
    if parts.hostname.lower() not in allowed_hosts(settings):
        raise LinkError("host_not_allowed", f"link target host '{parts.hostname}' is not on the allow-list")


def _sign(body: str, settings: Settings) -> str:
    return _b64(hmac.new(settings.channel_link_secret.encode(), body.encode(), hashlib.sha256).digest())


def make_token(message_id: str, url: str, settings: Settings | None = None, *, now: float | None = None) -> str:
    settings = settings or get_settings()
    check_target(url, settings)
    expires = int((now if now is not None else time.time()) + settings.channel_link_ttl_days * 86400)
    body = _b64(json.dumps({"m": message_id, "u": url, "e": expires}, separators=(",", ":")).encode())
    return f"{body}.{_sign(body, settings)}"


def tracked_url(message_id: str, url: str, settings: Settings | None = None) -> str:
    """The URL to put in a template in place of ``url``: the serving API's redirect with a signed token."""
    settings = settings or get_settings()
    return f"{settings.channel_link_base_url.rstrip('/')}/v1/t/{make_token(message_id, url, settings)}"


def read_token(token: str, settings: Settings | None = None, *, now: float | None = None) -> tuple[str, str]:
    """(message id, URL) of a valid token; LinkError naming the problem otherwise."""
    settings = settings or get_settings()
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise LinkError("malformed", "the link token is not '<body>.<signature>'")
    body, signature = token.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(body, settings).encode()):
        raise LinkError("tampered", "the link token's signature does not match: it was altered or not issued here")
    try:
        claims = json.loads(_unb64(body))
        message_id, url, expires = str(claims["m"]), str(claims["u"]), int(claims["e"])
    except (ValueError, KeyError, TypeError):
        raise LinkError("malformed", "the link token's body is not valid") from None
    if expires < (now if now is not None else time.time()):
        raise LinkError("expired", "the link has expired")
    check_target(url, settings)
    return message_id, url


# ---- SMS short links ---------------------------------------------------------------------------------------
def is_short_code(token: str) -> bool:
    return bool(SHORT_CODE.match(token))


def short_code(message_id: str, url: str, settings: Settings, attempt: int = 0) -> str:
    """The code of (message, target): base62 of an HMAC under the link secret; ``attempt`` > 0 after a collision."""
    digest = hmac.new(settings.channel_link_secret.encode(), f"{message_id}\n{url}\n{attempt}".encode(),
                      hashlib.sha256).digest()  # fmt: skip
    number, chars = int.from_bytes(digest, "big"), []
    for _ in range(SHORT_CODE_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(chars)


def short_url(code: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"{settings.channel_link_base_url.rstrip('/')}/v1/t/{code}"


def short_url_length(settings: Settings | None = None) -> int:
    """The length of every short link (what an SMS preview counts before the code exists)."""
    return len(short_url("0" * SHORT_CODE_LENGTH, settings))


def store_short_links(conn: Connection, wanted: Iterable[tuple[str, str]], settings: Settings | None = None, *,
                      now: datetime | None = None) -> dict[tuple[str, str], str]:  # fmt: skip
    """(message id, target) -> short code, stored (insert-missing: a rerun finds the codes it made). A target off
    the allow-list raises LinkError. A code taken by another link (rare: 62^8 codes) moves to the next attempt."""
    settings = settings or get_settings()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    expires = now + timedelta(days=settings.channel_link_ttl_days)
    keys = list(dict.fromkeys(wanted))
    for _, url in keys:
        check_target(url, settings)
    first = {key: short_code(*key, settings) for key in keys}
    # the common case in two statements: read the codes that exist, insert the rest together
    stored = {r.code: (r.message_id, r.url) for r in conn.execute(
        select(SHORT_LINKS.c.code, SHORT_LINKS.c.message_id, SHORT_LINKS.c.url).where(
            SHORT_LINKS.c.code.in_(list(first.values())))
    )}  # fmt: skip
    codes = {key: code for key, code in first.items() if stored.get(code) == key}
    missing = [key for key, code in first.items() if code not in stored]
    rest = [key for key, code in first.items() if code in stored and stored[code] != key]
    if missing and len({first[key] for key in missing}) == len(missing):
        try:
            with conn.begin_nested():
                conn.execute(insert(SHORT_LINKS), [
                    {"code": first[k], "message_id": k[0], "url": k[1], "created_at": now, "expires_at": expires}
                    for k in missing
                ])  # fmt: skip
            codes.update({key: first[key] for key in missing})
            missing = []
        except IntegrityError:  # a code taken meanwhile: one by one below
            pass
    for key in missing + rest:
        codes[key] = _store_one(conn, key, settings, now, expires)
    return codes


def _store_one(conn: Connection, key: tuple[str, str], settings: Settings, now: datetime, expires: datetime) -> str:
    message_id, url = key
    for attempt in range(8):
        code = short_code(message_id, url, settings, attempt)
        row = conn.execute(select(SHORT_LINKS).where(SHORT_LINKS.c.code == code)).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(SHORT_LINKS).values(code=code, message_id=message_id, url=url,
                                                            created_at=now, expires_at=expires))  # fmt: skip
                return code
            except IntegrityError:  # taken meanwhile: read it again
                row = conn.execute(select(SHORT_LINKS).where(SHORT_LINKS.c.code == code)).first()
        if row is not None and (row.message_id, row.url) == key:
            return code
    raise LinkError("collision", f"no free short code for message {message_id}")


def read_short(conn: Connection, code: str, settings: Settings | None = None,
               *, now: datetime | None = None) -> tuple[str, str] | None:  # fmt: skip
    """(message id, URL) of a stored short code; None if no such code; LinkError if expired or off the list."""
    settings = settings or get_settings()
    row: Any = conn.execute(select(SHORT_LINKS).where(SHORT_LINKS.c.code == code)).first()
    if row is None:
        return None
    if row.expires_at < (now or datetime.now(UTC).replace(tzinfo=None)):
        raise LinkError("expired", "the link has expired")
    check_target(row.url, settings)
    return row.message_id, row.url
