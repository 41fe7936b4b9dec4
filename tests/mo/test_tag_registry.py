"""The tag registry: the shipped file is valid and complete, and bad entries fail naming tag and JSON path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mo.tags.registry import (
    REGISTRY_PATH,
    TagRegistryError,
    builtin_tags,
    load_profile_columns,
    load_registry,
    parse_registry,
    registry_vars,
)


@pytest.fixture
def document() -> dict:
    return yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))


def _custom(name: str = "test_tag", **rule) -> dict:
    return {
        "name": name,
        "description": "a test tag",
        "owner": "tests",
        "type": "custom",
        "value_type": "string",
        "group": "custom",
        "refresh": "daily",
        "rule": rule or {"cases": [{"when": {"attr": "age", "op": "gte", "value": 30}, "value": "x"}]},
    }


def _error(document: dict) -> str:
    with pytest.raises(TagRegistryError) as info:
        parse_registry(document)
    return str(info.value)


def test_shipped_registry_catalogues_every_builtin_profile_column():
    registry = load_registry()
    tag_columns = [c.name for c in load_profile_columns().values() if c.group not in ("identity", "meta", "custom")]
    assert sorted(builtin_tags(registry)) == sorted(tag_columns)
    assert {t.name for t in registry.custom} >= {"renewal_focus", "high_value_family", "engagement_status"}


def test_registry_vars_carry_only_custom_rules():
    variables = registry_vars()
    names = [t["name"] for t in variables["tag_registry"]]
    assert "renewal_focus" in names and "age_band" not in names
    assert set(variables["tag_registry"][0]) == {"name", "value_type", "rule"}


def test_load_registry_from_a_file(tmp_path: Path, document: dict):
    document["tags"].append(_custom("young_adult"))
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert load_registry(path).get("young_adult").type == "custom"
    assert registry_vars(load_registry(path))["tag_registry"][-1]["name"] == "young_adult"


def test_unquoted_yaml_date_is_accepted_as_iso_string(document: dict):
    document["tags"].append(
        _custom(
            "early", cases=[{"when": {"attr": "customer_since_date", "op": "lt", "value": "2020-01-01"}, "value": "y"}]
        )
    )
    # customer_since_date is identity, not a rule attribute
    assert "customer_since_date" in _error(document)
    document["tags"][-1]["rule"]["cases"][0]["when"] = {
        "attr": "next_renewal_date",
        "op": "lt",
        "value": yaml.safe_load("2026-01-31"),  # a datetime.date, as YAML reads it
    }
    assert parse_registry(document).get("early").rule["cases"][0]["when"]["value"] == "2026-01-31"


def test_unknown_column_names_tag_and_path(document: dict):
    bad = _custom(
        "renewal_soon",
        cases=[
            {
                "when": {
                    "all": [
                        {"attr": "has_auto", "op": "eq", "value": True},
                        {"attr": "days_to_renewl", "op": "lte", "value": 30},
                    ]
                },
                "value": "soon",
            }
        ],
    )
    document["tags"].append(bad)
    index = len(document["tags"]) - 1
    message = _error(document)
    assert "'renewal_soon'" in message
    assert f"/tags/{index}/rule/cases/0/when/all/1/attr" in message
    assert "days_to_renewl" in message


def test_schema_error_names_tag_and_path(document: dict):
    bad = _custom("between_one", cases=[{"when": {"attr": "age", "op": "between", "value": [30]}, "value": "x"}])
    document["tags"].append(bad)
    index = len(document["tags"]) - 1
    message = _error(document)
    assert "'between_one'" in message and f"/tags/{index}/rule/cases/0/when" in message


def test_unknown_operator_is_rejected(document: dict):
    document["tags"].append(
        _custom("like_tag", cases=[{"when": {"attr": "city", "op": "like", "value": "%"}, "value": "x"}])
    )
    message = _error(document)
    assert "'like_tag'" in message and "like" in message


def test_missing_field_is_rejected(document: dict):
    entry = _custom("no_owner")
    del entry["owner"]
    document["tags"].append(entry)
    message = _error(document)
    assert "'no_owner'" in message and "owner" in message


def test_value_of_wrong_type_for_column(document: dict):
    document["tags"].append(
        _custom("auto_str", cases=[{"when": {"attr": "has_auto", "op": "eq", "value": "yes"}, "value": "x"}])
    )
    message = _error(document)
    assert "'auto_str'" in message and "boolean" in message


def test_enum_value_outside_column_enum(document: dict):
    document["tags"].append(
        _custom("diamond", cases=[{"when": {"attr": "customer_tier", "op": "in", "value": ["diamond"]}, "value": "x"}])
    )
    assert "diamond" in _error(document)


def test_case_value_must_match_value_type(document: dict):
    entry = _custom()
    entry["value_type"] = "int"
    document["tags"].append(entry)
    message = _error(document)
    assert "'test_tag'" in message and "/rule/cases/0/value" in message


def test_case_value_must_be_a_declared_value(document: dict):
    entry = _custom()
    entry["values"] = ["a", "b"]
    document["tags"].append(entry)
    assert "declared values" in _error(document)


def test_custom_tag_cannot_shadow_a_profile_column(document: dict):
    document["tags"].append(_custom("age_band"))
    message = _error(document)
    assert "age_band" in message


def test_duplicate_names_are_rejected(document: dict):
    document["tags"].extend([_custom("twice"), _custom("twice")])
    assert "duplicate" in _error(document)


def test_builtin_must_match_its_column(document: dict):
    broken = copy.deepcopy(document)
    age = next(t for t in broken["tags"] if t["name"] == "age")
    age["value_type"] = "string"
    assert "'age'" in _error(broken)
    missing = copy.deepcopy(document)
    missing["tags"] = [t for t in missing["tags"] if t["name"] != "claims_12m"]
    assert "claims_12m" in _error(missing)
    unknown = copy.deepcopy(document)
    unknown["tags"].append({**_custom("shoe_size"), "type": "builtin", "group": "natural", "rule": {"builtin": "?"}})
    assert "'shoe_size'" in _error(unknown)


def test_builtin_rule_shape_is_checked(document: dict):
    document["tags"][0]["rule"] = {"cases": []}
    message = _error(document)
    assert f"'{document['tags'][0]['name']}'" in message and "/tags/0/rule" in message


def test_ordering_operator_on_boolean_is_rejected(document: dict):
    document["tags"].append(
        _custom("gt_bool", cases=[{"when": {"attr": "has_life", "op": "gt", "value": 1}, "value": "x"}])
    )
    assert "boolean" in _error(document)


def test_unreadable_and_invalid_yaml(tmp_path: Path):
    with pytest.raises(TagRegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tags: [\n", encoding="utf-8")
    with pytest.raises(TagRegistryError, match="not valid YAML"):
        load_registry(bad)
