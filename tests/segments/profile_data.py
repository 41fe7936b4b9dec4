"""A small deterministic customer_profile + customer_event_daily world (contract columns, contract types) and
loaders for each target the rule compiler serves: Spark (temp views or Iceberg tables), SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from sqlalchemy import text

from mo.segments.rules import EVENT_DAILY_CONTRACT_PATH, PROFILE_CONTRACT_PATH

AS_OF = dt.date(2026, 3, 31)

SPARK_TYPES = {"map<string,string>": "map<string,string>"}
POSTGRES_TYPES = {
    "bigint": "bigint",
    "int": "integer",
    "string": "text",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "double": "double precision",
    "map<string,string>": "text",
}
SQLITE_TYPES = {
    "bigint": "INTEGER",
    "int": "INTEGER",
    "string": "TEXT",
    "boolean": "INTEGER",
    "date": "TEXT",
    "timestamp": "TEXT",
    "double": "REAL",
    "map<string,string>": "TEXT",
}


def _contract(path) -> list[tuple[str, str]]:
    import yaml

    return [(c["name"], c["type"]) for c in yaml.safe_load(path.read_text())["columns"]]


PROFILE_COLUMNS = _contract(PROFILE_CONTRACT_PATH)
EVENT_COLUMNS = _contract(EVENT_DAILY_CONTRACT_PATH)


def make_world(n: int = 300, seed: int = 7, as_of: dt.date = AS_OF) -> tuple[list[dict], list[dict]]:
    """``n`` profiles and their daily event counts over the 90 days before ``as_of``."""
    rnd = random.Random(seed)
    lines = ["auto", "property", "accident", "health", "life"]
    profiles, events = [], []
    for i in range(n):
        customer_id = 1000 + i
        age = rnd.randint(18, 80)
        held = sorted(rnd.sample(lines, rnd.randint(0, 3)))
        renewal = as_of + dt.timedelta(days=rnd.randint(-5, 120)) if held else None
        has_vehicle = "auto" in held
        last_active = (
            None
            if rnd.random() < 0.15
            else dt.datetime.combine(as_of, dt.time(12)) - dt.timedelta(hours=rnd.randint(0, 24 * 120))
        )
        tags: dict[str, str] = {}
        if rnd.random() < 0.8:
            tags["engagement_status"] = rnd.choice(["never_active", "dormant", "occasional", "engaged"])
        if rnd.random() < 0.5:
            tags["high_value_family"] = rnd.choice(["true", "false"])
        premium = round(rnd.uniform(0, 20000), 2) if held else 0.0
        profiles.append(
            {
                "customer_id": customer_id,
                "name_masked": f"C*{i}",
                "phone_masked": f"138****{i:04d}",
                "phone_token": f"tok{i}",
                "id_number_token": f"idtok{i}",
                "customer_since_date": as_of - dt.timedelta(days=rnd.randint(30, 4000)),
                "gender": rnd.choice(["M", "F"]),
                "age": age,
                "age_band": "<25"
                if age < 25
                else "25-34"
                if age < 35
                else "35-44"
                if age < 45
                else "45-54"
                if age < 55
                else "55-64"
                if age < 65
                else "65+",
                "province": rnd.choice(["Guangdong", "Zhejiang", "Sichuan", "Beijing"]),
                "city": rnd.choice(["Shenzhen", "Hangzhou", "Chengdu", "Beijing", "O'Town"]),
                "city_tier": rnd.choice(["tier1", "new_tier1", "tier2", "tier3_below"]),
                "acquisition_channel": rnd.choice(["agent", "app", "wechat", "bancassurance", "telesales", "web"]),
                "risk_rating": rnd.choice(["R1", "R2", "R3", "R4", "R5"]),
                "lines_held": ",".join(held) if held else None,
                "has_auto": "auto" in held,
                "has_property": "property" in held,
                "has_accident": "accident" in held,
                "has_health": "health" in held,
                "has_life": "life" in held,
                "policy_count": len(held) + rnd.randint(0, 1) if held else 0,
                "total_premium": premium,
                "tenure_years": rnd.randint(0, 12),
                "next_renewal_date": renewal,
                "days_to_renewal": (renewal - as_of).days if renewal else None,
                "vehicle_age_years": rnd.randint(0, 15) if has_vehicle else None,
                "vehicle_value_band": rnd.choice(["<100k", "100k-200k", "200k-400k", "400k+"]) if has_vehicle else None,
                "last_active_at": last_active,
                "active_days_30d": rnd.randint(0, 30) if last_active else 0,
                "preferred_channel": rnd.choice(["app", "wechat", "sms", "agent", None]),
                "content_preference": rnd.choice(["health", "auto", "wealth", None]),
                "customer_tier": rnd.choice(["platinum", "gold", "silver", "bronze"]),
                "lifetime_value": round(premium * rnd.uniform(1, 8), 2),
                "claims_ratio": round(rnd.uniform(0, 1.5), 3),
                "claims_12m": rnd.choice([0, 0, 0, 1, 2, 3]),
                "has_open_claim": rnd.random() < 0.2,
                "has_open_complaint": rnd.random() < 0.1,
                "has_pending_recording_review": rnd.random() < 0.1,
                "consent_app_push": rnd.random() < 0.6,
                "consent_sms": rnd.random() < 0.7,
                "consent_wechat": rnd.random() < 0.5,
                "custom_tags": tags,
                "refreshed_at": dt.datetime.combine(as_of, dt.time(3)),
            }
        )
        rates = (
            ("message_open", rnd.choice([0.0, 0.03, 0.15])),
            ("app_page_view", rnd.choice([0.0, 0.01, 0.05, 0.2])),
            ("claim_filed", rnd.choice([0.0, 0.0, 0.02])),
        )
        for event_type, rate in rates:
            for back in range(0, 90):
                if rnd.random() < rate:
                    events.append(
                        {
                            "customer_id": customer_id,
                            "event_type": event_type,
                            "event_date": as_of - dt.timedelta(days=back),
                            "event_count": rnd.randint(1, 3),
                        }
                    )
        # events on the day after as_of must never count
        events.append(
            {
                "customer_id": customer_id,
                "event_type": "claim_filed",
                "event_date": as_of + dt.timedelta(1),
                "event_count": 1,
            }
        )
    return profiles, events


def spark_frames(spark, profiles: list[dict], events: list[dict]):
    """DataFrames with exactly the contract types; timestamps go in as UTC text and are cast by Spark."""

    def frame(rows: list[dict], columns: list[tuple[str, str]]):
        ddl = ", ".join(f"`{n}` {'string' if t == 'timestamp' else SPARK_TYPES.get(t, t)}" for n, t in columns)
        data = [
            tuple(
                (r[n].isoformat(sep=" ") if r[n] is not None else None) if t == "timestamp" else r[n]
                for n, t in columns
            )
            for r in rows
        ]
        df = spark.createDataFrame(data, ddl)
        return df.selectExpr(
            *[f"CAST(`{n}` AS TIMESTAMP) AS `{n}`" if t == "timestamp" else f"`{n}`" for n, t in columns]
        )

    return frame(profiles, PROFILE_COLUMNS), frame(events, EVENT_COLUMNS)


def _sql_value(value: Any, column_type: str, dialect: str) -> Any:
    if value is None:
        return None
    if column_type == "map<string,string>":
        return json.dumps(value)
    if dialect == "sqlite":
        if column_type == "boolean":
            return 1 if value else 0
        if column_type in ("date", "timestamp"):
            return value.isoformat(sep=" ") if column_type == "timestamp" else value.isoformat()
    return value


def load_sql(conn, profiles: list[dict], events: list[dict], *, dialect: str, schema: str | None = None) -> None:
    """Create and fill customer_profile and customer_event_daily in an SQLAlchemy connection."""
    types = SQLITE_TYPES if dialect == "sqlite" else POSTGRES_TYPES
    prefix = f'"{schema}".' if schema else ""
    for table, columns, rows in (
        ("customer_profile", PROFILE_COLUMNS, profiles),
        ("customer_event_daily", EVENT_COLUMNS, events),
    ):
        conn.execute(text(f"CREATE TABLE {prefix}{table} ({', '.join(f'{n} {types[t]}' for n, t in columns)})"))
        insert = text(
            f"INSERT INTO {prefix}{table} ({', '.join(n for n, _ in columns)}) "
            f"VALUES ({', '.join(':' + n for n, _ in columns)})"
        )
        conn.execute(insert, [{n: _sql_value(r[n], t, dialect) for n, t in columns} for r in rows])
