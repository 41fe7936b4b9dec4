"""A small deterministic world in the published marts' shape (columns and types from the contracts), as
Python rows, Arrow batches (for the store) and Iceberg tables (for publishes through Spark)."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import yaml

from mo.config import SCHEMAS_DIR
from mo.serving_store.contract import ARROW_TYPES, ServingTable, load_serving_contract

AS_OF = dt.date(2026, 3, 31)
PROVINCES = ["Guangdong", "Zhejiang", "Jiangsu", "Sichuan", "Beijing"]
EVENT_TYPES = ["app_login", "message_open", "claim_filed"]
DOMAINS = {"app_login": "app", "message_open": "message", "claim_filed": "claim"}


def mart_columns(mart: str) -> list[dict[str, Any]]:
    return yaml.safe_load((SCHEMAS_DIR / "marts" / f"{mart}.yaml").read_text())["columns"]


def _value(col: dict[str, Any], cid: int, rng: random.Random, tag: str) -> Any:
    name, kind = col["name"], col["type"]
    if name == "customer_id":
        return cid
    if col.get("nullable") and rng.random() < 0.15:
        return None
    if name == "province":
        return rng.choice(PROVINCES)
    if name == "name_masked":
        return f"{tag}-{cid}"
    if col.get("enum"):
        return rng.choice(col["enum"])
    if kind == "string":
        return f"{name[:6]}-{rng.randint(0, 3)}"
    if kind in ("int", "bigint"):
        return rng.randint(0, 90)
    if kind == "double":
        return round(rng.uniform(0, 20000), 2)
    if kind == "boolean":
        return rng.random() < 0.4
    if kind == "date":
        return AS_OF + dt.timedelta(days=rng.randint(-400, 300))
    if kind == "timestamp":
        return dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randint(0, 30 * 86400), microseconds=7)
    if kind.startswith("map<"):
        tags = {"renewal_focus": rng.choice(["true", "false"])}
        return {**tags, "note": 'it\'s "quoted", ok'} if rng.random() < 0.5 else tags
    raise AssertionError(kind)


@dataclass
class World:
    tag: str
    profiles: list[dict[str, Any]]
    events: list[dict[str, Any]]
    definitions: list[dict[str, Any]]
    membership: list[dict[str, Any]]

    # -- what the store should hold after publishing as of AS_OF -----------------------------------
    def recent_events(self, retention_days: int = 180) -> list[dict[str, Any]]:
        first = AS_OF - dt.timedelta(days=retention_days - 1)
        return [e for e in self.events if first <= e["event_date"] <= AS_OF]

    def timeline(self) -> list[dict[str, Any]]:
        """fct_customer_events rows that add up to the daily counts: ``event_count`` events per daily row."""
        rows = []
        for e in self.events:
            for n in range(e["event_count"]):
                at = dt.datetime.combine(e["event_date"], dt.time(8 + 3 * n, 7 * n, 0, 250), tzinfo=dt.UTC)
                rows.append(
                    {
                        "event_id": f"{self.tag}:{e['customer_id']}:{e['event_type']}:{e['event_date']}:{n}",
                        "customer_id": e["customer_id"],
                        "event_at": at,
                        "event_date": e["event_date"],
                        "domain": DOMAINS[e["event_type"]],
                        "event_type": e["event_type"],
                        "channel": "app" if DOMAINS[e["event_type"]] == "app" else None,
                        "object_id": f"C{e['customer_id']:06d}" if e["event_type"] == "claim_filed" else None,
                        "amount": 1000.5 * (n + 1) if e["event_type"] == "claim_filed" else None,
                        "attributes": json.dumps({"n": n, "note": 'it\'s "quoted"'}),
                        "source": "test",
                    }
                )
        return rows

    def recent_timeline(self, retention_days: int = 180) -> list[dict[str, Any]]:
        first = AS_OF - dt.timedelta(days=retention_days - 1)
        return [e for e in self.timeline() if first <= e["event_date"] <= AS_OF]

    def published_members(self) -> list[dict[str, Any]]:
        """Rows of each segment's latest run on or before AS_OF."""
        latest: dict[str, tuple] = {}
        for m in self.membership:
            if m["as_of_date"] <= AS_OF:
                key = (m["as_of_date"], m["computed_at"], m["run_id"])
                latest[m["segment_id"]] = max(latest.get(m["segment_id"], key), key)
        return [
            m
            for m in self.membership
            if m["segment_id"] in latest and (m["as_of_date"], m["computed_at"], m["run_id"]) == latest[m["segment_id"]]
        ]

    def published_history(self, retention_days: int = 180, runs_table: list[dict] = ()) -> list[dict[str, Any]]:
        """segment_member_history as the publish computes it (mo.serving_store.extract), in plain Python;
        ``runs_table``: rows of segments.runs (runs that matched nobody included)."""
        first = AS_OF - dt.timedelta(days=retention_days - 1)
        rows = [m for m in self.membership if first <= m["as_of_date"] <= AS_OF]
        runs: dict[tuple[str, str], tuple] = {}
        for m in [*rows, *(r for r in runs_table if first <= r["as_of_date"] <= AS_OF)]:
            key = (m["segment_id"], m["run_id"])
            runs[key] = max(runs.get(key, (m["as_of_date"], m["computed_at"])), (m["as_of_date"], m["computed_at"]))
        day_runs: dict[tuple[str, dt.date], tuple] = {}
        for (segment, run), (day, computed) in runs.items():
            day_runs[(segment, day)] = max(day_runs.get((segment, day), (computed, run)), (computed, run))
        sequence: dict[str, list[tuple[dt.date, str]]] = {}
        for (segment, day), (_, run) in sorted(day_runs.items()):
            sequence.setdefault(segment, []).append((day, run))
        history = []
        for segment, days in sequence.items():
            state: dict[int, dict[str, Any]] = {}  # customer -> open stretch
            for index, (day, run) in enumerate(days):
                now = {
                    m["customer_id"]: (m["segment_version"], json.dumps(m["matched_clauses"], separators=(",", ":")))
                    for m in rows
                    if m["segment_id"] == segment and m["run_id"] == run
                }
                for cid, stretch in list(state.items()):
                    if now.get(cid) != (stretch["segment_version"], stretch["matched_clauses"]):
                        history.append({**stretch, "valid_to": day - dt.timedelta(days=1)})
                        del state[cid]
                for cid, (version, clauses) in now.items():
                    if cid not in state:
                        state[cid] = {
                            "segment_id": segment,
                            "customer_id": cid,
                            "valid_from": day,
                            "segment_version": version,
                            "matched_clauses": clauses,
                        }
                assert index < len(days)
            history += [{**stretch, "valid_to": None} for stretch in state.values()]
        return history

    def history_from(self, retention_days: int = 180) -> dict[str, dt.date]:
        first = AS_OF - dt.timedelta(days=retention_days - 1)
        days: dict[str, dt.date] = {}
        for m in self.membership:
            if first <= m["as_of_date"] <= AS_OF:
                days[m["segment_id"]] = min(days.get(m["segment_id"], m["as_of_date"]), m["as_of_date"])
        return days

    # -- Arrow, as publish_batches takes it ---------------------------------------------------------
    def batches(self) -> dict[str, list[pa.RecordBatch]]:
        contract = load_serving_contract()
        members = self.published_members()
        sizes: dict[str, int] = {}
        for m in members:
            sizes[m["segment_id"]] = sizes.get(m["segment_id"], 0) + 1
        segments = [
            {
                "segment_id": d["segment_id"],
                "segment_version": d["version"],
                "name": d["name"],
                "kind": d["kind"],
                "rule": d["rule"],
                "size": sizes.get(d["segment_id"], 0),
                "run_id": None,
                "as_of_date": AS_OF,
                "refreshed_at": None,
                "history_from": self.history_from().get(d["segment_id"]),
            }
            for d in self.definitions
        ]
        half = len(self.profiles) // 2
        members_rows = [{**m, "matched_clauses": json.dumps(m["matched_clauses"])} for m in members]
        return {
            # Two batches: loads must append, not replace.
            "customer_profile": [
                to_arrow(contract.tables["customer_profile"], self.profiles[:half]),
                to_arrow(contract.tables["customer_profile"], self.profiles[half:]),
            ],
            "customer_event_daily": [to_arrow(contract.tables["customer_event_daily"], self.recent_events())],
            "customer_events": [to_arrow(contract.tables["customer_events"], self.recent_timeline())],
            "segments": [to_arrow(contract.tables["segments"], segments)],
            "segment_members": [to_arrow(contract.tables["segment_members"], members_rows)],
            "segment_member_history": [to_arrow(contract.tables["segment_member_history"], self.published_history())],
        }

    def redis_batches(self) -> list[pa.RecordBatch]:
        contract = load_serving_contract()
        segs: dict[int, list[str]] = {}
        for m in self.published_members():
            segs.setdefault(m["customer_id"], []).append(m["segment_id"])
        rows = [{**p, "segments": ",".join(sorted(segs.get(p["customer_id"], [])))} for p in self.profiles]
        batch = to_arrow(contract.tables["customer_profile"], rows)
        return [batch.append_column("segments", pa.array([r["segments"] for r in rows], pa.string()))]


def to_arrow(table: ServingTable, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    arrays = []
    for c in table.columns:
        values = [r.get(c.name) for r in rows]
        if c.type == "json":
            values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
        arrays.append(pa.array(values, ARROW_TYPES[c.type]))
    return pa.RecordBatch.from_arrays(arrays, names=table.column_names)


def make_world(tag: str, customers: int, seed: int) -> World:
    rng = random.Random(seed)
    columns = mart_columns("customer_profile")
    profiles = [{c["name"]: _value(c, cid, rng, tag) for c in columns} for cid in range(1, customers + 1)]
    events = []
    for p in profiles:
        for day in rng.sample(range(0, 400), 3):
            events.append(
                {
                    "customer_id": p["customer_id"],
                    "event_type": rng.choice(EVENT_TYPES),
                    "event_date": AS_OF - dt.timedelta(days=day - 20),  # some after as_of, some long ago
                    "event_count": rng.randint(1, 4),
                }
            )
    # Deduplicate the (customer, type, day) key.
    events = list({(e["customer_id"], e["event_type"], e["event_date"]): e for e in events}.values())
    definitions = [
        {"segment_id": f"{tag}_loyal", "version": 2, "name": f"{tag} loyal", "kind": "dynamic", "rule": '{"all": []}'},
        {"segment_id": f"{tag}_static", "version": 1, "name": f"{tag} static", "kind": "static", "rule": None},
    ]
    membership = []
    for run, (run_day, share) in enumerate(
        [(AS_OF - dt.timedelta(days=1), 0.5), (AS_OF, 0.3), (AS_OF + dt.timedelta(days=1), 0.9)]
    ):
        computed = dt.datetime.combine(run_day, dt.time(3), tzinfo=dt.UTC)
        for p in profiles:
            if rng.random() < share:
                membership.append(
                    {
                        "run_id": f"run{run}",
                        "as_of_date": run_day,
                        "segment_id": f"{tag}_loyal",
                        "segment_version": 2,
                        "customer_id": p["customer_id"],
                        "matched_clauses": ["/all/0: claims_12m >= 1"],
                        "computed_at": computed,
                    }
                )
    for p in profiles[:5]:
        membership.append(
            {
                "run_id": "upload1",
                "as_of_date": AS_OF - dt.timedelta(days=10),
                "segment_id": f"{tag}_static",
                "segment_version": 1,
                "customer_id": p["customer_id"],
                "matched_clauses": [],
                "computed_at": dt.datetime(2026, 3, 21, tzinfo=dt.UTC),
            }
        )
    return World(tag, profiles, events, definitions, membership)
