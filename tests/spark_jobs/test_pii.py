"""Tokens computed with native Spark functions equal Python's HMAC-SHA256; masks show only what they may."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mo.contracts import load_source_contracts
from spark_jobs.pii import mask, normalise, token, transform_restricted, transform_tokenise

pytestmark = pytest.mark.spark

MESSAGES = ["13812341234", "张三", "浙江省杭州市西湖区文三路 8 号", "", "a" * 200, "330106199001011234"]
KEYS = [b"test-key", b"k" * 64, b"a-key-longer-than-one-sha256-block-" * 3, "中文密钥".encode()]


@pytest.mark.parametrize("key", KEYS, ids=["short", "block", "long", "utf8"])
def test_spark_hmac_equals_python_hmac(spark, key):
    from pyspark.sql import functions as F

    from spark_jobs.pii import hmac_sha256_hex

    frame = spark.createDataFrame([(m,) for m in MESSAGES], "m string")
    rows = frame.select("m", hmac_sha256_hex(F.col("m"), key).alias("h")).collect()
    for row in rows:
        assert row["h"] == hmac.new(key, row["m"].encode("utf-8"), hashlib.sha256).hexdigest(), row["m"]


def test_python_masks_and_normalisation():
    assert mask("name", "张三丰") == "张**"
    assert mask("id_number", "33010619900101123x") == "330***********123X"
    assert mask("phone", "+86 138-1234-1234") == "138****1234"
    assert mask("plate", "浙A·12345") == "浙A****5"
    assert mask("address", "浙江省杭州市西湖区文三路8号") == "浙江省杭州市****"
    assert mask("identifier", "wx_abc") is None
    assert normalise("phone", "+86 138-1234-1234") == normalise("phone", "13812341234")
    assert token(b"k", "plate", "浙a 12345") == token(b"k", "plate", "浙A·12345")
    assert token(b"k", "phone", None) is None


def test_spark_tokens_and_masks_equal_the_python_reference(spark):
    key = b"test-key"
    contract = load_source_contracts()["customers"]
    columns = [c.name for c in contract.columns]
    values = {
        "name": "欧阳娜娜",
        "id_number": " 33010619900101123x ",
        "phone": "+86 139 0000 1111",
        "wechat_openid": "oWx_123",
        "app_user_id": None,
    }
    row = tuple(values.get(c) for c in columns)
    schema = ", ".join(f"{c.name} {'string' if c.name in values else c.spark_type}" for c in contract.columns)
    frame = spark.createDataFrame([row], schema)

    out = transform_tokenise(frame, contract, key).collect()[0].asDict()
    assert not set(values) & set(out), "a clear PII column survived"
    for c in contract.pii_columns:
        if f"{c.name}_token" in out:
            assert out[f"{c.name}_token"] == token(key, c.pii, values[c.name]), c.name
        if f"{c.name}_masked" in out:
            assert out[f"{c.name}_masked"] == mask(c.pii, values[c.name]), c.name
    assert out["name_masked"] == "欧**"
    assert out["id_number_masked"] == "330***********123X"
    assert out["phone_masked"] == "139****1111"
    assert "name_token" not in out and "wechat_openid_masked" not in out
    assert out["app_user_id_token"] is None
    ordered = [c for c in out if c.startswith(("name", "id_number", "phone"))]
    assert ordered == ["name_masked", "id_number_token", "id_number_masked", "phone_token", "phone_masked"]

    clear = transform_restricted(frame, contract, key).collect()[0].asDict()
    assert clear["id_number"] == values["id_number"]
    assert clear["id_number_token"] == out["id_number_token"]


def test_plate_and_address_masks_in_spark(spark):
    key = b"test-key"
    contract = load_source_contracts()["policies"]
    frame = spark.createDataFrame(
        [
            tuple(
                "浙A·12345"
                if c.name == "vehicle_plate"
                else "北京市朝阳区建国路1号"
                if c.name == "property_address"
                else None
                for c in contract.columns
            )
        ],
        ", ".join(f"{c.name} {c.spark_type}" for c in contract.columns),
    )
    out = transform_tokenise(frame, contract, key).collect()[0].asDict()
    assert out["vehicle_plate_masked"] == "浙A****5"
    assert out["vehicle_plate_token"] == token(key, "plate", "浙a 12345")
    assert out["property_address_masked"] == "北京市朝阳区****"
