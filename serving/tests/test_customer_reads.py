"""Customer reads on the real stores: lookup by phone or ID number, timeline, segments and why, policies,
the product catalogue and quotes, next-best-offer; visibility, masking and stores that are down."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import yaml
from conftest import Account, ApiWorld, _load_platform_world
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.context import JsonFormatter
from app.core.pagination import encode_cursor
from app.main import create_app
from mo.config import SCHEMAS_DIR
from mo.generator import reference as ref
from mo.generator.book import _premium
from mo.oltp.api_tables import AuditEntry
from mo.oltp.models import Customer, Organization, Policy, Product

CUSTOMERS, POLICIES, PRODUCTS, ORGS = Customer.__table__, Policy.__table__, Product.__table__, Organization.__table__
AUDIT = AuditEntry.__table__
RISK = ("R1", "R2", "R3", "R4", "R5")


@pytest.fixture(scope="module")
def platform_world():  # type: ignore[no-untyped-def]
    """The published marts' world the `world` fixture published (same tag, size and seed): the expected data."""
    platform = _load_platform_world()
    return platform, platform.make_world("api", 120, seed=11)


@pytest.fixture(scope="module")
def source_customers(world: ApiWorld) -> dict[int, object]:
    with world.source.connect() as conn:
        return {r.id: r for r in conn.execute(select(CUSTOMERS))}


@pytest.fixture(scope="module")
def in_force_lines(world: ApiWorld) -> dict[int, set[str]]:
    lines: dict[int, set[str]] = {}
    with world.source.connect() as conn:
        for cid, line in conn.execute(
            select(POLICIES.c.customer_id, PRODUCTS.c.line)
            .join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id)
            .where(POLICIES.c.status == "in_force")
        ):
            lines.setdefault(cid, set()).add(line)
    return lines


def all_pages(client: TestClient, url: str, headers: dict[str, str], **params) -> list[dict]:  # type: ignore[no-untyped-def]
    items, cursor = [], None
    for _ in range(500):
        answer = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


# --- lookup ----------------------------------------------------------------------------------------------------


def test_lookup_by_phone_finds_the_customer_and_the_clear_value_is_nowhere(
    world: ApiWorld,
    client: TestClient,
    accounts: dict[str, Account],
    source_customers: dict,
) -> None:
    person = source_customers[7]
    formatted = f"+86 {person.phone[:3]} {person.phone[3:7]}-{person.phone[7:]}"  # another way to write it
    lines: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter())
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:  # the JSON lines as the service writes them, formatted while the request runs
        answer = client.post(
            "/v1/customers/lookup",
            json={"phone": formatted},
            headers={**accounts["service_agent"].headers, "X-Request-ID": "lookup-phone-0001"},
        )
    finally:
        logger.removeHandler(handler)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert 7 in [m["customer_id"] for m in body["matches"]]
    match = next(m for m in body["matches"] if m["customer_id"] == 7)
    assert match["phone_masked"] == f"{person.phone[:3]}****{person.phone[-4:]}"
    assert body["refresh_id"] and body["as_of_date"] == "2026-03-31"
    assert person.phone not in answer.text
    # The request's JSON log line exists and carries neither form of the number.
    request_lines = [json.loads(line) for line in lines if '"lookup-phone-0001"' in line]
    assert any(e["logger"] == "app.request" and e["status"] == 200 for e in request_lines)
    assert not any(person.phone in line or formatted in line for line in lines)
    # Audited: who looked up whom and how, never the value.
    with world.source.connect() as conn:
        rows = conn.execute(select(AUDIT).where(AUDIT.c.request_id == "lookup-phone-0001")).all()
    assert [(r.action, r.customer_id, r.detail) for r in rows if r.customer_id == 7] == [
        ("customers.lookup", 7, "by phone")
    ]
    assert person.phone not in str([tuple(r) for r in rows])


def test_lookup_by_id_number_normalises_like_the_platform(
    client: TestClient, accounts: dict[str, Account], source_customers: dict
) -> None:
    person = (
        next(p for p in source_customers.values() if p.id_number.endswith("X"))
        if any(p.id_number.endswith("X") for p in source_customers.values())
        else source_customers[11]
    )
    answer = client.post(
        "/v1/customers/lookup", json={"id_number": f" {person.id_number.lower()} "}, headers=accounts["app"].headers
    )
    assert answer.status_code == 200, answer.text
    assert [m["customer_id"] for m in answer.json()["matches"]] == [person.id]
    assert person.id_number not in answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "13800138000", "id_number": "11010519491231002X"}, "/body"),
        ({}, "/body"),
        ({"phone": "13800138000", "name": "x"}, "/body/name"),
        ({"phone": "12345"}, "/body/phone"),
        ({"phone": "1380013800<script>"}, "/body/phone"),
        ({"id_number": "1101051949123100"}, "/body/id_number"),
        ({"phone": "1" * 40}, "/body/phone"),
        ({"phone": None}, "/body/phone"),
        ({"phone": "+86 138 0013 800"}, "/body/phone"),
    ],
)
def test_a_bad_lookup_is_422_naming_the_field(
    client: TestClient, accounts: dict[str, Account], body: dict, field: str
) -> None:
    answer = client.post("/v1/customers/lookup", json=body, headers=accounts["service_agent"].headers)
    assert answer.status_code == 422, answer.text
    assert any(e["field"] == field for e in answer.json()["errors"]), answer.json()


def test_an_unknown_phone_is_404_audited_without_the_value(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    answer = client.post(
        "/v1/customers/lookup",
        json={"phone": "19999999999"},
        headers={**accounts["marketer"].headers, "X-Request-ID": "lookup-miss-0001"},
    )
    assert answer.status_code == 404
    with world.source.connect() as conn:
        (row,) = conn.execute(select(AUDIT).where(AUDIT.c.request_id == "lookup-miss-0001")).all()
    assert (row.action, row.status_code) == ("customers.lookup", 404)
    assert "19999999999" not in str(tuple(row))


# --- visibility ----------------------------------------------------------------------------------------------


def _customers_of(world: ApiWorld, **where) -> set[int]:  # type: ignore[no-untyped-def]
    query = select(POLICIES.c.customer_id).distinct()
    for name, value in where.items():
        query = query.where(POLICIES.c[name].in_(value) if isinstance(value, set) else POLICIES.c[name] == value)
    with world.source.connect() as conn:
        return {r[0] for r in conn.execute(query)}


def test_an_agent_and_an_organisation_see_only_their_customers(
    world: ApiWorld, client: TestClient, make_account: Callable[..., Account], source_customers: dict
) -> None:
    with world.source.connect() as conn:
        agent_id = (
            conn.execute(
                select(POLICIES.c.agent_id)
                .where(POLICIES.c.agent_id.is_not(None))
                .group_by(POLICIES.c.agent_id)
                .order_by(POLICIES.c.agent_id)
            )
            .scalars()
            .first()
        )
        parents = {r.parent_id for r in conn.execute(select(ORGS.c.parent_id))}
        leaf_org = next(
            o
            for o in conn.execute(select(POLICIES.c.org_id).distinct().order_by(POLICIES.c.org_id)).scalars()
            if o not in parents
        )
    everyone = set(source_customers)
    for account, mine in (
        (make_account("service_agent", agent_id=agent_id), _customers_of(world, agent_id=agent_id)),
        (make_account("app", org_id=leaf_org), _customers_of(world, org_id=leaf_org)),
    ):
        assert mine and everyone - mine
        inside, outside = min(mine), min(everyone - mine)
        for path in ("timeline", "segments", "policies", "recommendations"):
            assert client.get(f"/v1/customers/{inside}/{path}", headers=account.headers).status_code == 200, path
            hidden = client.get(f"/v1/customers/{outside}/{path}", headers=account.headers)
            assert hidden.status_code == 404 and hidden.json()["detail"] == f"customer {outside} not found", path
        quote = client.get(f"/v1/products/AC-GEN/quote?customer_id={outside}", headers=account.headers)
        assert quote.status_code == 404
        phone = source_customers[outside].phone
        if not any(source_customers[c].phone == phone for c in mine):
            found = client.post("/v1/customers/lookup", json={"phone": phone}, headers=account.headers)
            assert found.status_code == 404
        found = client.post(
            "/v1/customers/lookup", json={"phone": source_customers[inside].phone}, headers=account.headers
        )
        assert found.status_code == 200 and {m["customer_id"] for m in found.json()["matches"]} <= mine


def test_roles_without_customer_reads_are_refused(client: TestClient, accounts: dict[str, Account]) -> None:
    for role in ("analyst", "admin"):
        assert client.get("/v1/customers/3/timeline", headers=accounts[role].headers).status_code == 403
        assert (
            client.post(
                "/v1/customers/lookup", json={"phone": "13800138000"}, headers=accounts[role].headers
            ).status_code
            == 403
        )
        assert client.get("/v1/products", headers=accounts[role].headers).status_code == 200
    assert client.get("/v1/customers/3/policies").status_code == 401


# --- timeline ------------------------------------------------------------------------------------------------


def test_the_timeline_pages_newest_first_through_the_published_window(
    client: TestClient, accounts: dict[str, Account], platform_world
) -> None:  # type: ignore[no-untyped-def]
    platform, world = platform_world
    for customer in (5, 17):
        mine = [e for e in world.recent_timeline() if e["customer_id"] == customer]
        expected = [
            (e["event_id"], e["event_at"], e["event_type"], e["amount"], json.loads(e["attributes"]))
            for e in sorted(mine, key=lambda e: (e["event_at"], e["event_id"]), reverse=True)
        ]
        assert expected, "the world gives each customer events in the window"
        headers = accounts["app"].headers
        items = all_pages(client, f"/v1/customers/{customer}/timeline", headers, limit=2)
        got = [
            (i["event_id"], dt.datetime.fromisoformat(i["event_at"]), i["event_type"], i["amount"], i["attributes"])
            for i in items
        ]
        assert got == expected
    first = client.get("/v1/customers/5/timeline", headers=headers).json()
    assert first["as_of_date"] == platform.AS_OF.isoformat() and first["refresh_id"]
    assert first["covers_from"] == (platform.AS_OF - dt.timedelta(days=179)).isoformat()


def test_the_timeline_adds_up_to_the_published_daily_counts(
    client: TestClient, accounts: dict[str, Account], platform_world
) -> None:  # type: ignore[no-untyped-def]
    _, world = platform_world
    daily = {
        (e["event_date"].isoformat(), e["event_type"]): e["event_count"]
        for e in world.recent_events()
        if e["customer_id"] == 8
    }
    counted: dict[tuple[str, str], int] = {}
    for item in all_pages(client, "/v1/customers/8/timeline", accounts["app"].headers, limit=100):
        key = (item["event_at"][:10], item["event_type"])
        counted[key] = counted.get(key, 0) + 1
    assert counted == daily


def test_the_timeline_filters_by_type_and_period(
    client: TestClient, accounts: dict[str, Account], platform_world
) -> None:  # type: ignore[no-untyped-def]
    platform, world = platform_world
    recent = world.recent_timeline()
    kind = recent[0]["event_type"]
    since, until = platform.AS_OF - dt.timedelta(days=90), platform.AS_OF - dt.timedelta(days=10)
    seen = 0
    for customer in range(1, 30):
        expected = {
            e["event_id"]
            for e in recent
            if e["customer_id"] == customer and e["event_type"] == kind and since <= e["event_date"] <= until
        }
        answer = client.get(
            f"/v1/customers/{customer}/timeline",
            params={"event_type": kind, "since": since.isoformat(), "until": until.isoformat(), "limit": 100},
            headers=accounts["app"].headers,
        )
        assert {i["event_id"] for i in answer.json()["items"]} == expected
        seen += len(expected)
    assert seen > 0


def test_timeline_bad_input_and_a_cursor_from_another_refresh(client: TestClient, accounts: dict[str, Account]) -> None:
    headers = accounts["app"].headers
    cases = {
        "event_type=DROP%20TABLE": "/query/event_type",
        "since=2026-03-10&until=2026-03-01": "/query/since",
        "until=2025-01-01": "/query/until",
        "cursor=!!": "/query/cursor",
        f"cursor={encode_cursor(['r', 'not a time', 'x'])}": "/query/cursor",
        "since=2026-13-01": "/query/since",
    }
    for query, field in cases.items():
        answer = client.get(f"/v1/customers/5/timeline?{query}", headers=headers)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field, (query, answer.text)
    stale = encode_cursor(["20200101000000000000abcdef", "2026-03-01 08:00:00", "x"])
    answer = client.get("/v1/customers/5/timeline", params={"cursor": stale}, headers=headers)
    assert answer.status_code == 409 and "start again" in answer.json()["detail"]


# --- segments ------------------------------------------------------------------------------------------------


def test_segments_say_why_and_answer_past_dates_honestly(
    client: TestClient, accounts: dict[str, Account], platform_world
) -> None:  # type: ignore[no-untyped-def]
    platform, world = platform_world
    published = {(m["customer_id"], m["segment_id"]): m["matched_clauses"] for m in world.published_members()}
    headers = accounts["marketer"].headers
    for customer in range(1, 45):
        body = client.get(f"/v1/customers/{customer}/segments", headers=headers).json()
        got = {i["segment_id"]: i["why"] for i in body["items"]}
        expected = {s: why for (c, s), why in published.items() if c == customer}
        if customer <= 40:
            expected["api_likely_renewers"] = ["smart: score 0.812 >= 0.7 (renewal v1)"]
        assert got == expected, customer
        assert body["membership_date"] == body["as_of_date"] == platform.AS_OF.isoformat()
    on_the_day = client.get("/v1/customers/3/segments", params={"as_of": platform.AS_OF.isoformat()}, headers=headers)
    assert on_the_day.status_code == 200
    future = client.get("/v1/customers/3/segments", params={"as_of": "2026-04-01"}, headers=headers)
    assert future.status_code == 422 and "as of 2026-03-31" in future.json()["detail"]
    # The day before: from the published history (the run of that day), the smart segment not yet run.
    day_before = platform.AS_OF - dt.timedelta(days=1)
    history = world.published_history()
    for customer in range(1, 45):
        body = client.get(
            f"/v1/customers/{customer}/segments", params={"as_of": day_before.isoformat()}, headers=headers
        ).json()
        expected = {
            h["segment_id"]: (h["valid_from"].isoformat(), h["valid_to"] and h["valid_to"].isoformat())
            for h in history
            if h["customer_id"] == customer
            and h["valid_from"] <= day_before
            and (h["valid_to"] is None or h["valid_to"] >= day_before)
        }
        got = {i["segment_id"]: (i["member_since"], i["member_until"]) for i in body["items"]}
        assert got == expected, customer
        assert [n["segment_id"] for n in body["not_covered"]] == ["api_likely_renewers"]
        assert body["membership_date"] == day_before.isoformat()
    assert any(until is not None for h in history for until in [h["valid_to"]]), "someone left the segment"
    past = client.get("/v1/customers/3/segments", params={"as_of": "2026-01-01"}, headers=headers)
    assert past.status_code == 422
    assert past.json()["errors"][0]["field"] == "/query/as_of" and "lakehouse" in past.json()["detail"]


# --- policies ------------------------------------------------------------------------------------------------


def test_policies_come_from_the_core_systems_newest_first(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    with world.source.connect() as conn:
        customer = conn.execute(
            select(POLICIES.c.customer_id)
            .group_by(POLICIES.c.customer_id)
            .order_by(func.count().desc(), POLICIES.c.customer_id)
            .limit(1)
        ).scalar()
        rows = conn.execute(
            select(POLICIES.c.policy_no, POLICIES.c.status, POLICIES.c.premium, PRODUCTS.c.product_code)
            .join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id)
            .where(POLICIES.c.customer_id == customer)
            .order_by(POLICIES.c.start_date.desc(), POLICIES.c.id.desc())
        ).all()
    headers = accounts["claims_handler"].headers
    items = all_pages(client, f"/v1/customers/{customer}/policies", headers, limit=1)
    assert [(i["policy_no"], i["status"], i["premium"], i["product_code"]) for i in items] == [
        (r.policy_no, r.status, float(r.premium), r.product_code) for r in rows
    ]
    in_force = client.get(f"/v1/customers/{customer}/policies?status=in_force", headers=headers).json()["items"]
    assert [i["policy_no"] for i in in_force] == [r.policy_no for r in rows if r.status == "in_force"]
    assert client.get(f"/v1/customers/{customer}/policies?status=nope", headers=headers).status_code == 422


# --- products ------------------------------------------------------------------------------------------------


def test_the_catalogue_has_one_source_per_fact() -> None:
    """Codes, sums insured and payment modes in the catalogue file are the shelf the generator writes."""
    catalogue = yaml.safe_load((SCHEMAS_DIR / "products" / "catalogue.yaml").read_text(encoding="utf-8"))["products"]
    assert list(catalogue) == [p.code for p in ref.PRODUCTS]
    for spec in ref.PRODUCTS:
        facts = catalogue[spec.code]
        assert set(facts) == {"coverage_region", "excluded_regions", "sum_insured", "payment_modes"}, spec.code
        assert facts["sum_insured"] == ("vehicle_value" if spec.sum_insured == 0 else spec.sum_insured)
        assert tuple(facts["payment_modes"]) == spec.payment_modes
        assert facts["coverage_region"]


def test_every_channel_reads_the_same_product_facts(
    world: ApiWorld, client: TestClient, accounts: dict[str, Account]
) -> None:
    listed = all_pages(client, "/v1/products", accounts["analyst"].headers, limit=7)
    with world.source.connect() as conn:
        shelf = {r.product_code: r for r in conn.execute(select(PRODUCTS))}
    assert [p["product_code"] for p in listed] == sorted(shelf)
    for product in listed:
        row = shelf[product["product_code"]]
        assert (product["name"], product["line"], product["risk_level"], product["status"]) == (
            row.name,
            row.line,
            row.risk_level,
            row.status,
        )
        one = client.get(f"/v1/products/{product['product_code']}", headers=accounts["app"].headers).json()
        assert one == product
    travel = next(p for p in listed if p["product_code"] == "AC-TRVL")
    assert "Nepal" in travel["excluded_regions"] and travel["coverage_region"].startswith("Asia")
    health = all_pages(client, "/v1/products", accounts["app"].headers, line="health", status="on_sale")
    assert health and all(p["line"] == "health" and p["status"] == "on_sale" for p in health)
    assert client.get("/v1/products/NOPE-1", headers=accounts["app"].headers).status_code == 404
    assert client.get("/v1/products/<x>", headers=accounts["app"].headers).status_code == 422
    assert client.get("/v1/products?line=boats", headers=accounts["app"].headers).status_code == 422


def test_a_quote_is_priced_by_the_generators_own_rule(
    client: TestClient, accounts: dict[str, Account], source_customers: dict
) -> None:
    headers = accounts["service_agent"].headers
    person = source_customers[9]
    for code, level in (("HE-MED", 1.0), ("LI-TERM", 2.0), ("AC-GEN", 0.5), ("AU-CTPL", 1.0)):
        spec = ref.PRODUCTS[ref.PRODUCT_ID[code] - 1]
        answer = client.get(
            f"/v1/products/{code}/quote", params={"customer_id": 9, "cover_level": level}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        age = (dt.datetime.now(dt.UTC).date() - person.birth_date).days / 365.25
        assert body["premium"] == _premium(spec, age, None, 0, level), code
        assert body["suitable"] == (RISK.index(spec.risk_level) <= RISK.index(person.risk_rating))
    vehicle = client.get(
        "/v1/products/AU-COMP/quote", params={"customer_id": 9, "vehicle_value": 200000}, headers=headers
    ).json()
    assert vehicle["premium"] == 800 + 200000 * 0.018 and vehicle["sum_insured"] == 200000
    assert client.get("/v1/products/AU-OLD/quote?customer_id=9", headers=headers).status_code == 409
    bad_level = client.get("/v1/products/AC-GEN/quote?customer_id=9&cover_level=0.7", headers=headers)
    assert bad_level.status_code == 422 and bad_level.json()["errors"][0]["field"] == "/query/cover_level"
    assert client.get("/v1/products/AC-GEN/quote", headers=headers).status_code == 422
    cautious = next(p for p in source_customers.values() if p.risk_rating == "R1")
    risky = client.get(f"/v1/products/LI-ILP/quote?customer_id={cautious.id}", headers=headers).json()
    assert risky["suitable"] is False and "above" in risky["suitability"]


# --- recommendations -----------------------------------------------------------------------------------------


def test_recommendations_never_exceed_the_risk_rating_nor_repeat_a_held_line(
    client: TestClient, accounts: dict[str, Account], source_customers: dict, in_force_lines: dict
) -> None:
    headers = accounts["app"].headers
    offered = 0
    for customer in range(1, 121):
        answer = client.get(f"/v1/customers/{customer}/recommendations", params={"limit": 5}, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rating = source_customers[customer].risk_rating
        held = in_force_lines.get(customer, set())
        assert body["risk_rating"] == rating and set(body["lines_held"]) == held
        for item in body["items"]:
            assert RISK.index(item["risk_level"]) <= RISK.index(rating), (customer, item)
            assert item["line"] not in held and item["reasons"] and item["coverage_region"]
            smart = any("smart segment api_likely_renewers" in r for r in item["reasons"])
            assert smart == (customer <= 40)
        assert [i["score"] for i in body["items"]] == sorted((i["score"] for i in body["items"]), reverse=True)
        assert len({i["line"] for i in body["items"]}) == len(body["items"])
        offered += len(body["items"])
    assert offered > 100
    assert client.get("/v1/customers/1/recommendations?limit=11", headers=headers).status_code == 422


# --- stores down ---------------------------------------------------------------------------------------------


def test_redis_or_the_store_down_is_503_with_the_reason(
    world: ApiWorld, closed_port: int, accounts: dict[str, Account]
) -> None:
    no_redis = world.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    with TestClient(create_app(no_redis), raise_server_exceptions=False) as down:
        answer = down.get("/v1/customers/3", headers=accounts["app"].headers)
        assert answer.status_code == 503 and "Redis" in answer.json()["detail"]
    no_store = world.settings.model_copy(
        update={"database_url": f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/postgres"}
    )
    with TestClient(create_app(no_store), raise_server_exceptions=False) as down:
        headers = accounts["app"].headers
        for answer in (
            down.get("/v1/customers/3/timeline", headers=headers),
            down.get("/v1/customers/3/segments", headers=headers),
            down.get("/v1/customers/3/recommendations", headers=headers),
            down.post("/v1/customers/lookup", json={"phone": "13800138000"}, headers=headers),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("serving store unavailable")
        # the live reads of the core systems do not depend on the store
        assert down.get("/v1/customers/3/policies", headers=headers).status_code == 200


# --- the same reads on a PostgreSQL serving store ------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_client(world: ApiWorld) -> Iterator[TestClient]:
    """The world's published data once more, on the machine's PostgreSQL (a database of this module's own)."""
    from conftest import _align_with_source, create_database
    from sqlalchemy import create_engine, text

    from mo.serving_store import publish_batches
    from mo.serving_store.store import SqlServingStore

    platform = _load_platform_world()
    published = platform.make_world("api", 120, seed=11)
    _align_with_source(published, world.source, platform)
    url = create_database("postgresql", "h_reads_serving_api")
    store = SqlServingStore(url)
    publish_batches(store, as_of=platform.AS_OF, tables=published.batches(), published_by="serving-tests")
    store.dispose()
    settings = world.settings.model_copy(update={"database_url": url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as pg:
        yield pg
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS h_reads_serving_api WITH (FORCE)"))
    admin.dispose()


def _without_refresh(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("refresh_id", "next_cursor")}


def test_postgresql_and_sqlite_stores_answer_alike(
    client: TestClient, pg_client: TestClient, accounts: dict[str, Account], source_customers: dict
) -> None:
    headers = accounts["service_agent"].headers
    events = 0
    for customer in (2, 5, 17, 40, 41, 99):
        for path in ("segments", "segments?as_of=2026-03-30", "recommendations"):
            lite = client.get(f"/v1/customers/{customer}/{path}", headers=headers)
            pg = pg_client.get(f"/v1/customers/{customer}/{path}", headers=headers)
            assert pg.status_code == lite.status_code == 200, pg.text
            assert _without_refresh(pg.json()) == _without_refresh(lite.json()), (customer, path)
        lite_events = all_pages(client, f"/v1/customers/{customer}/timeline", headers, limit=2)
        pg_events = all_pages(pg_client, f"/v1/customers/{customer}/timeline", headers, limit=2)
        assert pg_events == lite_events
        events += len(lite_events)
        phone = {"phone": source_customers[customer].phone}
        lite = client.post("/v1/customers/lookup", json=phone, headers=headers)
        pg = pg_client.post("/v1/customers/lookup", json=phone, headers=headers)
        assert pg.status_code == 200 and pg.json()["matches"] == lite.json()["matches"]
    assert events > 0


def test_the_profile_serves_no_join_tokens(client: TestClient, accounts: dict[str, Account]) -> None:
    body = client.get("/v1/customers/7", headers=accounts["app"].headers).json()
    assert "phone_masked" in body["profile"]
    assert not [name for name in body["profile"] if name.endswith("_token")]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/customers/5/timeline", ["r", ["2026-03-01"], "x"]),
        ("/v1/customers/5/timeline", ["r", "2026-03-01 08:00:00", 7]),
        ("/v1/customers/5/policies", ["2026-03-01", [1]]),
        ("/v1/customers/5/policies", ["2026-03-01", "1"]),
        ("/v1/customers/5/policies", [20260301, 1]),
        ("/v1/products", [{"a": 1}]),
    ],
)
def test_a_forged_cursor_is_422_never_a_500(
    client: TestClient, accounts: dict[str, Account], path: str, key: list
) -> None:
    answer = client.get(path, params={"cursor": encode_cursor(key)}, headers=accounts["app"].headers)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "/query/cursor", answer.text


def test_lookups_without_the_pii_key_are_503_naming_it(
    world: ApiWorld, accounts: dict[str, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MO_PII_KEY")
    settings = world.settings.model_copy()  # the platform settings are read again, without the key
    settings.__dict__.pop("platform", None)
    with TestClient(create_app(settings), raise_server_exceptions=False) as keyless:
        answer = keyless.post("/v1/customers/lookup", json={"phone": "13800138000"}, headers=accounts["app"].headers)
    assert answer.status_code == 503 and "MO_PII_KEY" in answer.json()["detail"]
