"""The customer profile as one Feast feature view: every column of the published customer_profile contract
(schemas/marts/customer_profile.yaml) plus the segment list, as the platform publishes them to Redis.

Feast has no date or map type: dates are ISO strings and custom_tags JSON text, as in the platform's
packed profile. The Parquet source is written by the bench into MO_BENCH_FEAST_DIR."""

import os
from datetime import timedelta
from pathlib import Path

import yaml
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Bool, Float64, Int32, Int64, String, UnixTimestamp

CONTRACT = Path(__file__).resolve().parents[3] / "schemas" / "marts" / "customer_profile.yaml"
FEAST_TYPES = {
    "bigint": Int64,
    "int": Int32,
    "string": String,
    "boolean": Bool,
    "double": Float64,
    "date": String,
    "timestamp": UnixTimestamp,
}


def _type(contract_type: str):
    return String if contract_type.startswith("map<") else FEAST_TYPES[contract_type]


columns = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))["columns"]
customer = Entity(name="customer", join_keys=["customer_id"])
source = FileSource(
    name="customer_profile_source",
    path=str(Path(os.environ["MO_BENCH_FEAST_DIR"]) / "profiles.parquet"),
    timestamp_field="event_timestamp",
)
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        *(Field(name=c["name"], dtype=_type(c["type"])) for c in columns if c["name"] != "customer_id"),
        Field(name="segments", dtype=String),
    ],
    source=source,
    online=True,
)
profile_service = FeatureService(name="customer_profile_service", features=[customer_profile])
