"""GET /v1/reports/campaigns and GET /v1/campaigns/{id}/results: the campaign results marts as published to the
serving store (rows written here through the platform's publish_batches, in the serving tables' contract),
read through the platform's reader; pages, filters, the uplift, roles and bad input."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import MACHINE_REDIS_URL, PASSWORD
from fastapi.testclient import TestClient
from sqlalchemy import insert

from app.core.config import Settings

AS_OF = date(2026, 12, 5)
REASONS = ["erased", "no_consent", "consent_withdrawn", "consent_unknown", "open_claim", "open_complaint",
           "risk_above_rating", "holdout", "cap_7d", "cap_30d", "cap_channel_7d", "customer_frequency",
           "campaign_ended", "no_channel"]  # fmt: skip


def _result(campaign_id: int, channel: str, line: str, period: str, start: date, sent: int) -> dict:
    label = f"{start.isocalendar()[0]}-W{start.isocalendar()[1]:02d}" if period == "week" else f"{start:%Y-%m}"
    row = {
        "campaign_id": campaign_id, "campaign_code": f"CMP-{campaign_id}", "campaign_name": "续保提醒",
        "channel": channel, "product_line": line, "period_type": period, "period_start": start,
        "period_label": label, "audience": sent + 5, "decided": sent + 4, "waiting": 1, "suppressed": 4,
    }  # fmt: skip
    row.update({f"suppressed_{r}": 0 for r in REASONS})
    row.update(suppressed_no_consent=3, suppressed_holdout=1, suppressed_other=0)
    row.update(sent=sent, delivered=sent - 1, failed=1, dead_letter=0, opened=2, clicked=1, converted=1)
    row.update(treated=sent + 2, treated_converted=2, holdout=1, holdout_converted=0)
    return row


def _uplift(key: str, scope: str, campaign_id: int | None, line: str) -> dict:
    return {
        "uplift_key": key, "uplift_scope": scope, "campaign_id": campaign_id,
        "campaign_code": f"CMP-{campaign_id}" if campaign_id else None, "product_line": line, "treated": 40,
        "treated_converted": 4, "holdout": 10, "holdout_converted": 0, "treated_rate": 0.1, "holdout_rate": 0.0,
        "difference": 0.1, "ci_low": -0.18, "ci_high": 0.23,
    }  # fmt: skip


def _batch(rows: list[dict], table) -> list[pa.RecordBatch]:  # type: ignore[no-untyped-def]
    kinds = {"bigint": pa.int64(), "int": pa.int32(), "string": pa.string(), "date": pa.date32(),
             "double": pa.float64()}  # fmt: skip
    schema = pa.schema([(c.name, kinds[c.type]) for c in table.columns])
    return [pa.RecordBatch.from_pylist(rows, schema=schema)]


@pytest.fixture(scope="module")
def reports(world, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An app over the world's source and a serving store with published campaign results; its campaigns."""
    from app.main import create_app
    from app.services.accounts import create_user
    from mo.oltp.campaign_tables import Campaign
    from mo.serving_store import publish_batches
    from mo.serving_store.store import SqlServingStore

    home: Path = tmp_path_factory.mktemp("campaign-reports")
    now = datetime(2026, 11, 20)
    ids = []
    with world.source.begin() as conn:
        for line in ("auto", "health"):
            ids.append(
                conn.execute(
                    insert(Campaign.__table__).values(
                        campaign_code=f"CMP-R-{uuid.uuid4().hex[:8]}",
                        name="续保提醒",
                        objective="renewal",
                        product_line=line,
                        purpose="marketing",
                        offer_type="product",
                        segment_id="s_renewal",
                        channels=json.dumps([{"channel": "sms"}]),
                        schedule=json.dumps({"kind": "now"}),
                        priority=5,
                        holdout_share=Decimal("0.1"),
                        ends_at=now,
                        status="completed",
                        author="user:m",
                        version=1,
                        created_at=now,
                        updated_at=now,
                    )  # fmt: skip
                ).inserted_primary_key[0]
            )
    first, second = ids
    weeks = [date(2026, 11, 23), date(2026, 11, 30)]
    results = [
        _result(c, channel, line, "week", week, 10 + i)
        for i, week in enumerate(weeks)
        for c, line in ((first, "auto"), (second, "health"))
        for channel in ("sms", "wechat")
    ] + [_result(first, "sms", "auto", "month", date(2026, 11, 1), 21), _result(first, "sms", "auto", "month",
                                                                                date(2026, 12, 1), 11)]  # fmt: skip
    uplift = [_uplift(f"campaign:{first}", "campaign", first, "auto"),
              _uplift("product_line:auto", "product_line", None, "auto"),
              _uplift("product_line:health", "product_line", None, "health")]  # fmt: skip
    store_url = f"sqlite:///{home / 'serving.db'}"
    store = SqlServingStore(store_url)
    contract = store.contract.tables
    publish_batches(
        store,
        as_of=AS_OF,
        tables={
            "campaign_results": _batch(results, contract["campaign_results"]),
            "campaign_uplift": _batch(uplift, contract["campaign_uplift"]),
        },
        published_by="campaign-reports-tests",
    )
    store.dispose()
    settings = Settings(source_url=world.source_url, database_url=store_url, redis_url=MACHINE_REDIS_URL)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        tokens = {}
        for role in ("marketer", "analyst", "claims_handler"):
            username = f"{role}-rep-{uuid.uuid4().hex[:6]}"
            with world.source.begin() as conn:
                create_user(conn, username=username, password=PASSWORD, role=role, org_id=None, agent_id=None)
            answer = client.post(
                "/v1/auth/token", data={"grant_type": "password", "username": username, "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            tokens[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield client, tokens, first, second, results


def test_the_weekly_report_pages_through_every_row_in_order(reports) -> None:
    client, tokens, first, second, results = reports
    seen, cursor = [], None
    while True:
        params = {"period": "week", "limit": 3} | ({"cursor": cursor} if cursor else {})
        answer = client.get("/v1/reports/campaigns", params=params, headers=tokens["analyst"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["as_of_date"] == AS_OF.isoformat() and body["period"] == "week"
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    weekly = [r for r in results if r["period_type"] == "week"]
    assert len(seen) == len(weekly) == 8
    keys = [(r["period_start"], r["campaign_id"], r["channel"]) for r in seen]
    assert keys == sorted(keys) and len(set(keys)) == 8
    assert seen[0]["suppressed_by_reason"]["no_consent"] == 3 and seen[0]["period_label"] == "2026-W48"
    assert {u["product_line"] for u in body["uplift_by_product_line"]} == {"auto", "health"}


def test_the_report_filters_by_period_dates_and_line(reports) -> None:
    client, tokens, first, _, _ = reports
    answer = client.get(
        "/v1/reports/campaigns",
        params={"period": "week", "from": "2026-11-30", "to": "2026-12-06", "product_line": "health"},
        headers=tokens["marketer"],
    )
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert len(items) == 2 and {(i["period_start"], i["product_line"]) for i in items} == {("2026-11-30", "health")}
    assert [u["product_line"] for u in answer.json()["uplift_by_product_line"]] == ["health"]
    months = client.get("/v1/reports/campaigns", params={"period": "month"}, headers=tokens["marketer"]).json()
    assert [(i["period_label"], i["sent"]) for i in months["items"]] == [("2026-11", 21), ("2026-12", 11)]


def test_a_campaigns_results_per_period_with_its_uplift(reports) -> None:
    client, tokens, first, second, _ = reports
    answer = client.get(f"/v1/campaigns/{first}/results", params={"period": "week"}, headers=tokens["analyst"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["campaign_id"] == first and len(body["items"]) == 4
    assert {i["campaign_id"] for i in body["items"]} == {first}
    assert body["uplift"]["scope"] == "campaign" and body["uplift"]["ci_low"] == -0.18
    other = client.get(f"/v1/campaigns/{second}/results", headers=tokens["analyst"]).json()
    assert other["uplift"] is None and len(other["items"]) == 4
    missing = client.get(f"/v1/campaigns/{second + 10**9}/results", headers=tokens["analyst"])
    assert missing.status_code == 404


def test_bad_input_and_roles(reports) -> None:
    client, tokens, first, _, _ = reports
    bad = client.get("/v1/reports/campaigns", params={"period": "year"}, headers=tokens["analyst"])
    assert bad.status_code == 422 and "period" in bad.text
    backwards = client.get(
        "/v1/reports/campaigns", params={"from": "2026-12-01", "to": "2026-11-01"}, headers=tokens["analyst"]
    )
    assert backwards.status_code == 422 and "/query/from" in backwards.text
    forged = client.get("/v1/reports/campaigns", params={"cursor": "bm90LWEta2V5"}, headers=tokens["analyst"])
    assert forged.status_code == 422 and "/query/cursor" in forged.text
    assert client.get("/v1/reports/campaigns", headers=tokens["claims_handler"]).status_code == 403
    assert client.get(f"/v1/campaigns/{first}/results", headers=tokens["claims_handler"]).status_code == 403
    assert client.get("/v1/reports/campaigns").status_code == 401
