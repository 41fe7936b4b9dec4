"""The send decision over a whole audience on PostgreSQL, against a plain bulk insert of the same ledger rows.

One PostgreSQL database of its own (``MO_BENCH_DECISION_DB``, default ``mo_bench_decision``, on
``MO_BENCH_DECISION_ADMIN_URL``, default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``), migrated and
seeded in bulk (COPY) with ``MO_BENCH_DECISION_CUSTOMERS`` customers (default 1,000,000): marketing consents
with their evidence rows, contact preferences in two time zones with quiet hours, auto policies, open claims
and complaints, and earlier marketing sends in the ledger. Hot records go to Redis (``MO_BENCH_DECISION_REDIS``,
default ``redis://127.0.0.1:6379/12``, keys under ``mo_bench_decision:``) for 95 % of the customers; the other
5 % are unknown there and read from the source, as in production after a Redis restart.

Measured in one run:

- the decision: ``decide_batch`` over one campaign touch per customer (marketing, auto line, an R2 offer, a 5 %
  holdout, app push then SMS), with every check (hot records by pipeline, source fallback, open claims and
  complaints, risk ratings, holdout assignment and storage, rolling caps from the ledger, quiet hours and send
  window per time zone) and the ledger rows appended, one multi-row insert per chunk, one transaction;
- baseline: the same ledger rows (read back from the ledger) inserted into an identical table (same columns,
  indexes and earlier rows) with the same method and chunking, one transaction; also by COPY, for reference.

Everything is dropped at the end (database and Redis keys).
"""

from __future__ import annotations

import io
import json
import os
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

CHUNK = 10_000
PREFIX = os.environ.get("MO_BENCH_DECISION_PREFIX", "mo_bench_decision")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _copy(raw: Any, table: str, columns: list[str], lines: Any) -> None:
    buffer = io.StringIO()
    for values in lines:
        buffer.write("\t".join("\\N" if v is None else str(v).replace("\\", "\\\\") for v in values))
        buffer.write("\n")
    buffer.seek(0)
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


def _seed(engine: Any, n: int, now: datetime) -> dict[str, int]:
    t0 = "2026-01-01 00:00:00"
    raw = engine.raw_connection()
    try:
        _copy(raw, "organizations", ["id", "org_code", "name", "level", "province", "city", "created_at", "updated_at"],
              [(1, "HO", "总公司", "head_office", "北京", "北京", t0, t0)])  # fmt: skip
        _copy(raw, "products",
              ["id", "product_code", "name", "line", "risk_level", "requires_dual_recording", "base_premium",
               "term_months", "qc_sample_ratio", "status", "created_at", "updated_at"],
              [(1, "AU-COMP", "车险", "auto", "R1", "f", "3000", 12, "0.1", "on_sale", t0, t0)])  # fmt: skip
        _copy(raw, "customers",
              ["id", "name", "id_number", "phone", "gender", "birth_date", "province", "city", "acquisition_channel",
               "wechat_openid", "app_user_id", "risk_rating", "created_at", "updated_at"],
              ((i, "张*", f"11010119900{i:07d}", "138****0000", "F", "1990-01-01", "上海", "上海", "app",
                f"o{i}" if i % 2 else None, f"u{i}" if i % 5 else None, f"R{i % 5 + 1}", t0, t0)
               for i in range(1, n + 1)))  # fmt: skip
        # Consents: app push opted in by 85 %, out by 5 %; SMS in by 70 %. One evidence row each.
        consents, evidence = [], []
        for i in range(1, n + 1):
            k = i % 20
            for channel, status in (("app_push", None if k == 0 else ("opt_out" if k == 1 else "opt_in")),
                                    ("sms", "opt_in" if i % 10 < 7 else None)):  # fmt: skip
                if status is None:
                    continue
                consents.append((len(consents) + 1, i, channel, status, t0, "app", t0, t0))
                evidence.append((len(evidence) + 1, i, channel, "marketing", status, "v3", "app", "customer", t0,
                                 "user:app", f"seed-{i}-{channel}"))  # fmt: skip
        _copy(raw, "consents", ["id", "customer_id", "channel", "status", "decided_at", "source", "created_at",
                                "updated_at"], consents)  # fmt: skip
        _copy(raw, "consent_evidence", ["id", "customer_id", "channel", "purpose", "status", "text_version", "source",
                                        "reason", "decided_at", "actor", "request_id"], evidence)  # fmt: skip
        # Preferences for 10 %: Shanghai with quiet hours 22:00-08:00, and New York (outside its window now).
        prefs = [(i, None if i % 3 else 3, "22:00" if i % 100 < 7 else None, "08:00" if i % 100 < 7 else None,
                  "Asia/Shanghai" if i % 100 < 7 else "America/New_York", 1, "app", "user:app", t0, t0)
                 for i in range(1, n + 1) if i % 100 < 10]  # fmt: skip
        _copy(raw, "contact_preferences", ["customer_id", "max_push_per_week", "quiet_start", "quiet_end",
                                           "time_zone", "version", "source", "updated_by", "created_at",
                                           "updated_at"], prefs)  # fmt: skip
        # Auto policies for 30 % (their anniversary makes the holdout cycle), open claims on 2 %, complaints 1 %.
        policies = [(i, f"P{i:012d}", i, 1, 1, "vehicle", "100000", "3000", "annual",
                     (date(2025, 1, 1) + timedelta(days=i % 365)).isoformat(),
                     (date(2025, 12, 31) + timedelta(days=i % 365)).isoformat(), "in_force", t0, t0)
                    for i in range(1, n + 1) if i % 10 < 3]  # fmt: skip
        _copy(raw, "policies", ["id", "policy_no", "customer_id", "product_id", "org_id", "subject_type",
                                "sum_insured", "premium", "payment_mode", "start_date", "end_date", "status",
                                "created_at", "updated_at"], policies)  # fmt: skip
        claims = [(i, f"C{i:012d}", i, i, t0, "上海", "上海", "collision", t0, "100", "under_review", t0, t0, t0)
                  for i in range(1, n + 1) if i % 50 == 2]  # fmt: skip
        _copy(raw, "claims", ["id", "claim_no", "policy_id", "customer_id", "incident_at", "incident_province",
                              "incident_city", "incident_type", "reported_at", "amount_claimed", "status",
                              "submitted_at", "created_at", "updated_at"], claims)  # fmt: skip
        complaints = [(i, f"TS{i:012d}", i, "app", "service", "open", t0, t0, t0) for i in range(1, n + 1)
                      if i % 100 == 3]  # fmt: skip
        _copy(raw, "complaints", ["id", "complaint_no", "customer_id", "channel", "category", "status", "opened_at",
                                  "created_at", "updated_at"], complaints)  # fmt: skip
        # Earlier marketing sends: one 3 days ago for 10 %, a second for 2 % (their 7-day cap is full).
        prior = []
        for i in range(1, n + 1):
            for d in (3, 5)[: (2 if i % 50 == 11 else 1 if i % 10 == 1 else 0)]:
                key = f"journey:bench-{d}:{i}"
                at = (now - timedelta(days=d)).isoformat(" ")
                message_id = f"00000000-0000-4000-8000-{len(prior):012d}"
                prior.append((key, 1, key, "journey", i, "sms", "marketing", "auto", 1, "send", "ok", "{}",
                              message_id, at))  # fmt: skip
        _copy(raw, "contact_ledger", ["touch_key", "attempt", "final_key", "source", "customer_id", "channel",
                                      "purpose", "product_line", "priority", "decision", "reason", "detail",
                                      "message_id", "decided_at"], prior)  # fmt: skip
        raw.commit()
        with raw.cursor() as cur:
            cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return {"consents": len(consents), "preferences": len(prefs), "policies": len(policies), "claims": len(claims),
            "complaints": len(complaints), "prior_sends": len(prior)}  # fmt: skip


def _hot_records(client: Any, n: int) -> int:
    """Complete hot records for 95 % of the customers, as `mo hot rebuild` writes them (the rest: unknown)."""
    written = 0
    pipe = client.pipeline(transaction=False)
    evidence_id = 0
    for i in range(1, n + 1):
        k = i % 20
        fields: dict[str, str] = {}
        if k != 0:
            evidence_id += 1
            fields["consent:app_push:marketing"] = f"{'opt_out' if k == 1 else 'opt_in'}|{evidence_id}"
        if i % 10 < 7:
            evidence_id += 1
            fields["consent:sms:marketing"] = f"opt_in|{evidence_id}"
        if i % 20 == 7:
            continue  # unknown in Redis: the decision reads the source
        if i % 100 == 3:
            fields[f"complaint:TS{i:012d}"] = "open"
        if i % 100 < 10:
            quiet = i % 100 < 7
            prefs = {"max_push_per_week": None if i % 3 else 3, "quiet_start": "22:00" if quiet else None,
                     "quiet_end": "08:00" if quiet else None,
                     "time_zone": "Asia/Shanghai" if quiet else "America/New_York"}  # fmt: skip
            fields["prefs"] = json.dumps(prefs, sort_keys=True, separators=(",", ":")) + "|1"
        fields["built"] = "2026-12-06T00:00:00.000000Z"
        pipe.hset(f"{PREFIX}:hot:{i}", mapping=fields)
        written += 1
        if written % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    return written


def measure() -> dict[str, Any]:
    import redis
    from sqlalchemy import MetaData, create_engine, insert, select, text

    from mo.campaigns.decision import ContactPolicy, Intent, copy_rows, decide_batch
    from mo.oltp.campaign_tables import LedgerEntry
    from mo.oltp.db import make_engine, migrate

    n = _env_int("MO_BENCH_DECISION_CUSTOMERS", 1_000_000)
    db = os.environ.get("MO_BENCH_DECISION_DB", "mo_bench_decision")
    admin_url = os.environ.get("MO_BENCH_DECISION_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("MO_BENCH_DECISION_REDIS", "redis://127.0.0.1:6379/12")
    url = admin_url.rsplit("/", 1)[0] + f"/{db}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {db}"))
    client = redis.Redis.from_url(redis_url)
    ledger = LedgerEntry.__table__
    now = datetime(2026, 12, 7, 2, 0)  # 10:00 in Shanghai, 21:00 the day before in New York
    try:
        engine = make_engine(url)
        migrate(engine)
        started = time.perf_counter()
        seeded = _seed(engine, n, now)
        hot = _hot_records(client, n)
        seed_seconds = time.perf_counter() - started
        with engine.begin() as conn:  # the baseline's table: same columns, indexes and earlier rows
            conn.execute(text("CREATE TABLE ledger_baseline (LIKE contact_ledger INCLUDING ALL)"))
            conn.execute(text("INSERT INTO ledger_baseline SELECT * FROM contact_ledger"))
            conn.execute(text("ANALYZE ledger_baseline"))
        intents = [
            Intent(
                touch_key=f"campaign:1:1:{i}", source="campaign", customer_id=i, channels=("app_push", "sms"),
                purpose="marketing", campaign_id=1, occurrence=1, product_line="auto", offer_risk_level="R2",
                priority=5, ends_at=now + timedelta(days=14), holdout_share=Decimal("0.05"),
                payload={"app_push": {"title": "车险续保优惠", "body": "..."},
                         "sms": {"sign_name": "保险", "template_code": "SMS_1", "template_param": {}}},
            )
            for i in range(1, n + 1)
        ]  # fmt: skip
        policy = ContactPolicy(holdout_key=b"bench-decision-holdout-key")
        started = time.perf_counter()
        with engine.begin() as conn:
            decisions = decide_batch(conn, client, PREFIX, intents, now=now, policy=policy)
        decide_seconds = time.perf_counter() - started
        reasons: dict[str, int] = {}
        for d in decisions:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        del intents, decisions
        columns = [c for c in ledger.columns if c.name != "id"]
        with engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(select(*columns).where(ledger.c.campaign_id == 1).order_by(ledger.c.id))
            ]
        names = [c.name for c in columns]
        started = time.perf_counter()
        with engine.begin() as conn:  # baseline: COPY of the same rows, same chunking, as the decision writes
            for start in range(0, len(rows), CHUNK):
                copy_rows(conn, "ledger_baseline", names, rows[start : start + CHUNK])
        copy_seconds = time.perf_counter() - started
        # A multi-row insert of the same rows, for reference (another identical table)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE ledger_insert (LIKE contact_ledger INCLUDING ALL)"))
            conn.execute(text("INSERT INTO ledger_insert SELECT * FROM contact_ledger WHERE campaign_id IS NULL"))
        reference = ledger.to_metadata(MetaData(), name="ledger_insert")
        started = time.perf_counter()
        with engine.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(reference), rows[start : start + CHUNK])
        insert_seconds = time.perf_counter() - started
        written = len(rows)
        engine.dispose()
        return {
            "customers": n,
            "seeded": seeded,
            "hot_records": hot,
            "seed_seconds": seed_seconds,
            "decided": n,
            "written": written,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "decide_seconds": decide_seconds,
            "insert_seconds": insert_seconds,
            "copy_seconds": copy_seconds,
        }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        admin.dispose()
        keys = []
        for key in client.scan_iter(f"{PREFIX}:*", count=10_000):
            keys.append(key)
            if len(keys) >= 10_000:
                client.delete(*keys)
                keys = []
        if keys:
            client.delete(*keys)
        client.close()


def run() -> str:
    f = measure()
    rate = f["written"] / f["decide_seconds"]
    copy = f["written"] / f["copy_seconds"]
    multi = f["written"] / f["insert_seconds"]
    ratio = rate / copy
    reasons = ", ".join(f"{k} {v:,}" for k, v in f["reasons"].items())
    verdict = "meets" if f["decide_seconds"] < 120 and ratio >= 0.5 else "does NOT meet"
    return "\n".join(
        [
            f"## Send decision over a {f['customers']:,}-customer audience (PostgreSQL, Redis hot records)",
            "",
            f"One campaign touch for each of {f['customers']:,} customers, decided by `decide_batch` with every "
            "check: hot records from Redis (one pipeline of scripted HGETALLs; 5 % unknown there, read from the "
            "source), open claims and complaints, risk rating, holdout assigned and stored per renewal cycle, "
            "rolling 7 x 24 h / 30 x 24 h caps counted from the ledger, quiet hours and the send window in each "
            f"customer's zone; the ledger rows appended by COPY per {CHUNK:,}-touch chunk, in one transaction. "
            "Baseline: the same ledger rows (read back) copied into an identical table (same columns, indexes and "
            "earlier rows) with the same COPY and chunking; a multi-row INSERT of the same rows for reference. "
            f"Seeded by COPY in {f['seed_seconds']:.0f} s: {f['seeded']}, {f['hot_records']:,} hot records.",
            "",
            "| path | rows | seconds | rows/s |",
            "|---|---:|---:|---:|",
            f"| decision: every check + ledger write | {f['written']:,} | {f['decide_seconds']:.1f} | {rate:,.0f} |",
            f"| baseline: COPY of the same rows | {f['written']:,} | {f['copy_seconds']:.1f} | {copy:,.0f} |",
            f"| reference: multi-row INSERT of the same rows | {f['written']:,} | {f['insert_seconds']:.1f} | "
            f"{multi:,.0f} |",
            "",
            f"The decision runs at {ratio:.0%} of the bulk COPY's rate ({rate / multi:.0%} of the multi-row "
            f"INSERT's) and decides the audience in {f['decide_seconds']:.0f} s: it {verdict} the target (a "
            f"1M audience under 120 s, at least 50 % of the bulk insert's rate). Decisions: {reasons}.",
        ]
    )


if __name__ == "__main__":
    print(run())
