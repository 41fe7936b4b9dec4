"""Segment definitions: the example folder, validation messages naming file and node, and the versioned store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mo.segments.definitions import (
    EXAMPLES_DIR,
    DefinitionError,
    SegmentNotFound,
    definition_history,
    get_definition,
    load_definitions,
    parse_definition,
    save_definition,
    save_definitions,
)

BASE = {"id": "vip-list", "name": "VIPs", "description": "d", "owner": "crm"}


def test_examples_are_valid_insurer_segments():
    definitions = load_definitions(EXAMPLES_DIR)
    assert {d.id for d in definitions} == {
        "auto-renewal-30d-push",
        "recent-claimants",
        "engaged-message-openers",
        "high-value-family-no-health",
        "dormant-app-users",
        "young-urban",
        "likely-renewers-top-1000",
    }
    assert all(d.kind == "dynamic" and d.rule for d in definitions if d.id != "likely-renewers-top-1000")
    smart = next(d for d in definitions if d.id == "likely-renewers-top-1000")
    assert smart.kind == "smart" and smart.smart == {"model": "renewal", "top_n": 1000}
    yaml_one = next(d for d in definitions if d.id == "high-value-family-no-health")
    assert yaml_one.source is not None and yaml_one.source.endswith(".yaml")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({**BASE, "kind": "dynamic"}, ["#: 'rule' is a required property"]),
        (
            {**BASE, "kind": "static", "static": {"source": "upload"}, "rule": {"attr": "age", "op": "gt", "value": 1}},
            ["#/rule: not allowed for a static segment (only static)"],
        ),
        ({**BASE, "kind": "static", "static": {"source": "csv"}}, ["#/static: 'path' is a required property"]),
        (
            {**BASE, "kind": "smart", "smart": {"model": "renewal", "threshold": 0.7, "top_n": 100}},
            ["#/smart: give exactly one of threshold or top_n"],
        ),
        ({**BASE, "id": "VIP list", "kind": "smart", "smart": {"model": "renewal", "top_n": 5}}, ["#/id: "]),
        (
            {**BASE, "kind": "dynamic", "rule": {"all": [{"attr": "age", "op": "gt", "value": 1}, {"attr": "x"}]}},
            ["#/rule/all/1: 'op' is a required property", "#/rule/all/1/attr: 'x' is not a column of customer_profile"],
        ),
    ],
)
def test_definition_errors_name_the_file_and_node(document, expected):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(document, source="segments/vip.json")
    rendered = [str(p) for p in caught.value.problems]
    assert len(rendered) == len(expected), rendered
    for got, want in zip(rendered, expected, strict=True):
        assert got.startswith(f"segments/vip.json{want}"), rendered


def test_folder_reports_every_bad_file_and_duplicate_ids(tmp_path: Path):
    good = {**BASE, "kind": "static", "static": {"source": "upload"}}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.yaml").write_text(
        "id: vip-list\nname: again\ndescription: d\nowner: o\nkind: static\nstatic: {source: upload}\n"
    )
    (tmp_path / "c.json").write_text(
        json.dumps({**BASE, "id": "c-seg", "kind": "dynamic", "rule": {"attr": "gender", "op": "eq", "value": "X"}})
    )
    (tmp_path / "d.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path)
    message = str(caught.value)
    assert message.startswith("invalid segment definition (3 problems): ")
    assert f"{tmp_path / 'b.yaml'}#/id: segment id 'vip-list' is also defined in {tmp_path / 'a.json'}" in message
    assert f"{tmp_path / 'c.json'}#/rule/value: 'X' is not one of the values of gender (M, F)" in message
    assert f"{tmp_path / 'd.json'}#: not valid JSON" in message


def test_static_csv_path_resolves_next_to_the_definition(tmp_path: Path):
    (tmp_path / "lists").mkdir()
    path = tmp_path / "event-guests.json"
    path.write_text(
        json.dumps({**BASE, "id": "event-guests", "kind": "static", "static": {"source": "csv", "path": "lists/g.csv"}})
    )
    (definition,) = load_definitions(tmp_path)
    assert definition.static_csv == tmp_path / "lists" / "g.csv"


@pytest.mark.spark
def test_saving_a_changed_definition_creates_the_next_version(spark, settings):
    from spark_jobs.session import get_spark

    lake = get_spark(settings)
    young = next(d for d in load_definitions() if d.id == "young-urban")
    claimants = next(d for d in load_definitions() if d.id == "recent-claimants")
    assert save_definitions(lake, settings, [young, claimants], created_by="alice") == {
        "young-urban": 1,
        "recent-claimants": 1,
    }
    assert save_definition(lake, settings, young, created_by="bob") == 1, "same content: no new version"

    changed = parse_definition({**young.to_dict(), "rule": {"attr": "age", "op": "lt", "value": 28}})
    assert save_definition(lake, settings, changed, created_by="bob") == 2
    history = definition_history(lake, settings, "young-urban")
    assert [(h.version, h.created_by) for h in history] == [(1, "alice"), (2, "bob")]
    assert history[0].definition == young and history[1].definition == changed
    assert get_definition(lake, settings, "young-urban").version == 2
    assert get_definition(lake, settings, "young-urban", 1).definition.rule == young.rule
    assert get_definition(lake, settings, "recent-claimants").version == 1
    with pytest.raises(SegmentNotFound, match="'young-urban' has no version 7"):
        get_definition(lake, settings, "young-urban", 7)
    with pytest.raises(SegmentNotFound, match="'nobody' has no stored definition"):
        get_definition(lake, settings, "nobody")


def test_check_path_validates_definitions_folders_and_bare_rules(tmp_path: Path):
    from mo.segments.definitions import check_path
    from mo.segments.rules import RuleError

    assert len(check_path(EXAMPLES_DIR)) == 7
    assert check_path(EXAMPLES_DIR / "young-urban.json") == [
        f"young-urban: dynamic segment, valid ({EXAMPLES_DIR / 'young-urban.json'})"
    ]
    rule = tmp_path / "rule.yaml"
    rule.write_text("all:\n- {attr: age, op: gte, value: 18}\n- {event: claim_filed, within_days: 30}\n")
    assert check_path(rule) == [f"{rule}: valid segment rule"]
    rule.write_text("all:\n- {attr: age, op: gte, value: eighteen}\n")
    with pytest.raises(RuleError, match=r"rule.yaml#/all/0/value: 'eighteen' is not an integer \(age is int\)"):
        check_path(rule)
