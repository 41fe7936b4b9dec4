"""The synthetic insurer world: deterministic, consistent, realistic, and moving one day at a time."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select, text

from mo.contracts import load_event_schemas, load_source_contracts
from mo.errors import MoError
from mo.generator import reference as ref
from mo.generator.advance import advance_day
from mo.generator.world import generate_world
from mo.oltp.db import make_engine, migrate
from mo.oltp.models import SOURCE_TABLES, Base

START = date(2026, 1, 1)
DAY_START = datetime(2026, 1, 1)
N = 1_500
KEY = b"test-key"


def _engine(path):
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine


def _norm(value):
    if isinstance(value, Decimal | float):
        return round(float(value), 4)
    if isinstance(value, bool):
        return int(value)
    return value


def dump(engine) -> dict[str, list[tuple]]:
    """Every source table (and the clock) as normalised tuples in id order, comparable across databases."""
    out = {}
    with engine.connect() as conn:
        for name in [*SOURCE_TABLES, "world_clock"]:
            table = Base.metadata.tables[name]
            out[name] = [tuple(_norm(v) for v in row) for row in conn.execute(select(table).order_by(table.c.id))]
    return out


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One generated world (read-only for the tests that share it)."""
    path = tmp_path_factory.mktemp("world") / "source.db"
    engine = _engine(path)
    report = generate_world(engine, customers=N, seed=42, batch_size=400)
    engine.dispose()
    return path, report


@pytest.fixture
def world_copy(world, tmp_path):
    """A private copy of the world for tests that advance it."""
    path = tmp_path / "source.db"
    shutil.copy(world[0], path)
    return _engine(path)


def test_report_counts_match_tables(world):
    path, report = world
    engine = make_engine(f"sqlite:///{path}")
    for table in SOURCE_TABLES:
        assert report["rows"][table] == scalar(engine, f"select count(*) from {table}"), table
    assert report["rows_total"] == sum(report["rows"].values())
    assert report["rows_per_second"] > 0
    assert report["world_date"] == "2025-12-31"


def test_same_seed_gives_identical_rows_whatever_the_batch_size(world, tmp_path):
    small = _engine(tmp_path / "a.db")
    big = _engine(tmp_path / "b.db")
    generate_world(small, customers=300, seed=7, batch_size=100)
    generate_world(big, customers=300, seed=7, batch_size=10_000)
    first, second = dump(small), dump(big)
    assert first["customers"] and first["policies"] and first["claims"]
    assert first == second

    other = _engine(tmp_path / "c.db")
    generate_world(other, customers=300, seed=8)
    third = dump(other)
    assert third["customers"] != first["customers"]
    assert {r[1] for r in third["customers"]} != {r[1] for r in first["customers"]}


def test_generate_refuses_a_database_that_holds_a_world(world, tmp_path):
    engine = make_engine(f"sqlite:///{world[0]}")
    with pytest.raises(MoError, match="already holds a world"):
        generate_world(engine, customers=10, seed=1)
    with pytest.raises(MoError, match="customers must be at least 1"):
        generate_world(_engine(tmp_path / "x.db"), customers=0, seed=1)


def test_advance_needs_a_world(tmp_path):
    with pytest.raises(MoError, match="run `mo generate` first"):
        advance_day(_engine(tmp_path / "empty.db"))


def _orphans(engine) -> dict[str, int]:
    found = {}
    for name, contract in load_source_contracts().items():
        for fk in contract.foreign_keys + [
            c for c in contract.columns if c.references and c not in contract.foreign_keys
        ]:
            parent, pcol = fk.references.split(".")
            found[f"{name}.{fk.name}"] = scalar(
                engine,
                f"select count(*) from {name} c left join {parent} p on p.{pcol} = c.{fk.name} "
                f"where c.{fk.name} is not null and p.{pcol} is null",
            )
    return found


def test_referential_integrity(world):
    engine = make_engine(f"sqlite:///{world[0]}")
    assert set(_orphans(engine).values()) == {0}
    # Child rows agree with their policy on who and what.
    assert scalar(engine, "select count(*) from claims c join policies p on p.id = c.policy_id "
                          "where p.customer_id != c.customer_id") == 0  # fmt: skip
    assert scalar(engine, "select count(*) from sales_recordings r join policies p on p.id = r.policy_id "
                          "where p.customer_id != r.customer_id or p.product_id != r.product_id "
                          "or p.org_id != r.org_id") == 0  # fmt: skip
    assert scalar(engine, "select count(*) from complaints k join policies p on p.id = k.policy_id "
                          "where p.customer_id != k.customer_id") == 0  # fmt: skip
    # A renewal continues the same customer's product the day after the previous cover ends.
    bad = rows(engine, "select n.start_date, o.end_date, o.status from policies n "
                       "join policies o on o.id = n.renewal_of "
                       "where o.customer_id != n.customer_id or o.product_id != n.product_id")  # fmt: skip
    assert bad == []
    for new_start, old_end, old_status in rows(engine, "select n.start_date, o.end_date, o.status from policies n "
                                                       "join policies o on o.id = n.renewal_of"):  # fmt: skip
        assert date.fromisoformat(new_start) == date.fromisoformat(old_end) + timedelta(days=1)
        assert old_status == "expired"


def test_realistic_proportions(world):
    engine = make_engine(f"sqlite:///{world[0]}")
    counts = world[1]["rows"]
    assert counts["customers"] == N
    assert 1.5 <= counts["policies"] / N <= 2.5
    assert 0.2 <= counts["claims"] / N <= 0.45
    assert 0.25 <= counts["sales_recordings"] / N <= 0.6
    assert 0.01 <= counts["complaints"] / N <= 0.07
    assert 2 <= counts["consents"] / N <= 4
    assert 30 <= counts["products"] <= 40
    assert counts["organizations"] > 31 + 1
    assert scalar(engine, "select count(*) from organizations where level = 'branch'") == 31

    lines = dict(rows(engine, "select line, count(*) from products group by line"))
    assert set(lines) == {"auto", "property", "accident", "health", "life"}
    dual = rows(engine, "select distinct line from products where requires_dual_recording = 1")
    assert {r[0] for r in dual} <= {"life", "health"}
    assert scalar(engine, "select count(*) from products where line = 'life' and requires_dual_recording = 0") == 0
    # Recordings only for products that require them, sampled for QC only where the product samples.
    assert scalar(engine, "select count(*) from sales_recordings r join products p on p.id = r.product_id "
                          "where p.requires_dual_recording = 0") == 0  # fmt: skip
    assert scalar(engine, "select count(*) from sales_recordings r join products p on p.id = r.product_id "
                          "where r.qc_sampled = 1 and p.qc_sample_ratio = 0") == 0  # fmt: skip
    assert scalar(engine, "select max(file_size_bytes) from sales_recordings") <= 5 * 1024 * 1024
    review = dict(rows(engine, "select review_status, count(*) from sales_recordings group by 1"))
    assert review.get("rejected", 0) / counts["sales_recordings"] == pytest.approx(0.1, abs=0.06)
    assert review.get("completed", 0) > review.get("rejected", 0)
    # Every rejected recording is followed by a re-recording of the same sale.
    assert scalar(engine, "select count(*) from sales_recordings r where r.review_status = 'rejected' and not exists "
                          "(select 1 from sales_recordings n where n.policy_id = r.policy_id "
                          "and n.id > r.id)") == 0  # fmt: skip
    for uri, checksum in rows(engine, "select file_uri, checksum_sha256 from sales_recordings limit 50"):
        assert uri.endswith(".mp4") and re.fullmatch(r"[0-9a-f]{64}", checksum)

    statuses = dict(rows(engine, "select status, count(*) from policies group by 1"))
    assert {"quoted", "pending_payment", "in_force", "expired", "lapsed", "surrendered"} <= set(statuses)
    assert statuses["in_force"] + statuses["expired"] > 0.8 * counts["policies"]
    claim_statuses = dict(rows(engine, "select status, count(*) from claims group by 1"))
    assert claim_statuses["paid"] > claim_statuses["rejected"] > 0
    assert sum(v for k, v in claim_statuses.items() if k not in ("paid", "rejected")) > 0  # some open at the start

    # Auto claims are the most frequent by far; life claims are rare.
    by_line = dict(rows(engine, "select p.line, count(*) from claims c join policies x on x.id = c.policy_id "
                                "join products p on p.id = x.product_id group by 1"))  # fmt: skip
    assert by_line["auto"] > by_line.get("life", 0) * 5

    channels = dict(rows(engine, "select acquisition_channel, count(*) from customers group by 1"))
    assert set(channels) == set(ref.CUSTOMER_CHANNELS) and max(channels, key=channels.get) == "agent"
    tier1 = {c.name for c in ref.CITIES if c.tier == 1}
    share = sum(n for city, n in rows(engine, "select city, count(*) from customers group by 1") if city in tier1) / N
    assert 0.1 <= share <= 0.35
    surnames = Counter(name[0] for (name,) in rows(engine, "select name from customers"))
    assert surnames.most_common(1)[0][0] in "王李张刘"
    assert 0.03 <= (surnames["王"] + surnames["李"]) / N / 2 <= 0.1
    openid_share = scalar(engine, "select avg(wechat_openid is not null) from customers")
    assert 0.3 <= openid_share <= 0.8
    assert (
        scalar(engine, "select count(*) from customers where acquisition_channel = 'wechat' and wechat_openid is null")
        == 0
    )


def test_id_numbers_phones_and_plates_are_well_formed(world):
    engine = make_engine(f"sqlite:///{world[0]}")
    region_prefixes = {c.code for c in ref.CITIES}
    for id_number, birth, gender, phone in rows(engine, "select id_number, birth_date, gender, phone from customers"):
        assert ref.id_number_is_valid(id_number), id_number
        assert id_number[6:14] == birth.replace("-", "")
        assert int(id_number[16]) % 2 == (1 if gender == "M" else 0)
        assert id_number[:4] in region_prefixes
        assert re.fullmatch(r"1[3-9]\d{9}", phone)
        age = (START - date.fromisoformat(birth)).days / 365.25
        assert 18 <= age <= 87
    plates = rows(engine, "select p.vehicle_plate, o.city, p.vehicle_model, p.vehicle_value, "
                          "p.vehicle_first_registered, "
                          "p.start_date from policies p join organizations o on o.id = p.org_id "
                          "where p.subject_type = 'vehicle'")  # fmt: skip
    assert plates
    city_plate = {c.name: c.plate for c in ref.CITIES}
    for plate, city, model, value, registered, start in plates:
        assert re.fullmatch(r"[\u4e00-\u9fff][A-Z][A-Z0-9]{5,6}", plate), plate
        assert plate.startswith(city_plate[city])
        assert model and value > 0 and registered <= start
    assert (
        scalar(engine, "select count(*) from policies where subject_type = 'property' and property_address is null")
        == 0
    )
    assert scalar(engine, "select count(*) from policies where subject_type = 'vehicle' and vehicle_plate is null") == 0


def test_timestamps_are_consistent_and_before_the_start(world):
    engine = make_engine(f"sqlite:///{world[0]}")
    start = "2026-01-01 00:00:00"
    for table in SOURCE_TABLES:
        assert scalar(engine, f"select count(*) from {table} where updated_at < created_at") == 0, table
        assert scalar(engine, f"select count(*) from {table} where updated_at >= :s", s=start) == 0, table
        assert scalar(engine, f"select count(*) from {table} where deleted_at is not null") == 0, table
        # Stored exactly as SQLAlchemy stores timestamps (microseconds always present).
        assert scalar(engine, f"select count(*) from {table} where length(updated_at) != 26") == 0, table
    assert scalar(engine, "select count(*) from policies where end_date < start_date") == 0
    assert (
        scalar(engine, "select count(*) from policies where status = 'in_force' and end_date < :d", d="2026-01-01") == 0
    )
    assert scalar(engine, "select count(*) from policies where status in ('quoted', 'pending_payment') "
                          "and issued_at is not null") == 0  # fmt: skip
    assert (
        scalar(engine, "select count(*) from policies where status in ('in_force', 'expired') and issued_at is null")
        == 0
    )
    _assert_claims_monotonic(engine)


def _assert_claims_monotonic(engine):
    order = [
        "submitted_at",
        "under_review_at",
        "docs_requested_at",
        "approved_at",
        "rejected_at",
        "paying_at",
        "paid_at",
    ]
    for row in rows(engine, f"select status, reported_at, incident_at, updated_at, {', '.join(order)} from claims"):
        status, reported, incident, updated, *steps = row
        assert incident <= reported
        reached = [s for s in steps if s is not None]
        assert reached == sorted(reached)
        assert updated == max(reached)
        assert steps[order.index(f"{status}_at")] == updated


def _validators():
    schemas = load_event_schemas()
    assert schemas, "schemas/events/ holds no event schemas"
    return {name: Draft202012Validator(schema) for name, schema in schemas.items()}


def test_advance_day_moves_the_world(world_copy):
    engine = world_copy
    before = dump(engine)
    before_ids = {t: {r[0]: r for r in before[t]} for t in SOURCE_TABLES}
    emitted: list[dict] = []
    report = advance_day(engine, emit=emitted.append, pii_key=KEY)
    assert report["date"] == "2026-01-01"
    assert rows(engine, 'select "current_date" from world_clock')[0][0] == "2026-01-01"
    changes = report["changes"]
    for kind in ("claim_transitions", "new_customers", "claims_filed", "customer_updates", "consent_changes",
                 "soft_deletes", "late_arrivals", "policies_renewed"):  # fmt: skip
        assert changes.get(kind, 0) > 0, kind

    day_start, day_end = DAY_START, DAY_START + timedelta(days=1)
    late_rows = 0
    for table in SOURCE_TABLES:
        t = Base.metadata.tables[table]
        cols = [c.name for c in t.columns]
        with engine.connect() as conn:
            after = conn.execute(select(t).order_by(t.c.id)).all()
        for row in after:
            rec = dict(zip(cols, row, strict=True))
            old = before_ids[table].get(rec["id"])
            if old is None:  # new today: every timestamp of the row inside the day
                assert day_start <= rec["created_at"] <= rec["updated_at"] < day_end, (table, rec)
                for col in cols:
                    if col.endswith("_at") and rec[col] is not None and col != "incident_at":
                        assert day_start <= rec[col] < day_end, (table, col, rec)
                continue
            old_rec = dict(zip(cols, old, strict=True))
            if tuple(_norm(v) for v in row) == old:
                continue
            if rec["updated_at"] < day_start:  # a late-arriving change
                late_rows += 1
                assert day_start - timedelta(hours=12) <= rec["updated_at"] <= day_start - timedelta(hours=1)
                assert rec["updated_at"] > old_rec["updated_at"]
            else:
                assert day_start <= rec["updated_at"] < day_end, (table, rec)
                assert rec["updated_at"] > old_rec["updated_at"]
            if rec["deleted_at"] is not None:
                assert rec["deleted_at"] == rec["updated_at"]
    assert late_rows == changes["late_arrivals"]
    assert scalar(engine, "select count(*) from customers where deleted_at is null") >= N
    assert set(_orphans(engine).values()) == {0}
    _assert_claims_monotonic(engine)
    # Live evidence never points at an erased (soft-deleted) customer: silver would hold orphans.
    for child in ("policies", "claims", "sales_recordings", "consents", "complaints"):
        assert scalar(engine, f"select count(*) from {child} x join customers c on c.id = x.customer_id "
                              "where x.deleted_at is null and c.deleted_at is not null") == 0, child  # fmt: skip

    # Events: every one valid against its contract; claim_filed matches the new claims.
    validators = _validators()
    assert emitted and report["events_total"] == len(emitted)
    assert Counter(e["event_type"] for e in emitted) == Counter(report["events"])
    for event in emitted:
        errors = list(validators[event["event_type"]].iter_errors(event))
        assert not errors, (event, errors[0].message)
        assert event["occurred_at"].startswith("2026-01-01T")
    filed = {e["payload"]["claim_no"]: e for e in emitted if e["event_type"] == "claim_filed"}
    assert len(filed) == changes["claims_filed"]
    for claim_no, customer_id, policy_no in rows(
        engine, "select c.claim_no, c.customer_id, p.policy_no from claims c join policies p on p.id = c.policy_id "
                "where c.created_at >= :s", s="2026-01-01"):  # fmt: skip
        assert filed[claim_no]["customer_id"] == customer_id
        assert filed[claim_no]["payload"]["policy_no"] == policy_no
    in_30_days = "2026-01-31"
    near = [e for e in emitted if e["event_type"] == "policy_near_renewal"]
    assert all(e["payload"]["end_date"] == in_30_days and e["payload"]["days_to_end"] == 30 for e in near)
    ending = rows(engine, "select p.policy_no from policies p join products x on x.id = p.product_id "
                          "where p.status = 'in_force' and p.end_date = :d and x.term_months = 12",
                  d=in_30_days)  # fmt: skip
    assert sorted(e["payload"]["policy_no"] for e in near) == sorted(r[0] for r in ending)
    openids = dict(rows(engine, "select id, wechat_openid from customers where wechat_openid is not null"))
    for event in emitted:
        if event["event_type"] == "wechat_follow":
            raw = openids[event["customer_id"]]
            assert raw not in str(event)
            assert event["payload"]["openid_token"] == hmac.new(KEY, raw.encode(), hashlib.sha256).hexdigest()


def test_advance_days_is_deterministic_and_keeps_invariants(world, tmp_path):
    results = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.db"
        shutil.copy(world[0], path)
        engine = _engine(path)
        emitted: list[dict] = []
        reports = [advance_day(engine, emit=emitted.append, pii_key=KEY) for _ in range(4)]
        results.append((dump(engine), emitted, [{k: v for k, v in r.items() if k != "seconds"} for r in reports]))
        engine.dispose()
    (dump_a, events_a, reports_a), (dump_b, events_b, reports_b) = results
    assert reports_a == reports_b and events_a == events_b and dump_a == dump_b
    assert reports_a[-1]["date"] == "2026-01-04"
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert set(_orphans(engine).values()) == {0}
    _assert_claims_monotonic(engine)
    for table in SOURCE_TABLES:
        assert scalar(engine, f"select count(*) from {table} where updated_at < created_at") == 0, table
        assert scalar(engine, f"select count(*) from {table} where updated_at >= '2026-01-05'") == 0, table
    # Renewed policies are the ones that ended on a simulated day.
    for old_end, status in rows(engine, "select o.end_date, o.status from policies n "
                                        "join policies o on o.id = n.renewal_of "
                                        "where n.created_at >= '2026-01-01'"):  # fmt: skip
        assert "2026-01-01" <= old_end <= "2026-01-04" and status == "expired"
    assert scalar(engine, "select count(*) from policies where status = 'in_force' and end_date < '2026-01-05'") == 0
    validators = _validators()
    assert all(not list(validators[e["event_type"]].iter_errors(e)) for e in events_a)
    assert {"app_page_view", "wechat_click", "message_open", "claim_filed", "policy_near_renewal"} <= {
        e["event_type"] for e in events_a
    }


def _check_on_server(url: str, sqlite_dump: dict) -> None:
    engine = make_engine(url)
    migrate(engine)
    report = generate_world(engine, customers=300, seed=11, batch_size=120)
    assert report["rows"]["customers"] == 300
    assert dump(engine) == sqlite_dump  # identical rows, microseconds included, on every database
    day = advance_day(engine, emit=None, pii_key=KEY)
    assert day["changes"]["new_customers"] >= 1
    assert set(_orphans(engine).values()) == {0}
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from claims where updated_at < created_at")).scalar() == 0
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_300(tmp_path_factory):
    engine = _engine(tmp_path_factory.mktemp("w300") / "source.db")
    generate_world(engine, customers=300, seed=11)
    return dump(engine)


@pytest.mark.mariadb
def test_generate_and_advance_on_mariadb(mariadb_url, sqlite_300):
    _check_on_server(mariadb_url, sqlite_300)


@pytest.mark.postgres
def test_generate_and_advance_on_postgres(postgres_url, sqlite_300):
    _check_on_server(postgres_url, sqlite_300)


def test_cli_generates_and_advances_the_embedded_world(mo_home, capsys):
    import json

    from mo.cli import main

    assert main(["generate", "--customers", "120", "--seed", "3", "--batch-size", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"]["customers"] == 120 and report["world_date"] == "2025-12-31"
    assert main(["advance-day", "--days", "2", "--no-events"]) == 0
    days = json.loads(capsys.readouterr().out)
    assert [d["date"] for d in days] == ["2026-01-01", "2026-01-02"]
    assert main(["generate", "--customers", "10"]) == 1
    assert "already holds a world" in capsys.readouterr().err
