"""Fixtures for the serving tests: a small world in the machine's real stores, one app per session.

The world: a source database (the core systems) with generated customers, policies and claims, migrated
by the platform's own Alembic migrations; profiles for those customers published to a serving store and
the machine's Redis through the platform's own publish (mo.serving_store.publish_batches), with the
published-marts shape from the platform's test world (tests/serving_store/world.py, loaded by path).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.core.config import Settings
from app.core.roles import Role

REPO = Path(__file__).resolve().parents[2]

# The machine's services (see the project's environment notes); db 15 keeps clear of other users' keys.
MACHINE_REDIS_URL = "redis://127.0.0.1:6379/15"
MACHINE_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
MACHINE_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
PII_KEY = "serving-tests-pii-key-0123456789abcdef"
PASSWORD = "correct horse battery staple"
WORLD_CUSTOMERS = 120


def _load_platform_world():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("platform_serving_world", REPO / "tests/serving_store/world.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  (dataclasses look their module up)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(autouse=True)
def _clean_serving_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; a SERVING_* variable in the caller's shell must not leak in."""
    for name in list(os.environ):
        if name.startswith("SERVING_"):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: a store that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiWorld:
    home: Path
    source_url: str
    serving_url: str
    redis_prefix: str
    settings: Settings
    source: Engine
    customers: int


def create_database(kind: str, name: str) -> str:
    """A fresh database of its own on the machine's PostgreSQL or MariaDB; its URL."""
    from sqlalchemy import create_engine, text

    admin_url = MACHINE_POSTGRES_URL if kind == "postgresql" else MACHINE_MARIADB_URL
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def build_world(home: Path, *, source_url: str | None = None, customers: int = WORLD_CUSTOMERS) -> ApiWorld:
    """Generate the source, publish profiles for its customers, and return settings pointing at both."""
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.serving_store import publish_batches
    from mo.serving_store.redis_store import connect_redis
    from mo.serving_store.store import SqlServingStore

    home.mkdir(parents=True, exist_ok=True)
    prefix = f"apitest{uuid.uuid4().hex[:8]}"
    os.environ["MO_HOME"] = str(home)
    os.environ["MO_PII_KEY"] = PII_KEY
    os.environ["MO_REDIS_PREFIX"] = prefix
    os.environ["MO_KAFKA_BOOTSTRAP"] = os.environ.get("MO_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    source_url = source_url or f"sqlite:///{home / 'source.db'}"
    engine = make_engine(source_url)
    migrate(engine)
    generate_world(engine, customers=customers, seed=7)
    from mo.segments.store import import_folder

    import_folder(engine)  # the checked-in segments, in the definition store as build_profiles leaves them
    serving_url = f"sqlite:///{home / 'serving.db'}"
    platform = _load_platform_world()
    world = platform.make_world("api", customers, seed=11)
    _align_with_source(world, engine, platform)
    store = SqlServingStore(serving_url)
    client = connect_redis(url=MACHINE_REDIS_URL)
    publish_batches(
        store,
        as_of=platform.AS_OF,
        tables=world.batches(),
        redis_profiles=world.redis_batches(),
        redis_client=client,
        redis_prefix=prefix,
        published_by="serving-tests",
    )
    store.dispose()
    client.close()
    # The tests are a handful of callers sending thousands of requests a minute at machine speed (schemathesis alone
    # sends hundreds as one user): the default limit is out of their way; the limit itself is tested with a client
    # of its own (test_api_basics.py: a per-client limit of 3).
    settings = Settings(
        source_url=source_url, database_url=serving_url, redis_url=MACHINE_REDIS_URL, rate_limit_per_minute=1_000_000
    )
    return ApiWorld(home, source_url, serving_url, prefix, settings, engine, customers)


def _align_with_source(world, engine: Engine, platform) -> None:  # type: ignore[no-untyped-def]
    """The published profiles carry the source customers' real tokens, risk rating, age and in-force lines (the
    lake would compute them so), and one smart segment with the propensity model's score in its reasons."""
    import datetime as dt

    from sqlalchemy import select

    from mo import pii
    from mo.oltp.models import Customer, Policy, Product

    customers, policies, products = Customer.__table__, Policy.__table__, Product.__table__
    key = PII_KEY.encode()
    with engine.connect() as conn:
        people = {r.id: r for r in conn.execute(select(customers))}
        lines: dict[int, set[str]] = {}
        for cid, line in conn.execute(
            select(policies.c.customer_id, products.c.line)
            .join(products, products.c.id == policies.c.product_id)
            .where(policies.c.status == "in_force")
        ):
            lines.setdefault(cid, set()).add(line)
    for profile in world.profiles:
        person = people[profile["customer_id"]]
        held = lines.get(person.id, set())
        profile.update(
            phone_token=pii.token(key, "phone", person.phone),
            id_number_token=pii.token(key, "id_number", person.id_number),
            phone_masked=pii.mask("phone", person.phone),
            risk_rating=person.risk_rating,
            age=(platform.AS_OF - person.birth_date).days // 365,
            lines_held=",".join(sorted(held)) or None,
            **{f"has_{line}": line in held for line in ("auto", "property", "accident", "health", "life")},
        )
    world.definitions.append(
        {"segment_id": "api_likely_renewers", "version": 1, "name": "likely renewers", "kind": "smart", "rule": None}
    )
    for profile in world.profiles[:40]:
        world.membership.append(
            {
                "run_id": "smart1",
                "as_of_date": platform.AS_OF,
                "segment_id": "api_likely_renewers",
                "segment_version": 1,
                "customer_id": profile["customer_id"],
                "matched_clauses": ["smart: score 0.812 >= 0.7 (renewal v1)"],
                "computed_at": dt.datetime.combine(platform.AS_OF, dt.time(4), tzinfo=dt.UTC),
            }
        )


class LedgerSend(NamedTuple):
    id: int
    touch_key: str
    message_id: str


def ledger_send(world: ApiWorld, customer_id: int, *, channel: str = "sms") -> LedgerSend:
    """A send decision of the calling test's own in the contact ledger: a service notice, so no campaign's funnel
    counts it. Every test file shares the session's world, so a delivery a test writes must name a ledger row that
    test wrote (``foreign_deliveries`` checks it when the session ends), never an id it assumes (id 1 is whichever
    row came first: another test's campaign)."""
    from mo.oltp.campaign_tables import LedgerEntry

    touch_key = f"service:test-{uuid.uuid4().hex[:12]}:{customer_id}"
    message_id = str(uuid.uuid4())
    with world.source.begin() as conn:
        ledger_id = conn.execute(
            LedgerEntry.__table__.insert().values(
                touch_key=touch_key, attempt=1, final_key=touch_key, source="service", campaign_id=None,
                occurrence=None, customer_id=customer_id, channel=channel, purpose="service", product_line=None,
                priority=1, decision="send", reason="ok", detail="{}", message_id=message_id,
                decided_at=datetime.now(UTC).replace(tzinfo=None),
            )
        ).inserted_primary_key[0]  # fmt: skip
    return LedgerSend(int(ledger_id), touch_key, message_id)


def foreign_deliveries(engine: Engine) -> list[tuple[int, str, int]]:
    """Deliveries (id, message id, ledger id) whose ledger row is missing or is another message's or customer's:
    what the dispatcher and the channel workers never write, so a test wrote them against a row it does not own."""
    from sqlalchemy import or_, select

    from mo.oltp.campaign_tables import Delivery, LedgerEntry

    deliveries, ledger = Delivery.__table__, LedgerEntry.__table__
    query = (
        select(deliveries.c.id, deliveries.c.message_id, deliveries.c.ledger_id)
        .select_from(deliveries.outerjoin(ledger, ledger.c.id == deliveries.c.ledger_id))
        .where(
            or_(
                ledger.c.id.is_(None),
                ledger.c.message_id.is_distinct_from(deliveries.c.message_id),
                ledger.c.customer_id != deliveries.c.customer_id,
            )
        )
        .order_by(deliveries.c.id)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    built = build_world(tmp_path_factory.mktemp("api-world"))
    yield built
    # The world is shared by every test file: a delivery pointing at a ledger row it does not belong to is counted
    # in another test's funnel or touches, which then pass or fail by the order the files run in.
    foreign = foreign_deliveries(built.source)
    assert not foreign, f"deliveries written against a ledger row that is not theirs (use ledger_send): {foreign[:10]}"
    client = redis.Redis.from_url(MACHINE_REDIS_URL)
    for key in client.scan_iter(f"{built.redis_prefix}:*", count=1000):
        client.unlink(key)
    client.close()
    built.source.dispose()


@pytest.fixture(scope="session")
def app(world: ApiWorld):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(world.settings)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass(frozen=True)
class Account:
    role: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def make_account(world: ApiWorld, client: TestClient) -> Callable[..., Account]:
    """A staff user of a role (optionally scoped to an organisation or agent), logged in."""
    from app.services.accounts import create_user

    def make(role: Role | str, *, org_id: int | None = None, agent_id: int | None = None) -> Account:
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        with world.source.begin() as conn:
            create_user(conn, username=username, password=PASSWORD, role=str(role), org_id=org_id, agent_id=agent_id)
        answer = client.post(
            "/v1/auth/token", data={"grant_type": "password", "username": username, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        return Account(str(role), username, answer.json()["access_token"])

    return make


@pytest.fixture(scope="session")
def accounts(make_account: Callable[..., Account]) -> dict[str, Account]:
    """One company-wide account per role."""
    return {role.value: make_account(role) for role in Role}


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
