"""The token endpoint (OAuth2): staff log in with a password, apps with client credentials."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field

from app.api.deps import SettingsDep, SourceDep
from app.core.errors import ApiError, problem_responses
from app.core.security import issue_token
from app.services import accounts

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="Space-separated scopes of the holder's role.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjbGllbnQ6ZGVtby1hcHAifQ.x",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "scope": "claims:read claims:submit customers:read",
                }
            ]
        }
    }


@router.post(
    "/token",
    response_model=Token,
    responses=problem_responses(401, 422, 423),
    summary="Get an access token",
    description="OAuth2 token endpoint (form-encoded). `grant_type=password` with `username` and `password` for "
    "staff; `grant_type=client_credentials` with `client_id` and `client_secret` for apps. Tokens are short-lived "
    "JWTs carrying the role's scopes. Repeated wrong passwords lock the account (423 with Retry-After). "
    "Exempt from Idempotency-Key: a retried login writes no business data.",
)
def token(
    request: Request,
    settings: SettingsDep,
    source: SourceDep,
    grant_type: Annotated[Literal["password", "client_credentials"], Form(examples=["client_credentials"])],
    username: Annotated[str | None, Form(max_length=64, examples=["agent.wang"])] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=64, examples=["demo-app"])] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
) -> Token:
    if settings.uses_oidc:
        raise ApiError(404, "this deployment trusts an external OpenID Connect provider: get tokens there")
    resource = f"{request.method} {request.url.path}"
    if grant_type == "password":
        missing = [(f"/body/{n}", "required") for n, v in (("username", username), ("password", password)) if not v]
        if missing:
            raise ApiError(422, "password grant needs username and password", kind="validation", errors=missing)
        request.state.audited = True  # the login audits its own outcome, failures included
        account = accounts.login(source, settings, username or "", password or "", resource=resource)
    else:
        missing = [
            (f"/body/{n}", "required") for n, v in (("client_id", client_id), ("client_secret", client_secret)) if not v
        ]
        if missing:
            raise ApiError(
                422, "client_credentials grant needs client_id and client_secret", kind="validation", errors=missing
            )
        request.state.audited = True
        account = accounts.client_login(source, client_id or "", client_secret or "", resource=resource)
    access, lifetime = issue_token(
        settings,
        subject=account.subject,
        role=account.role,
        org_id=account.org_id,
        agent_id=account.agent_id,
        rate_limit_per_minute=account.rate_limit_per_minute,
    )
    from app.core.roles import scopes_of

    return Token(access_token=access, expires_in=lifetime, scope=" ".join(sorted(scopes_of(account.role))))
