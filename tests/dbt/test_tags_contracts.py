"""The tag marts declare exactly their published contracts, and the city tiers follow the world's cities.

No Spark: these read the dbt yml, the contracts in schemas/marts and the macro sources.
"""

from __future__ import annotations

import re

import pytest
import yaml

from mo.config import REPO_ROOT
from mo.tags.registry import load_registry

DBT = REPO_ROOT / "dbt"
MARTS_YML = DBT / "models" / "marts" / "marketing" / "_marketing__models.yml"
INT_YML = DBT / "models" / "intermediate" / "marketing" / "_int_marketing__models.yml"


def _model(name: str) -> dict:
    models = yaml.safe_load(MARTS_YML.read_text(encoding="utf-8"))["models"]
    return next(m for m in models if m["name"] == name)


@pytest.mark.parametrize("mart", ["customer_profile", "customer_event_daily"])
def test_mart_yml_matches_published_contract(mart: str):
    contract = yaml.safe_load((REPO_ROOT / "schemas" / "marts" / f"{mart}.yaml").read_text(encoding="utf-8"))
    model = _model(mart)
    assert model["config"]["contract"]["enforced"] is True
    declared = [(c["name"], c["data_type"]) for c in model["columns"]]
    assert declared == [(c["name"], c["type"]) for c in contract["columns"]]
    required = {c["name"] for c in contract["columns"] if not c.get("nullable", True)}
    tested = set()
    for test in model.get("data_tests", []):
        if "tags_not_null_columns" in test:
            tested |= set(test["tags_not_null_columns"]["arguments"]["column_names"])
    for column in model["columns"]:
        if "not_null" in column.get("data_tests", []):
            tested.add(column["name"])
    assert required <= tested, f"not null in the contract but untested: {sorted(required - tested)}"


def test_profile_enums_are_accepted_values_tests():
    contract = yaml.safe_load((REPO_ROOT / "schemas/marts/customer_profile.yaml").read_text(encoding="utf-8"))
    columns = {c["name"]: c for c in _model("customer_profile")["columns"]}
    for c in contract["columns"]:
        if c.get("enum"):
            tests = [t for t in columns[c["name"]].get("data_tests", []) if isinstance(t, dict)]
            values = [t["accepted_values"]["arguments"]["values"] for t in tests if "accepted_values" in t]
            assert values == [c["enum"]], c["name"]


def test_registry_builtins_describe_the_profile_columns():
    descriptions = {c["name"]: c["description"] for c in _model("customer_profile")["columns"]}
    for tag in load_registry().builtin:
        assert descriptions[tag.name] == tag.description, tag.name


def _macro_lists() -> dict[str, list[str]]:
    text = (DBT / "macros" / "tags" / "city_tier.sql").read_text(encoding="utf-8")
    lists = {}
    for tier in ("tier1", "new_tier1", "tier2"):
        body = re.search(rf"'{tier}': \[(.*?)\]", text, re.S)
        assert body, tier
        lists[tier] = re.findall(r"'([^']+)'", body.group(1))
    return lists


def test_city_tier_lists_follow_the_generator_cities():
    from mo.generator.reference import CITIES

    lists = _macro_lists()
    expected = {"tier1": 1, "new_tier1": 2, "tier2": 3}
    for tier, number in expected.items():
        assert sorted(lists[tier]) == sorted(c.name for c in CITIES if c.tier == number), tier
    listed = {name for names in lists.values() for name in names}
    assert not listed & {c.name for c in CITIES if c.tier == 4}


def test_every_tag_model_has_unit_tests():
    spec = yaml.safe_load(INT_YML.read_text(encoding="utf-8"))
    tested = {u["model"] for u in spec["unit_tests"]}
    models = {p.stem for p in INT_YML.parent.glob("int_customer_*.sql")}
    # The builtin join has no rule of its own; every other model carries one or more tag rules.
    assert models - {"int_customer_builtin_tags"} <= tested, models - tested


def test_unit_tests_pin_the_reference_date():
    spec = yaml.safe_load(INT_YML.read_text(encoding="utf-8"))
    sql_with_as_of = {p.stem for p in INT_YML.parent.glob("*.sql") if "tag_as_of_date()" in p.read_text()}
    for unit in spec["unit_tests"]:
        if unit["model"] in sql_with_as_of:
            assert unit["overrides"]["vars"]["as_of_date"] == "2025-12-31", unit["name"]


def test_docs_blocks_exist_for_marts():
    docs = (DBT / "models" / "marts" / "marketing" / "_marketing__docs.md").read_text(encoding="utf-8")
    for name in ("customer_profile", "customer_event_daily"):
        assert f"{{% docs {name} %}}" in docs
