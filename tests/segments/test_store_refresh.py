"""One definition store: a segment made through the API (written to the core database's definition store) is
computed by the next segments refresh like the files' segments, under the store's version number."""

from __future__ import annotations

import shutil

import pytest

from mo.segments import store as segment_store
from mo.segments.definitions import EXAMPLES_DIR, parse_definition
from mo.segments.membership import members_at, refresh_from_folder
from tests.segments.profile_data import AS_OF, make_world
from tests.segments.test_membership import write_marts

BASE = {"name": "n", "description": "d", "owner": "crm"}


@pytest.mark.spark
def test_a_store_segment_is_computed_by_the_refresh_under_the_stores_version(spark, settings, tmp_path):
    from sqlalchemy import text

    from mo.oltp.db import make_engine, migrate
    from spark_jobs.session import get_spark

    lake = get_spark(settings)
    profiles, events = make_world(60, seed=5)
    write_marts(lake, settings, profiles, events)
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    # What the API's create and edit do: v1, then v2 with a narrower rule; a static list with ids.
    rule_v1 = {"attr": "age", "op": "gte", "value": 30}
    rule_v2 = {"all": [rule_v1, {"attr": "gender", "op": "eq", "value": "F"}]}
    made = parse_definition({**BASE, "id": "api-made", "kind": "dynamic", "rule": rule_v1})
    listed = parse_definition({**BASE, "id": "api-list", "kind": "static", "static": {"source": "upload"}})
    known = sorted(p["customer_id"] for p in profiles)[:4]
    with engine.begin() as conn:
        segment_store.create_segment(conn, made, created_by="user:marketer")
        segment_store.save_version(
            conn, parse_definition({**made.to_dict(), "rule": rule_v2}), created_by="user:marketer"
        )
        segment_store.create_segment(conn, listed, created_by="user:marketer")
        segment_store.save_version(conn, listed, created_by="user:marketer", members=[*known, 10**12])
        archived = parse_definition({**BASE, "id": "api-gone", "kind": "dynamic", "rule": rule_v1})
        segment_store.create_segment(conn, archived, created_by="user:marketer")
        segment_store.archive_segment(conn, "api-gone", archived_by="user:marketer")
    folder = tmp_path / "files"
    folder.mkdir()
    shutil.copy(EXAMPLES_DIR / "young-urban.json", folder)

    report = refresh_from_folder(settings, folder, as_of=AS_OF, run_id="store-run")

    by_id = {s.segment_id: s for s in report.segments}
    assert set(by_id) == {"api-made", "api-list", "young-urban"}  # the archived one is not computed
    assert (by_id["api-made"].version, by_id["young-urban"].version, by_id["api-list"].version) == (2, 1, 2)
    expected = sorted(p["customer_id"] for p in profiles if p["age"] >= 30 and p["gender"] == "F")
    assert expected
    made_members = members_at(lake, settings, "api-made", AS_OF)
    assert (made_members.segment_version, made_members.customer_ids) == (2, expected)
    assert members_at(lake, settings, "api-list", AS_OF).customer_ids == known  # the unknown id left out
    reasons = lake.sql(
        f"SELECT DISTINCT matched_clauses FROM {settings.catalog_name}.segments.membership "
        "WHERE segment_id = 'api-list'"
    ).collect()
    assert len(reasons) == 1 and len(reasons[0][0]) == 1
    assert reasons[0][0][0].startswith("static: list v2 uploaded ") and reasons[0][0][0].endswith("by user:marketer")
    with engine.connect() as conn:
        stored = segment_store.get_version(conn, "api-made")
    lake_rows = lake.sql(
        f"SELECT version, content_hash FROM {settings.catalog_name}.segments.definitions "
        "WHERE segment_id = 'api-made' ORDER BY version"
    ).collect()
    assert [(r.version, r.content_hash) for r in lake_rows] == [(2, stored.content_hash)]
    with engine.connect() as conn:
        origins = dict(conn.execute(text("SELECT segment_id, origin FROM segments")).all())
    assert origins["young-urban"] == "file" and origins["api-made"] == "api"
    engine.dispose()
