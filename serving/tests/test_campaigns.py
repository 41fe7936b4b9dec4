"""Campaigns through the API: the lifecycle, four eyes, every illegal move, template and schedule checks, stale
versions, previews from the published profile, and what is (not) written, audited and announced."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Account, ApiWorld, idem
from contact_worlds import database_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from mo.campaigns import lifecycle
from mo.campaigns.audience import snapshot_audience
from mo.events.contracts import check_event
from mo.oltp.api_tables import AuditEntry
from mo.oltp.campaign_tables import CAMPAIGN_STATUSES, Campaign, CampaignAudience, CampaignEvent
from mo.oltp.models import Product
from mo.oltp.outbox import OutboxEvent

CAMPAIGNS, EVENTS, AUDIT = Campaign.__table__, CampaignEvent.__table__, AuditEntry.__table__
OUTBOX, AUDIENCE, PRODUCTS = OutboxEvent.__table__, CampaignAudience.__table__, Product.__table__
PERSON_ACTIONS = ("submit", "approve", "reject", "schedule", "pause", "resume", "cancel")
SEGMENT = "auto-renewal-30d-push"


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sms(**params: str) -> dict[str, Any]:
    values = {
        "name": "{{profile.name_masked}}",
        "product": "{{product.name}}",
        "renewal_date": "{{profile.next_renewal_date}}",
        "link": "https://m.example-insurer.cn/r",
    }
    values.update(params)
    return {
        "channel": "sms",
        "template": {"sign_name": "中安保险", "template_code": "SMS_RENEWAL_01", "params": values},
    }


def campaign_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Auto renewal, December",
        "objective": "renewal",
        "product_line": "auto",
        "purpose": "marketing",
        "offer": {"type": "product", "product_code": "AU-COMP"},
        "segment_id": SEGMENT,
        "channels": [
            sms(),
            {
                "channel": "wechat",
                "template": {
                    "template_id": "TM_RENEWAL_REMINDER",
                    "url": "https://m.example.cn/r",
                    "data": {"thing1": "{{product.name}}", "time2": "{{profile.next_renewal_date}}", "thing3": "续保"},
                },
            },
            {"channel": "push", "template": {"title": "{{product.name}}续保", "body": "点击续保，保障不断档"}},
        ],
        "schedule": {"kind": "at", "start_at": later(days=2)},
        "priority": 50,
        "holdout_share": "0.1000",
        "ends_at": later(days=30),
    }
    body.update(changes)
    return body


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in (("campaigns", CAMPAIGNS), ("events", EVENTS), ("outbox", OUTBOX))
        }


def audit_of(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(AUDIT).where(AUDIT.c.action == action).order_by(AUDIT.c.id)).all()


def create(client: TestClient, who: Account, **changes: Any) -> dict[str, Any]:
    answer = client.post("/v1/campaigns", json=campaign_body(**changes), headers={**who.headers, **idem()})
    assert answer.status_code == 201, answer.text
    return answer.json()


def act(client: TestClient, who: Account, campaign: dict[str, Any] | int, action: str, **body: Any):  # type: ignore[no-untyped-def]
    campaign_id = campaign if isinstance(campaign, int) else campaign["id"]
    return client.post(f"/v1/campaigns/{campaign_id}/{action}", json=body, headers={**who.headers, **idem()})


@pytest.fixture(scope="module")
def people(make_account) -> dict[str, Account]:  # type: ignore[no-untyped-def]
    return {"marketer": make_account("marketer"), "approver": make_account("approver"),
            "analyst": make_account("analyst")}  # fmt: skip


def test_the_whole_lifecycle_is_recorded_audited_and_announced(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    marketer, approver = people["marketer"], people["approver"]
    before = counts(world.source)
    draft = create(client, marketer)
    assert draft["status"] == "draft" and draft["version"] == 1 and draft["segment_version"] is None
    assert draft["author"] == f"user:{marketer.username}"
    assert draft["allowed_actions"] == ["edit", "submit", "cancel"]
    assert [e["to_status"] for e in draft["events"]] == ["draft"]

    submitted = act(client, marketer, draft, "submit", version=1)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted" and submitted.json()["segment_version"] == 1
    approved = act(client, approver, draft, "approve", note="wording checked")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approver"] == f"user:{approver.username}"
    scheduled = act(client, marketer, draft, "schedule").json()
    assert scheduled["status"] == "scheduled"
    assert scheduled["next_run_at"] == draft["schedule"]["start_at"]
    assert act(client, marketer, draft, "pause").json()["status"] == "paused"
    assert act(client, marketer, draft, "resume").json()["status"] == "scheduled"
    # the dispatcher's moves go through the same lifecycle
    with world.source.begin() as conn:
        assert lifecycle.dispatcher_transition(conn, draft["id"], "start", request_id="dispatch-1") == "running"
    assert act(client, marketer, draft, "pause").json()["status"] == "paused"
    assert act(client, marketer, draft, "resume").json()["status"] == "running"  # back where it was paused
    with world.source.begin() as conn:
        assert lifecycle.dispatcher_transition(conn, draft["id"], "complete", request_id="dispatch-2") == "completed"

    final = client.get(f"/v1/campaigns/{draft['id']}", headers=people["analyst"].headers).json()
    statuses = ["draft", "submitted", "approved", "scheduled", "paused", "scheduled", "running", "paused", "running",
                "completed"]  # fmt: skip
    assert [e["to_status"] for e in final["events"]] == statuses
    assert final["version"] == len(statuses) and final["allowed_actions"] == []
    assert [e["role"] for e in final["events"]][:3] == ["marketer", "marketer", "approver"]
    after = counts(world.source)
    assert after["campaigns"] == before["campaigns"] + 1
    assert after["events"] == before["events"] + len(statuses)
    with world.source.connect() as conn:
        events = [json.loads(p) for p in conn.execute(
            select(OUTBOX.c.payload).where(OUTBOX.c.event_type == "campaign_status_changed").order_by(OUTBOX.c.id)
        ).scalars()]  # fmt: skip
    mine = [e for e in events if e["payload"]["campaign_id"] == draft["id"]]
    assert [e["payload"]["to_status"] for e in mine] == statuses
    for event in mine:
        check_event(event)
    assert mine[3]["payload"]["next_run_at"].startswith(draft["schedule"]["start_at"][:19])
    assert [e["payload"]["changed_by"] for e in mine][-4:] == ["system", "marketer", "marketer", "system"]
    # every change audited, the person's and the dispatcher's
    for action in ("campaigns.create", "campaigns.submit", "campaigns.approve", "campaigns.schedule",
                   "campaigns.start", "campaigns.complete"):  # fmt: skip
        assert any(
            draft["campaign_code"] in (r.detail or "") and r.outcome == "ok" for r in audit_of(world.source, action)
        ), action


def test_rejection_needs_a_note_and_the_author_edits_and_submits_again(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    marketer, approver = people["marketer"], people["approver"]
    campaign = create(client, marketer)
    assert act(client, marketer, campaign, "submit").status_code == 200
    no_note = act(client, approver, campaign, "reject")
    assert no_note.status_code == 422 and no_note.json()["errors"] == [
        {"field": "/body/note", "message": "required to reject"}
    ]
    rejected = act(client, approver, campaign, "reject", note="Too pushy")
    assert rejected.json()["status"] == "rejected" and rejected.json()["decision_note"] == "Too pushy"
    edit = {"version": rejected.json()["version"], "name": "Gentler"}
    edited = client.patch(f"/v1/campaigns/{campaign['id']}", json=edit, headers=marketer.headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["name"] == "Gentler" and edited.json()["status"] == "rejected"
    assert act(client, marketer, campaign, "submit").json()["status"] == "submitted"


@pytest.mark.parametrize("status", list(CAMPAIGN_STATUSES))
def test_every_illegal_action_is_409_naming_the_allowed_ones_and_writes_nothing(
    world: ApiWorld, client: TestClient, people: dict[str, Account], status: str
) -> None:
    campaign = create(client, people["marketer"])
    with world.source.begin() as conn:  # put it in the status directly: each status, each action
        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign["id"]).values(status=status))
    allowed = [a for a in lifecycle.allowed_actions(status) if lifecycle.ACTIONS[a].by != "system"]
    for action in PERSON_ACTIONS:
        if action in allowed:
            continue
        who = people["approver"] if action in ("approve", "reject") else people["marketer"]
        before = counts(world.source)
        answer = act(client, who, campaign, action, note="n")
        assert answer.status_code == 409, (action, answer.text)
        problem = answer.json()
        assert (
            problem["status"] == 409 and problem["allowed_actions"] == allowed and problem["current_status"] == status
        )
        assert f"cannot {action}" in problem["detail"] and problem["type"].endswith("illegal-transition")
        assert counts(world.source) == before
    refused = [r for r in audit_of(world.source, "campaigns.cancel") if r.status_code == 409]
    if "cancel" not in allowed:
        assert refused, "a refused attempt is audited"
    if status not in ("draft", "rejected"):
        edit = client.patch(f"/v1/campaigns/{campaign['id']}", json={"version": 1, "name": "x"},
                            headers=people["marketer"].headers)  # fmt: skip
        assert edit.status_code == 409 and edit.json()["allowed_actions"] == allowed


def test_four_eyes_the_author_cannot_approve_or_reject(
    world: ApiWorld, client: TestClient, people: dict[str, Account], make_account
) -> None:  # type: ignore[no-untyped-def]
    approver = make_account("approver")
    campaign = create(client, people["marketer"])
    assert act(client, people["marketer"], campaign, "submit").status_code == 200
    # a person holding both roles (an approver account with the author's name): the author is the approver
    with world.source.begin() as conn:
        conn.execute(
            update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign["id"]).values(author=f"user:{approver.username}")
        )
    before = counts(world.source)
    for action in ("approve", "reject"):
        answer = act(client, approver, campaign, action, note="fine")
        assert answer.status_code == 403, answer.text
        assert answer.json()["type"].endswith("four-eyes") and "four eyes" in answer.json()["detail"]
    assert counts(world.source) == before
    refused = [r for r in audit_of(world.source, "campaigns.approve") if r.actor == f"user:{approver.username}"]
    assert refused and refused[-1].outcome == "denied" and refused[-1].status_code == 403
    # a marketer cannot approve at all (no campaigns:approve)
    assert act(client, people["marketer"], campaign, "approve").status_code == 403
    # and an unapproved campaign cannot be scheduled
    schedule = act(client, people["marketer"], campaign, "schedule")
    assert schedule.status_code == 409 and schedule.json()["allowed_actions"] == ["approve", "reject", "cancel"]


def _refused(client: TestClient, world: ApiWorld, who: Account, body: dict[str, Any]) -> dict[str, Any]:
    before = counts(world.source)
    answer = client.post("/v1/campaigns", json=body, headers={**who.headers, **idem()})
    assert answer.status_code == 422, answer.text
    assert counts(world.source) == before  # nothing written
    errors: dict[str, str] = {}
    for error in answer.json()["errors"]:
        errors[error["field"]] = " | ".join(filter(None, [errors.get(error["field"]), error["message"]]))
    return errors


def test_bad_templates_are_refused_naming_the_field(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    marketer = people["marketer"]
    unsigned = sms()
    unsigned["template"]["sign_name"] = "某某保险"
    errors = _refused(client, world, marketer, campaign_body(channels=[unsigned]))
    assert "not registered" in errors["/body/channels/0/template/sign_name"]

    missing = sms()
    del missing["template"]["params"]["renewal_date"]
    errors = _refused(client, world, marketer, campaign_body(channels=[missing]))
    assert "needs variable 'renewal_date'" in errors["/body/channels/0/template/params/renewal_date"]

    too_long = sms(name="尊敬的客户" * 8)
    errors = _refused(client, world, marketer, campaign_body(channels=[too_long]))
    assert "over the provider's 35 per variable" in errors["/body/channels/0/template/params/name"]

    # an SMS link is sent as a tracked short link: any length of target, but only to an allowed host
    off_list = sms(link="https://m.example.cn/renewal?campaign=december-2026&ref=sms-long")
    errors = _refused(client, world, marketer, campaign_body(channels=[off_list]))
    assert "not on the allow-list" in errors["/body/channels/0/template/params/link"]

    unknown = sms(name="{{profile.full_name}}")
    errors = _refused(client, world, marketer, campaign_body(channels=[unknown]))
    assert "unknown placeholder {{profile.full_name}}" in errors["/body/channels/0/template/params/name"]

    code = {"channel": "push", "template": {"title": "{{ product.name.__class__ }}", "body": "{% for x in y %}"}}
    errors = _refused(client, world, marketer, campaign_body(channels=[code]))
    assert "malformed placeholder" in errors["/body/channels/0/template/title"]
    assert "malformed placeholder" not in errors.get("/body/channels/0/template/body", "")  # plain text, not code

    wechat = {"channel": "wechat", "template": {"template_id": "TM_RENEWAL_REMINDER", "data": {"thing1": "x"}}}
    errors = _refused(client, world, marketer, campaign_body(channels=[wechat]))
    assert "needs field 'time2'" in errors["/body/channels/0/template/data/time2"]

    push = {"channel": "push", "template": {"title": "续" * 21, "body": "ok"}}
    errors = _refused(client, world, marketer, campaign_body(channels=[push]))
    assert "over the push limit of 20" in errors["/body/channels/0/template/title"]

    coupon = {"channel": "coupon", "template": {"stock_id": "STOCK_NOPE"}}
    errors = _refused(client, world, marketer, campaign_body(channels=[coupon]))
    assert "not registered" in errors["/body/channels/0/template/stock_id"]


def test_schedules_and_offers_are_checked(world: ApiWorld, client: TestClient, people: dict[str, Account]) -> None:
    marketer = people["marketer"]
    errors = _refused(client, world, marketer, campaign_body(schedule={"kind": "at", "start_at": later(hours=-1)}))
    assert "in the past" in errors["/body/schedule/start_at"]
    errors = _refused(client, world, marketer, campaign_body(ends_at=later(minutes=-5)))
    assert "in the past" in errors["/body/ends_at"]
    recurring = {"kind": "recurring", "frequency": "weekly", "local_time": "25:00", "time_zone": "Mars/Olympus"}
    errors = _refused(client, world, marketer, campaign_body(schedule=recurring))
    assert {"/body/schedule/local_time", "/body/schedule/time_zone", "/body/schedule/weekdays"} <= set(errors)
    errors = _refused(client, world, marketer, campaign_body(offer={"type": "product", "product_code": "HE-NOPE"}))
    assert "not in the catalogue" in errors["/body/offer/product_code"]
    errors = _refused(client, world, marketer, campaign_body(segment_id="no-such-segment"))
    assert "does not exist" in errors["/body/segment_id"]
    errors = _refused(client, world, marketer, campaign_body(purpose="service"))
    assert "/body/purpose" in errors
    refused = [r for r in audit_of(world.source, "campaigns.create") if r.status_code == 422]
    assert len(refused) >= 7  # attempts audited


def test_a_scheduled_time_that_passed_before_scheduling_is_refused(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    marketer = people["marketer"]
    campaign = create(client, marketer)
    assert act(client, marketer, campaign, "submit").status_code == 200
    assert act(client, people["approver"], campaign, "approve").status_code == 200
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    with world.source.begin() as conn:
        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign["id"]).values(
            schedule=json.dumps({"kind": "at", "start_at": past.strftime("%Y-%m-%dT%H:%M:%SZ")})))  # fmt: skip
    before = counts(world.source)
    answer = act(client, marketer, campaign, "schedule")
    assert answer.status_code == 422 and "/campaign/schedule/start_at" in {e["field"] for e in answer.json()["errors"]}
    assert counts(world.source) == before


def test_submission_pins_the_segments_current_version_and_refuses_an_archived_one(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    """Against the real definition store: a segment made and edited through the segments API is pinned at its
    latest version; once archived, a campaign on it cannot be submitted."""
    marketer = people["marketer"]
    segment_id = f"s-camp-{uuid.uuid4().hex[:8]}"
    rule = {"attr": "gender", "op": "eq", "value": "F"}
    definition = {"segment_id": segment_id, "name": "Women", "description": "Female customers.",
                  "owner": "growth-marketing", "kind": "dynamic", "rule": rule}  # fmt: skip
    made = client.post("/v1/segments", json=definition, headers={**marketer.headers, **idem()})
    assert made.status_code == 201, made.text
    edit = {k: v for k, v in definition.items() if k not in ("segment_id", "kind")}
    edit["rule"] = {"all": [rule, {"attr": "customer_tier", "op": "in", "value": ["gold", "platinum"]}]}
    url = f"/v1/segments/{segment_id}"
    assert client.post(f"{url}/versions", json=edit, headers={**marketer.headers, **idem()}).status_code in (200, 201)
    pinned = create(client, marketer, segment_id=segment_id)
    assert act(client, marketer, pinned, "submit").json()["segment_version"] == 2
    campaign = create(client, marketer, segment_id=segment_id)
    archived = client.post(f"{url}/archive", json={}, headers={**marketer.headers, **idem()})
    assert archived.status_code == 200, archived.text
    before = counts(world.source)
    answer = act(client, marketer, campaign, "submit")
    assert answer.status_code == 422, answer.text
    assert "archived" in {e["field"]: e["message"] for e in answer.json()["errors"]}["/campaign/segment_id"]
    assert counts(world.source) == before


def test_edits_need_the_current_version_and_the_author(
    world: ApiWorld, client: TestClient, people: dict[str, Account], make_account
) -> None:  # type: ignore[no-untyped-def]
    marketer = people["marketer"]
    campaign = create(client, marketer)
    url = f"/v1/campaigns/{campaign['id']}"
    first = client.patch(url, json={"version": 1, "priority": 70}, headers=marketer.headers)
    assert first.status_code == 200 and first.json()["version"] == 2 and first.json()["priority"] == 70
    before = counts(world.source)
    stale = client.patch(url, json={"version": 1, "priority": 80}, headers=marketer.headers)
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    assert stale.json()["errors"][0]["field"] == "/body/version"
    assert act(client, marketer, campaign, "submit", version=1).status_code == 409
    other = client.patch(url, json={"version": 2, "priority": 80}, headers=make_account("marketer").headers)
    assert other.status_code == 403
    bad = client.patch(url, json={"version": 2, "channels": [sms(name="{{offer.nope}}")]}, headers=marketer.headers)
    assert bad.status_code == 422 and "/body/channels/0/template/params/name" in bad.text
    empty = client.patch(url, json={"version": 2}, headers=marketer.headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "/body"
    assert counts(world.source) == before
    assert [e["to_status"] for e in client.get(url, headers=marketer.headers).json()["events"]] == ["draft", "draft"]


def test_posts_are_idempotent(world: ApiWorld, client: TestClient, people: dict[str, Account]) -> None:
    marketer = people["marketer"]
    key = idem()
    body = campaign_body()
    first = client.post("/v1/campaigns", json=body, headers={**marketer.headers, **key})
    before = counts(world.source)
    again = client.post("/v1/campaigns", json=body, headers={**marketer.headers, **key})
    assert again.status_code == 201 and again.json() == first.json() and counts(world.source) == before
    key = idem()
    submit = client.post(f"/v1/campaigns/{first.json()['id']}/submit", json={}, headers={**marketer.headers, **key})
    before = counts(world.source)
    replay = client.post(f"/v1/campaigns/{first.json()['id']}/submit", json={}, headers={**marketer.headers, **key})
    assert replay.status_code == 200 and replay.json() == submit.json() and counts(world.source) == before


def test_preview_renders_each_channel_from_the_catalogue_and_the_published_profile(
    world: ApiWorld, client: TestClient, people: dict[str, Account]
) -> None:
    from mo.serving_store.store import SqlServingStore

    campaign = create(client, people["marketer"])
    store = SqlServingStore(world.serving_url)
    with store.engine.connect() as conn:
        refresh = store.current_refresh(conn)
        from sqlalchemy import text

        profile = conn.execute(text(f"SELECT * FROM {store.qualified('customer_profile')} WHERE next_renewal_date "
                                    "IS NOT NULL ORDER BY customer_id LIMIT 1")).first()._mapping  # fmt: skip
    store.dispose()
    with world.source.connect() as conn:
        product_name = conn.execute(select(PRODUCTS.c.name).where(PRODUCTS.c.product_code == "AU-COMP")).scalar_one()
    url = f"/v1/campaigns/{campaign['id']}/preview?customer_id={profile['customer_id']}"
    answer = client.get(url, headers=people["analyst"].headers)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["refresh_id"] == refresh.refresh_id and preview["customer_id"] == profile["customer_id"]
    by_channel = {c["channel"]: c for c in preview["channels"]}
    text_sms = by_channel["sms"]["message"]["text"]
    assert text_sms.startswith("【中安保险】尊敬的" + profile["name_masked"]) and product_name in text_sms
    assert by_channel["sms"]["message"]["length"] == len(text_sms)
    assert by_channel["sms"]["message"]["parts"] == (1 if len(text_sms) <= 70 else -(-len(text_sms) // 67))
    assert by_channel["sms"]["payload"]["template_param"]["name"] == profile["name_masked"]
    assert by_channel["wechat"]["message"]["data"]["thing1"] == product_name
    assert by_channel["push"]["message"]["title"] == f"{product_name}续保"
    assert all(c["ok"] for c in preview["channels"])
    # one source of product facts: the name every channel states is the catalogue's, as GET /v1/products serves it
    catalogue = client.get("/v1/products/AU-COMP", headers=people["analyst"].headers).json()
    assert catalogue["name"] == product_name == by_channel["sms"]["payload"]["template_param"]["product"]
    only = client.get(url + "&channel=push", headers=people["approver"].headers).json()
    assert [c["channel"] for c in only["channels"]] == ["push"]
    assert client.get(url + "&channel=coupon", headers=people["approver"].headers).status_code == 422
    missing = client.get(
        f"/v1/campaigns/{campaign['id']}/preview?customer_id=999999999", headers=people["analyst"].headers
    )
    assert missing.status_code == 404


def test_list_pages_and_filters_by_status(world: ApiWorld, client: TestClient, people: dict[str, Account]) -> None:
    marketer = people["marketer"]
    made = [create(client, marketer)["id"] for _ in range(3)]
    act(client, marketer, made[0], "cancel")
    seen: list[int] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get("/v1/campaigns" + query, headers=people["analyst"].headers).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and set(made) <= set(seen)
    cancelled = client.get("/v1/campaigns?status=cancelled&limit=100", headers=marketer.headers).json()["items"]
    assert made[0] in [c["id"] for c in cancelled] and {c["status"] for c in cancelled} == {"cancelled"}
    assert client.get("/v1/campaigns?cursor=bm9wZQ", headers=marketer.headers).status_code == 422


def test_audience_snapshot_is_idempotent(world: ApiWorld, client: TestClient, people: dict[str, Account]) -> None:
    campaign = create(client, people["marketer"])
    members = [(1, ["age_band in ['25-34']"]), (2, {"clauses": ["a"]}), (3, None), (2, ["dup"])]
    with world.source.begin() as conn:
        first = snapshot_audience(conn, campaign, 1, iter(members[:2]))
    with world.source.begin() as conn:
        again = snapshot_audience(conn, campaign, 1, iter(members))
    assert (first.written, first.audience) == (2, 2) and (again.written, again.audience) == (1, 3)
    with world.source.connect() as conn:
        rows = {
            r.customer_id: r.reason
            for r in conn.execute(select(AUDIENCE).where(AUDIENCE.c.campaign_id == campaign["id"]))
        }
    assert rows == {1: "[\"age_band in ['25-34']\"]", 2: '{"clauses":["a"]}', 3: None}


# --- the real databases ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def db_world(request, world: ApiWorld, tmp_path_factory) -> Iterator[tuple[ApiWorld, TestClient]]:  # type: ignore[no-untyped-def]
    name = f"h_camp_{request.param[:5]}_{uuid.uuid4().hex[:6]}"
    with database_world(request.param, name, tmp_path_factory.mktemp(f"camp-{request.param}"), world) as built:
        yield built
    from conftest import MACHINE_MARIADB_URL, MACHINE_POSTGRES_URL
    from sqlalchemy import create_engine, text

    admin = create_engine(MACHINE_POSTGRES_URL if request.param == "postgresql" else MACHINE_MARIADB_URL,
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(
            text(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if request.param == "postgresql" else ""))
        )
    admin.dispose()


def _account(world: ApiWorld, client: TestClient, role: str) -> Account:
    from conftest import PASSWORD

    from app.services.accounts import create_user

    username = f"{role}-{uuid.uuid4().hex[:8]}"
    with world.source.begin() as conn:
        create_user(conn, username=username, password=PASSWORD, role=role)
    token = client.post("/v1/auth/token", data={"grant_type": "password", "username": username, "password": PASSWORD})
    return Account(role, username, token.json()["access_token"])


def test_lifecycle_on_postgresql_and_mariadb(db_world, people: dict[str, Account]) -> None:  # type: ignore[no-untyped-def]
    world, client = db_world
    marketer, approver = _account(world, client, "marketer"), _account(world, client, "approver")
    campaign = create(client, marketer, schedule={"kind": "recurring", "frequency": "daily", "local_time": "09:30",
                                                   "time_zone": "Asia/Shanghai"})  # fmt: skip
    assert act(client, marketer, campaign, "approve").status_code == 403  # a marketer holds no approval scope
    assert act(client, approver, campaign, "approve").status_code == 409  # not submitted yet
    assert act(client, marketer, campaign, "submit", version=1).status_code == 200
    assert act(client, marketer, campaign, "submit", version=2).status_code == 409
    assert act(client, approver, campaign, "approve", version=2).status_code == 200
    scheduled = act(client, marketer, campaign, "schedule").json()
    run = datetime.fromisoformat(scheduled["next_run_at"].replace("Z", "+00:00"))
    assert (run.hour, run.minute) == (1, 30) and run > datetime.now(UTC)  # 09:30 in Shanghai
    assert act(client, marketer, campaign, "cancel").json()["status"] == "cancelled"
    with world.source.connect() as conn:
        events = (
            conn.execute(select(EVENTS.c.to_status).where(EVENTS.c.campaign_id == campaign["id"]).order_by(EVENTS.c.id))
            .scalars()
            .all()
        )
        outbox = conn.execute(
            select(func.count()).select_from(OUTBOX).where(OUTBOX.c.event_type == "campaign_status_changed")
        ).scalar()
        audits = conn.execute(
            select(func.count()).select_from(AUDIT).where(AUDIT.c.action.like("campaigns.%"))
        ).scalar()
    assert events == ["draft", "submitted", "approved", "scheduled", "cancelled"]
    assert outbox == 5 and audits >= 5 + 3  # five changes and three refusals
    # two approvers deciding the same campaign at once: one wins, the other is told 409; one decision recorded
    second = create(client, marketer)
    assert act(client, marketer, second, "submit").status_code == 200
    other = _account(world, client, "approver")
    barrier = threading.Barrier(2)
    answers: list[Any] = [None, None]

    def decide(i: int, who: Account, action: str) -> None:
        barrier.wait()
        answers[i] = act(client, who, second, action, version=2, note="decided")

    threads = [threading.Thread(target=decide, args=(0, approver, "approve")),
               threading.Thread(target=decide, args=(1, other, "reject"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    with world.source.connect() as conn:
        decided = (
            conn.execute(
                select(EVENTS.c.to_status).where(
                    EVENTS.c.campaign_id == second["id"], EVENTS.c.from_status == "submitted"
                )
            )
            .scalars()
            .all()
        )
    assert len(decided) == 1
    with world.source.begin() as conn:
        snap = snapshot_audience(conn, campaign, 1, [(c, ["rule"]) for c in range(1, 41)])
    with world.source.begin() as conn:
        assert snapshot_audience(conn, campaign, 1, [(c, ["rule"]) for c in range(1, 41)]).written == 0
    assert snap.audience == 40


def test_the_funnel_reads_the_ledger_live(world: ApiWorld, client: TestClient, people: dict[str, Account]) -> None:
    from mo.campaigns.results import campaign_funnel
    from mo.oltp.campaign_tables import Delivery, LedgerEntry

    campaign = create(client, people["marketer"])
    empty = client.get(f"/v1/campaigns/{campaign['id']}/funnel", headers=people["marketer"].headers)
    assert empty.status_code == 200 and empty.json()["audience"] == 0 and empty.json()["uplift"] is None
    now = datetime.now(UTC).replace(tzinfo=None)
    with world.source.begin() as conn:
        outcomes = [("send", "ok"), ("suppress", "holdout"), ("suppress", "no_consent")]
        for cid, (decision, reason) in enumerate(outcomes, 1):
            key, message_id = f"campaign:{campaign['id']}:1:{cid}", str(uuid.uuid4()) if decision == "send" else None
            conn.execute(AUDIENCE.insert().values(campaign_id=campaign["id"], occurrence=1, customer_id=cid))
            ledger_id = conn.execute(
                LedgerEntry.__table__.insert().values(
                    touch_key=key, attempt=1, final_key=key, source="campaign", campaign_id=campaign["id"],
                    occurrence=1, customer_id=cid, channel="sms" if decision == "send" else None, purpose="marketing",
                    product_line="auto", priority=50, decision=decision, reason=reason, detail="{}",
                    message_id=message_id, decided_at=now,
                )
            ).inserted_primary_key[0]  # fmt: skip
            if decision == "send":
                sent = {"message_id": message_id, "ledger_id": ledger_id, "customer_id": cid, "at": now}
                conn.execute(Delivery.__table__.insert().values(state="sent", **sent))
    answer = client.get(f"/v1/campaigns/{campaign['id']}/funnel", headers=people["analyst"].headers)
    assert answer.status_code == 200, answer.text
    with world.source.connect() as conn:
        expected = campaign_funnel(conn, campaign["id"])
    assert expected is not None and answer.json() == json.loads(json.dumps(expected.as_dict()))
    assert answer.json()["audience"] == 3 and answer.json()["sent"] == 1
    assert answer.json()["suppressed"] == {"holdout": 1, "no_consent": 1}
    missing = client.get("/v1/campaigns/999999999/funnel", headers=people["marketer"].headers)
    assert missing.status_code == 404
