"""Staff users and app clients: creation, login with lockout, client credentials."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from app.core.config import Settings
from app.core.errors import ApiError
from app.core.roles import Role
from app.core.security import hash_secret, verify_secret
from app.services.audit import record, utcnow
from mo.oltp.api_tables import ApiClient, StaffUser

USERS = StaffUser.__table__
CLIENTS = ApiClient.__table__


@dataclass(frozen=True)
class Account:
    subject: str
    role: str
    org_id: int | None
    agent_id: int | None
    rate_limit_per_minute: int | None = None


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ApiError(
            422,
            f"unknown role '{role}'",
            kind="validation",
            errors=[("/body/role", f"one of {[r.value for r in Role]}")],
        ) from None


def create_user(
    conn: Connection,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    org_id: int | None = None,
    agent_id: int | None = None,
) -> int:
    if len(password) < 12:
        raise ApiError(
            422, "password too short", kind="validation", errors=[("/body/password", "at least 12 characters")]
        )
    now = utcnow()
    result = conn.execute(
        insert(USERS).values(
            username=username,
            display_name=display_name or username,
            password_hash=hash_secret(password),
            role=_role(role).value,
            org_id=org_id,
            agent_id=agent_id,
            failed_logins=0,
            locked_until=None,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def create_client(
    conn: Connection,
    *,
    client_id: str,
    role: str,
    name: str | None = None,
    secret: str | None = None,
    org_id: int | None = None,
    agent_id: int | None = None,
    rate_limit_per_minute: int | None = None,
) -> str:
    """Register an app client; returns its secret (shown once, stored only as a hash)."""
    secret = secret or secrets.token_urlsafe(32)
    now = utcnow()
    conn.execute(
        insert(CLIENTS).values(
            client_id=client_id,
            name=name or client_id,
            secret_hash=hash_secret(secret),
            role=_role(role).value,
            org_id=org_id,
            agent_id=agent_id,
            rate_limit_per_minute=rate_limit_per_minute,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
    )
    return secret


INVALID = "invalid credentials"


def login(engine: Engine, settings: Settings, username: str, password: str, *, resource: str) -> Account:
    """Check a staff password. Failures count; at ``login_max_failures`` the account locks for
    ``login_lockout_minutes`` (423 with Retry-After), during which even the right password is refused."""
    now = utcnow()
    with engine.begin() as conn:
        user = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            seconds = int((user.locked_until - now).total_seconds()) + 1
            record(
                conn,
                principal=None,
                action="auth.login",
                resource=resource,
                status=423,
                detail=f"user:{username} locked",
            )
            error = ApiError(
                423,
                f"account locked after repeated failures; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        elif user is None or user.disabled or not verify_secret(user.password_hash, password):
            if user is not None and not user.disabled:
                failures = user.failed_logins + 1
                values: dict = {"failed_logins": failures}
                if failures >= settings.login_max_failures:
                    values = {
                        "failed_logins": 0,
                        "locked_until": now + timedelta(minutes=settings.login_lockout_minutes),
                    }
                conn.execute(update(USERS).where(USERS.c.id == user.id).values(**values))
            record(
                conn, principal=None, action="auth.login", resource=resource, status=401, detail=f"user:{username[:64]}"
            )
            error = ApiError(401, INVALID, extra={"error": "invalid_grant"})
        else:
            if user.failed_logins or user.locked_until:
                conn.execute(update(USERS).where(USERS.c.id == user.id).values(failed_logins=0, locked_until=None))
            return Account(f"user:{user.username}", user.role, user.org_id, user.agent_id)
    raise error


def client_login(engine: Engine, client_id: str, secret: str, *, resource: str) -> Account:
    with engine.begin() as conn:
        client = conn.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id)).first()
        if client is None or client.disabled or not verify_secret(client.secret_hash, secret):
            record(
                conn,
                principal=None,
                action="auth.client",
                resource=resource,
                status=401,
                detail=f"client:{client_id[:64]}",
            )
        else:
            return Account(
                f"client:{client.client_id}", client.role, client.org_id, client.agent_id, client.rate_limit_per_minute
            )
    raise ApiError(401, INVALID, extra={"error": "invalid_client"})
