"""Passwords (argon2id) and access tokens (short-lived JWTs; built-in HS256 issuer or an external OIDC
provider's JWKS)."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.config import Settings
from app.core.roles import Role, Scope, scopes_of

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" parameters
# Verified against when the account does not exist, so a wrong user name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff user or an app client, with the role's scopes and the data it may see."""

    subject: str  # user:<username> | client:<client_id> | oidc:<sub>
    role: str
    scopes: frozenset[str]
    org_id: int | None = None  # organisation subtree; None: the whole company
    agent_id: int | None = None  # an agent's own customers only
    rate_limit_per_minute: int | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def scoped_to_customers(self) -> bool:
        return self.org_id is not None or self.agent_id is not None

    def has(self, scope: Scope | str) -> bool:
        return str(scope) in self.scopes


class InvalidToken(Exception):
    pass


def issue_token(
    settings: Settings,
    *,
    subject: str,
    role: Role | str,
    org_id: int | None,
    agent_id: int | None,
    rate_limit_per_minute: int | None = None,
) -> tuple[str, int]:
    now = int(time.time())
    lifetime = settings.access_token_minutes * 60
    claims: dict[str, Any] = {
        "iss": settings.token_issuer,
        "aud": settings.token_issuer,
        "sub": subject,
        "role": str(role),
        "scope": " ".join(sorted(str(s) for s in scopes_of(str(role)))),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if org_id is not None:
        claims["org"] = org_id
    if agent_id is not None:
        claims["agent"] = agent_id
    if rate_limit_per_minute is not None:
        claims["rpm"] = rate_limit_per_minute
    return jwt.encode(claims, settings.secret_key, algorithm="HS256"), lifetime


class TokenVerifier:
    """Checks bearer tokens: signature, issuer, audience, expiry; then maps them to a Principal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(self.settings.oidc_jwks_url or "", cache_keys=True, lifespan=300, timeout=5)

    def verify(self, token: str) -> Principal:
        try:
            if self.settings.uses_oidc:
                return self._verify_oidc(token)
            claims = jwt.decode(
                token,
                self.settings.secret_key,
                algorithms=["HS256"],
                issuer=self.settings.token_issuer,
                audience=self.settings.token_issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from None
        role = claims.get("role")
        if not isinstance(role, str) or role not in Role.__members__.values():
            raise InvalidToken("the token names no known role")
        # The role's scopes as this deployment defines them, narrowed by what the token was issued with.
        granted = set(str(claims.get("scope", "")).split())
        return Principal(
            subject=str(claims["sub"]),
            role=role,
            scopes=frozenset(str(s) for s in scopes_of(role) if str(s) in granted),
            org_id=_int_or_none(claims.get("org")),
            agent_id=_int_or_none(claims.get("agent")),
            rate_limit_per_minute=_int_or_none(claims.get("rpm")),
            claims=claims,
        )

    def _verify_oidc(self, token: str) -> Principal:
        key = self._jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256", "ES256", "PS256"],
            issuer=self.settings.oidc_issuer,
            audience=self.settings.oidc_audience,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
        role = claims.get(self.settings.oidc_role_claim)
        if not isinstance(role, str) or role not in Role.__members__.values():
            raise InvalidToken(f"the provider's token has no known role in claim '{self.settings.oidc_role_claim}'")
        return Principal(
            subject=f"oidc:{claims['sub']}",
            role=role,
            scopes=frozenset(str(s) for s in scopes_of(role)),
            org_id=_int_or_none(claims.get(self.settings.oidc_org_claim)),
            agent_id=_int_or_none(claims.get("agent_id")),
            claims=claims,
        )


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidToken(f"claim value {value!r} is not an integer id") from None
