"""Tracked links: a signed token carrying (message id, target URL, expiry), redeemed by the serving API's
``GET /v1/t/{token}``, which records ``clicked`` and redirects.

Token: ``base64url(json{"m","u","e"}) "." base64url(HMAC-SHA256(secret, first part))``. Only hosts on the
allow-list (``MO_CHANNEL_LINK_ALLOWED_HOSTS``) are accepted, when the link is made and when it is followed, so a
token can never turn the API into an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from mo.config import Settings, get_settings

MAX_TOKEN = 2048


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
