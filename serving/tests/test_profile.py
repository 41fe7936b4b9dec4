"""The published profile read: masked by default, clear PII only for those allowed and audited, scoped to
the caller's organisation or agent, and honest when Redis is down."""

from __future__ import annotations

from collections.abc import Callable

from conftest import Account, ApiWorld
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.config import Settings
from app.main import create_app
from mo.oltp.api_tables import AuditEntry
from mo.oltp.models import Customer, Policy

AUDIT = AuditEntry.__table__


def test_a_profile_carries_its_refresh_and_as_of_date_and_only_masked_identity(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    answer = client.get("/v1/customers/7", headers=accounts["app"].headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["customer_id"] == 7 and body["profile"]["customer_id"] == 7
    assert body["refresh_id"] and body["as_of_date"] == "2026-03-31"
    assert body["pii"] is None
    assert {"name", "phone", "id_number"}.isdisjoint(body["profile"])
    assert isinstance(body["segments"], list)


def test_clear_pii_needs_the_scope_and_every_read_is_audited(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    refused = client.get("/v1/customers/7", params={"pii": "true"}, headers=accounts["app"].headers)
    assert refused.status_code == 403 and "customers:pii" in refused.json()["detail"]
    agent = accounts["service_agent"]
    headers = {**agent.headers, "X-Request-ID": "pii-read-7"}
    answer = client.get("/v1/customers/7", params={"pii": "true"}, headers=headers)
    assert answer.status_code == 200
    with world.source.connect() as conn:
        name, phone = conn.execute(select(Customer.name, Customer.phone).where(Customer.id == 7)).one()
        (entry,) = conn.execute(select(AUDIT).where(AUDIT.c.request_id == "pii-read-7")).all()
    assert answer.json()["pii"]["name"] == name and answer.json()["pii"]["phone"] == phone
    assert (entry.action, entry.customer_id, entry.actor, entry.outcome) == (
        "customers.read_pii",
        7,
        f"user:{agent.username}",
        "ok",
    )


def test_an_agent_or_organisation_sees_only_its_own_customers(
    world: ApiWorld, client: TestClient, make_account: Callable[..., Account]
) -> None:
    with world.source.connect() as conn:
        policies = conn.execute(select(Policy.customer_id, Policy.agent_id, Policy.org_id)).all()
    agent_id = next(p.agent_id for p in policies if p.agent_id is not None)
    own = {p.customer_id for p in policies if p.agent_id == agent_id}
    other = sorted({p.customer_id for p in policies} - own)[0]
    agent = make_account("service_agent", agent_id=agent_id)
    assert client.get(f"/v1/customers/{sorted(own)[0]}", headers=agent.headers).status_code == 200
    hidden = client.get(f"/v1/customers/{other}", headers=agent.headers)
    assert hidden.status_code == 404  # not 403: whether the customer exists is not the agent's to know

    org_id = policies[0].org_id
    mine = {p.customer_id for p in policies if p.org_id == org_id}
    outside = sorted({p.customer_id for p in policies} - mine)
    branch = make_account("service_agent", org_id=org_id)
    assert client.get(f"/v1/customers/{sorted(mine)[0]}", headers=branch.headers).status_code == 200
    if outside:
        assert client.get(f"/v1/customers/{outside[0]}", headers=branch.headers).status_code == 404


def test_a_customer_not_published_is_404(client: TestClient, accounts: dict[str, Account]) -> None:
    answer = client.get("/v1/customers/999999", headers=accounts["app"].headers)
    assert answer.status_code == 404 and "999999" in answer.json()["detail"]


def test_redis_down_is_503_with_the_reason_never_a_guess(
    world: ApiWorld, accounts: dict[str, Account], closed_port: int
) -> None:
    settings = Settings(
        source_url=world.source_url, database_url=world.serving_url, redis_url=f"redis://127.0.0.1:{closed_port}/0"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as down:
        answer = down.get("/v1/customers/7", headers=accounts["app"].headers)
    assert answer.status_code == 503
    assert "Redis" in answer.json()["detail"]
