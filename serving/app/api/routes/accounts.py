"""Accounts, for admins: staff users and app clients, created, listed, disabled, unlocked, given new secrets.

A new user's first password and a client's secret are generated here and shown once: only their argon2 hashes
are stored, and the stored answer a retry replays (Idempotency-Key) has them as null, so a lost answer means
resetting again, never reading a secret back. Every change is audited in its own transaction; admins read no
customer data here.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from app.api.deps import SourceDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Role, Scope
from app.core.security import hash_secret
from app.core.timestamps import UtcDateTime
from app.services import audit
from app.services.accounts import CLIENTS, USERS, create_client, create_user
from app.services.idempotency import idempotency_key, run_once

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
Username = Annotated[str, Path(min_length=3, max_length=64, pattern=NAME_PATTERN, examples=["marketer.li"])]
ClientId = Annotated[str, Path(min_length=3, max_length=64, pattern=NAME_PATTERN, examples=["insurer-app"])]
IdemKey = Annotated[str, Depends(idempotency_key)]
RoleName = Literal["app", "service_agent", "claims_handler", "marketer", "approver", "analyst", "reviewer", "admin"]
STAFF_ROLES = tuple(r.value for r in Role if r is not Role.APP)
WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422, 429)


def _new_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, above the 12-character minimum


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "marketer.li", "display_name": "李明", "role": "marketer", "org_id": 2}]
        },
    )
    username: str = Field(min_length=3, max_length=64, pattern=NAME_PATTERN)
    display_name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>]+$")
    role: RoleName
    org_id: int | None = Field(None, ge=1, le=2**63 - 1, description="The organisation subtree the user works in.")
    agent_id: int | None = Field(None, ge=1, le=2**63 - 1, description="For agents: the agent they are.")


class UserRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "marketer.li",
                    "display_name": "李明",
                    "role": "marketer",
                    "org_id": 2,
                    "agent_id": None,
                    "disabled": False,
                    "locked_until": None,
                    "created_at": "2026-12-06T09:00:00Z",
                    "updated_at": "2026-12-06T09:00:00Z",
                }
            ]
        }
    )
    username: str
    display_name: str
    role: str
    org_id: int | None
    agent_id: int | None
    disabled: bool
    locked_until: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class UserWithPassword(UserRead):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **UserRead.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                    "initial_password": "q3Vb0x-7kLw2ZpR9sT1uYc4e",
                }
            ]
        }
    )
    initial_password: str | None = Field(
        description="Shown once, in the first answer only (null when a retry replays it): give it to the user."
    )


class ClientCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"client_id": "agent-app-0031", "name": "代理人App", "role": "app", "agent_id": 31}]
        },
    )
    client_id: str = Field(min_length=3, max_length=64, pattern=NAME_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f<>]+$")
    role: RoleName
    org_id: int | None = Field(None, ge=1, le=2**63 - 1)
    agent_id: int | None = Field(None, ge=1, le=2**63 - 1)
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000, description="None: the service default.")


class ClientRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "agent-app-0031",
                    "name": "代理人App",
                    "role": "app",
                    "org_id": None,
                    "agent_id": 31,
                    "rate_limit_per_minute": None,
                    "disabled": False,
                    "created_at": "2026-12-06T09:00:00Z",
                    "updated_at": "2026-12-06T09:00:00Z",
                }
            ]
        }
    )
    client_id: str
    name: str
    role: str
    org_id: int | None
    agent_id: int | None
    rate_limit_per_minute: int | None
    disabled: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime


class ClientWithSecret(ClientRead):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **ClientRead.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                    "client_secret": "n2Xr8d0mJ4q7Vb1cZ5s9Tw3yLk6pHf2a",
                }
            ]
        }
    )
    client_secret: str | None = Field(
        description="Shown once, in the first answer only (null when a retry replays it)."
    )


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "left the company"}]})
    reason: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f<>]+$")


def _user(conn: Connection, username: str) -> dict[str, Any]:
    row = conn.execute(select(USERS).where(USERS.c.username == username)).mappings().first()
    if row is None:
        raise ApiError(404, f"no staff user '{username}'")
    return dict(row)


def _client(conn: Connection, client_id: str) -> dict[str, Any]:
    row = conn.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id)).mappings().first()
    if row is None:
        raise ApiError(404, f"no app client '{client_id}'")
    return dict(row)


def _user_body(row: dict[str, Any], password: str | None = None) -> dict[str, Any]:
    body = UserRead.model_validate(row).model_dump(mode="json")
    return body if password is None else {**body, "initial_password": password}


def _client_body(row: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    body = ClientRead.model_validate(row).model_dump(mode="json")
    return body if secret is None else {**body, "client_secret": secret}


def _check_role(role: str, *, staff: bool) -> None:
    if staff and role not in STAFF_ROLES:
        raise ApiError(
            422, "staff users take a staff role", kind="validation", errors=[("/body/role", f"one of {STAFF_ROLES}")]
        )


@router.post("/users", status_code=201, response_model=UserWithPassword, responses=WRITE_ERRORS)
def create_staff_user(
    body: UserCreate, caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.create_user"), source: SourceDep, key: IdemKey
):  # type: ignore[no-untyped-def]
    """A staff user with a generated first password, shown once."""
    _check_role(body.role, staff=True)

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        password = _new_password()
        if conn.execute(select(USERS.c.id).where(USERS.c.username == body.username)).first() is not None:
            raise ApiError(409, f"staff user '{body.username}' exists")
        try:
            create_user(conn, **body.model_dump(), password=password)
        except IntegrityError:  # created by a concurrent request meanwhile: this transaction rolls back
            raise ApiError(409, f"staff user '{body.username}' exists") from None
        audit.record(conn, principal=caller.principal, action=caller.action, resource=caller.resource,
                     status=201, detail=f"user:{body.username} role={body.role}")  # fmt: skip
        return 201, _user_body(_user(conn, body.username), password)

    return run_once(source, caller, key, body.model_dump(mode="json"), write, secret_fields=("initial_password",))


@router.get("/users", response_model=Page[UserRead], responses=problem_responses(401, 403, 422))
def list_staff_users(
    caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.read"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    role: Annotated[RoleName | None, Query()] = None,
) -> Page[UserRead]:
    query = select(USERS).order_by(USERS.c.username).limit(limit + 1)
    after = decode_cursor(cursor, arity=1)
    if after is not None:
        query = query.where(USERS.c.username > str(after[0]))
    if role is not None:
        query = query.where(USERS.c.role == role)
    with source.connect() as conn:
        rows = conn.execute(query).mappings().all()
    items = [UserRead.model_validate(dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[UserRead](items=items, next_cursor=encode_cursor([items[-1].username]) if more else None)


UserAction = Literal["disable", "enable", "unlock", "reset-password"]


@router.post("/users/{username}/{action}", response_model=UserWithPassword, responses=WRITE_ERRORS)
def change_staff_user(
    username: Username,
    action: Annotated[UserAction, Path(examples=["unlock"])],
    body: AccountChange,
    caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.change_user"),
    source: SourceDep,
    key: IdemKey,
):  # type: ignore[no-untyped-def]
    """Disable or enable a user, lift a lockout, or give a new password (shown once; the lockout is lifted)."""
    if action in ("disable", "reset-password") and caller.subject == f"user:{username}":
        raise ApiError(409, f"an admin may not {action} their own account; ask another admin")

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        _user(conn, username)
        password = None
        values: dict[str, Any] = {"updated_at": audit.utcnow()}
        if action == "disable":
            values["disabled"] = True
        elif action == "enable":
            values["disabled"] = False
        elif action == "unlock":
            values.update(failed_logins=0, locked_until=None)
        else:
            password = _new_password()
            values.update(password_hash=hash_secret(password), failed_logins=0, locked_until=None)
        conn.execute(update(USERS).where(USERS.c.username == username).values(**values))
        audit.record(conn, principal=caller.principal, action=f"accounts.user_{action}", resource=caller.resource,
                     detail=f"user:{username}: {body.reason}")  # fmt: skip
        return 200, _user_body(_user(conn, username), password) | ({} if password else {"initial_password": None})

    return run_once(
        source, caller, key, {"action": action, **body.model_dump()}, write, secret_fields=("initial_password",)
    )


@router.post("/clients", status_code=201, response_model=ClientWithSecret, responses=WRITE_ERRORS)
def create_app_client(
    body: ClientCreate,
    caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.create_client"),
    source: SourceDep,
    key: IdemKey,
):  # type: ignore[no-untyped-def]
    """An app client (OAuth2 client credentials) with a generated secret, shown once."""

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        if conn.execute(select(CLIENTS.c.id).where(CLIENTS.c.client_id == body.client_id)).first() is not None:
            raise ApiError(409, f"app client '{body.client_id}' exists")
        try:
            secret = create_client(conn, **body.model_dump())
        except IntegrityError:  # created by a concurrent request meanwhile: this transaction rolls back
            raise ApiError(409, f"app client '{body.client_id}' exists") from None
        audit.record(conn, principal=caller.principal, action=caller.action, resource=caller.resource,
                     status=201, detail=f"client:{body.client_id} role={body.role}")  # fmt: skip
        return 201, _client_body(_client(conn, body.client_id), secret)

    return run_once(source, caller, key, body.model_dump(mode="json"), write, secret_fields=("client_secret",))


@router.get("/clients", response_model=Page[ClientRead], responses=problem_responses(401, 403, 422))
def list_app_clients(
    caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.read"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ClientRead]:
    query = select(CLIENTS).order_by(CLIENTS.c.client_id).limit(limit + 1)
    after = decode_cursor(cursor, arity=1)
    if after is not None:
        query = query.where(CLIENTS.c.client_id > str(after[0]))
    with source.connect() as conn:
        rows = conn.execute(query).mappings().all()
    items = [ClientRead.model_validate(dict(r)) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[ClientRead](items=items, next_cursor=encode_cursor([items[-1].client_id]) if more else None)


ClientAction = Literal["disable", "enable", "rotate-secret"]


@router.post("/clients/{client_id}/{action}", response_model=ClientWithSecret, responses=WRITE_ERRORS)
def change_app_client(
    client_id: ClientId,
    action: Annotated[ClientAction, Path(examples=["rotate-secret"])],
    body: AccountChange,
    caller: authorized(Scope.ACCOUNTS_ADMIN, "accounts.change_client"),
    source: SourceDep,
    key: IdemKey,
):  # type: ignore[no-untyped-def]
    """Disable or enable a client, or rotate its secret (the old one stops working at once; the new one is shown
    once). Tokens already issued live until they expire."""

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        _client(conn, client_id)
        secret = None
        values: dict[str, Any] = {"updated_at": audit.utcnow()}
        if action == "disable":
            values["disabled"] = True
        elif action == "enable":
            values["disabled"] = False
        else:
            secret = secrets.token_urlsafe(32)
            values["secret_hash"] = hash_secret(secret)
        conn.execute(update(CLIENTS).where(CLIENTS.c.client_id == client_id).values(**values))
        audit.record(conn, principal=caller.principal, action=f"accounts.client_{action}", resource=caller.resource,
                     detail=f"client:{client_id}: {body.reason}")  # fmt: skip
        return 200, _client_body(_client(conn, client_id), secret) | ({} if secret else {"client_secret": None})

    return run_once(
        source, caller, key, {"action": action, **body.model_dump()}, write, secret_fields=("client_secret",)
    )
