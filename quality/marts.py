"""The marts quality gate: Great Expectations on what `build_profiles` is about to publish.

Runs after dbt built the marts and the segment refresh wrote memberships, before anything reaches the
serving store. Suites come from the published marts' contracts in ``schemas/marts/`` (the same files
dbt's enforced contracts and the serving store read), so a column added to a contract is checked from
the next run on:

- the contract's columns are present;
- the primary key (one column, or a compound key such as customer_event_daily's) is unique and not null;
- non-nullable columns are not null, enum columns hold only the contract's values;
- ``customer_profile`` has exactly one row per live customer in silver (row count reconciled).

The campaign results marts (``mart_campaign_results``, ``mart_campaign_uplift``) have no file in schemas/marts/:
their contract is the serving store's copy of each (schemas/serving/serving.yaml ``campaign_results`` and
``campaign_uplift``). Besides the key and the not-nulls they carry the invariants their SQL guarantees
(:func:`campaign_invariants`): counts never negative, audience = decided + waiting, the suppressions by reason add
up, nothing sent, delivered, opened, clicked or converted beyond what was decided ``send`` or sent, comparison
groups within the audience, rates in [0, 1] and the uplift's interval around its point (ci_low <= difference <=
ci_high). A row breaking one is a wrong mart: the gate stops the publish.

A failure raises :class:`mo.errors.QualityGateFailed` naming the mart and the expectation, and the
publish step never runs. Results land in the same GX project as the silver gate (``<MO_HOME>/gx``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mo.config import REPO_ROOT, Settings
from mo.errors import ContractViolation
from quality.gates import (
    DETAILED_RESULT_FORMAT,
    QUICK_RESULT_FORMAT,
    GateFailure,
    GateResult,
    _detail,
    _gate_planning,
    _plural,
    _project,
    _sample,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

MARTS_DIR = REPO_ROOT / "schemas" / "marts"
DATASOURCE = "marts"
RUN_NAME = "marts_gate"
ROW_COUNT_PARAMETER = "expected_row_count"


@dataclass(frozen=True)
class MartColumn:
    name: str
    type: str
    nullable: bool
    enum: tuple[str, ...] | None


@dataclass(frozen=True)
class MartContract:
    table: str
    primary_key: tuple[str, ...]
    columns: tuple[MartColumn, ...]


# The campaign results marts and the serving tables whose contracts they are published under.
CAMPAIGN_MARTS = {"mart_campaign_results": "campaign_results", "mart_campaign_uplift": "campaign_uplift"}
# Enumerations the campaign marts' SQL produces (their dbt accepted_values tests), checked here as well.
CAMPAIGN_ENUMS = {
    "mart_campaign_results": {"period_type": ("week", "month")},
    "mart_campaign_uplift": {"uplift_scope": ("campaign", "product_line")},
}


@cache
def load_mart_contracts(directory: str = str(MARTS_DIR)) -> dict[str, MartContract]:
    """Every contract in schemas/marts/, by table name, and the campaign results marts' (from their serving
    copies in schemas/serving/serving.yaml)."""
    contracts = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            key = raw["primary_key"]
            columns = tuple(
                MartColumn(
                    name=c["name"],
                    type=c["type"],
                    nullable=bool(c.get("nullable", True)),
                    enum=tuple(str(v) for v in c["enum"]) if c.get("enum") else None,
                )
                for c in raw["columns"]
            )
            contract = MartContract(
                table=raw["table"], primary_key=tuple(key) if isinstance(key, list) else (key,), columns=columns
            )
        except (KeyError, TypeError) as exc:
            raise ContractViolation(f"schemas/marts/{path.name}: missing or malformed {exc}") from None
        contracts[contract.table] = contract
    contracts.update(_campaign_contracts())
    return contracts


def _campaign_contracts() -> dict[str, MartContract]:
    from mo.serving_store.contract import load_serving_contract

    tables = load_serving_contract().tables
    contracts = {}
    for mart, serving_table in CAMPAIGN_MARTS.items():
        table = tables[serving_table]
        enums = CAMPAIGN_ENUMS.get(mart, {})
        columns = tuple(MartColumn(c.name, c.mart_type, c.nullable, enums.get(c.name)) for c in table.columns)
        contracts[mart] = MartContract(table=mart, primary_key=tuple(table.primary_key), columns=columns)
    return contracts


@dataclass(frozen=True)
class Invariant:
    """``left op right`` on every row (Spark SQL over the mart's columns; op ``<=`` or ``=``); rows where a side
    is null are not judged (a rate without a comparison group)."""

    left: str
    op: str
    right: str

    @property
    def label(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def campaign_invariants(contract: MartContract) -> tuple[list[str], list[tuple[str, float, float]], list[Invariant]]:
    """(count columns that are never negative, (column, min, max) ranges, row invariants) of a campaign results
    mart, as its SQL (dbt/models/marts/campaigns/) guarantees them."""
    names = [c.name for c in contract.columns]
    if contract.table == "mart_campaign_results":
        counts = [c.name for c in contract.columns if c.type == "bigint" and c.name not in contract.primary_key]
        reasons = [n for n in names if n.startswith("suppressed_")]
        sends = "decided - suppressed"  # final decisions are send or suppress: the touches decided `send`
        rules = [
            Invariant("decided + waiting", "=", "audience"),
            Invariant("suppressed", "<=", "decided"),
            Invariant(" + ".join(reasons), "=", "suppressed"),
            Invariant("sent", "<=", sends),  # a message exists only for a send decision
            Invariant("failed", "<=", sends),
            Invariant("dead_letter", "<=", sends),
            Invariant("delivered", "<=", "sent"),  # receipts apply to sent messages only (mo/channels/receipts.py)
            Invariant("opened", "<=", "sent"),  # opens and clicks are recorded for sent messages only
            Invariant("clicked", "<=", "opened"),  # a click implies the open
            Invariant("converted", "<=", sends),
            Invariant("treated + holdout", "<=", "audience"),
            Invariant("treated_converted", "<=", "treated"),
            Invariant("holdout_converted", "<=", "holdout"),
        ]
        return counts, [], rules
    if contract.table == "mart_campaign_uplift":
        counts = ["treated", "treated_converted", "holdout", "holdout_converted"]
        ranges = [("treated_rate", 0.0, 1.0), ("holdout_rate", 0.0, 1.0), ("difference", -1.0, 1.0),
                  ("ci_low", -1.0, 1.0), ("ci_high", -1.0, 1.0)]  # fmt: skip
        rules = [
            Invariant("treated_converted", "<=", "treated"),
            Invariant("holdout_converted", "<=", "holdout"),
            Invariant("ci_low", "<=", "difference"),
            Invariant("difference", "<=", "ci_high"),
        ]
        return counts, ranges, rules
    return [], [], []


def _invariant_columns(index: int) -> tuple[str, str]:
    return f"_gate_invariant_{index}_left", f"_gate_invariant_{index}_right"


def with_invariant_columns(frame: DataFrame, contract: MartContract) -> DataFrame:
    """The frame with each invariant's two sides as columns (GX compares columns, not expressions)."""
    rules = campaign_invariants(contract)[2]
    if not rules:
        return frame
    sides = []
    for index, rule in enumerate(rules):
        left, right = _invariant_columns(index)
        sides += [f"({rule.left}) as `{left}`", f"({rule.right}) as `{right}`"]
    return frame.selectExpr("*", *sides)


@dataclass(frozen=True)
class MartCheck:
    label: str
    kind: str  # columns | row_count | primary_key | not_null | enum | range | invariant
    expectation: Any


def build_mart_checks(contract: MartContract, *, reconcile_count: bool) -> list[MartCheck]:
    import great_expectations as gx

    E = gx.expectations
    checks: list[MartCheck] = []

    def add(kind: str, expectation, label: str) -> None:
        expectation.meta = {"check": kind, "label": label}
        checks.append(MartCheck(label, kind, expectation))

    add(
        "columns",
        E.ExpectTableColumnsToMatchSet(column_set=[c.name for c in contract.columns], exact_match=False),
        "expect_table_columns_to_match_set(contract columns)",
    )
    if reconcile_count:
        add(
            "row_count",
            E.ExpectTableRowCountToEqual(value={"$PARAMETER": ROW_COUNT_PARAMETER}),
            "expect_table_row_count_to_equal(one row per live customer)",
        )
    key = list(contract.primary_key)
    if len(key) == 1:
        label = f"expect_column_values_to_be_unique({key[0]})"
        add("primary_key", E.ExpectColumnValuesToBeUnique(column=key[0]), label)
    else:
        add(
            "primary_key",
            E.ExpectCompoundColumnsToBeUnique(column_list=key),
            f"expect_compound_columns_to_be_unique({', '.join(key)})",
        )
    not_null = key + [c.name for c in contract.columns if not c.nullable and c.name not in key]
    for name in not_null:
        add("not_null", E.ExpectColumnValuesToNotBeNull(column=name), f"expect_column_values_to_not_be_null({name})")
    for c in contract.columns:
        if c.enum:
            add(
                "enum",
                E.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.enum)),
                f"expect_column_values_to_be_in_set({c.name})",
            )
    counts, ranges, rules = campaign_invariants(contract)
    for name in counts:
        add("range", E.ExpectColumnValuesToBeBetween(column=name, min_value=0), f"{name} >= 0")
    for name, low, high in ranges:
        add("range", E.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high),
            f"{name} in [{low:g}, {high:g}]")  # fmt: skip
    for index, rule in enumerate(rules):
        left, right = _invariant_columns(index)
        expectation: Any
        if rule.op == "=":
            expectation = E.ExpectColumnPairValuesToBeEqual(
                column_A=left, column_B=right, ignore_row_if="either_value_is_missing"
            )
        else:
            expectation = E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=right, column_B=left, or_equal=True, ignore_row_if="either_value_is_missing"
            )
        add("invariant", expectation, rule.label)
    return checks


def run_marts_gate(
    spark: SparkSession,
    settings: Settings,
    frames: dict[str, DataFrame],
    expected_counts: dict[str, int] | None = None,
) -> GateResult:
    """Validate each mart frame against its contract's suite; ``expected_counts`` reconciles row counts."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    contracts = load_mart_contracts()
    unknown = sorted(set(frames) - set(contracts))
    if unknown:
        raise ContractViolation(f"no contract in schemas/marts/ for mart(s): {', '.join(unknown)}")
    expected_counts = expected_counts or {}
    project = _project(settings)
    context = project.context
    run_id = RunIdentifier(run_name=RUN_NAME, run_time=dt.datetime.now(dt.UTC))
    failures: list[GateFailure] = []
    with _gate_planning(spark):
        for table, frame in frames.items():
            started = time.perf_counter()
            expected = expected_counts.get(table)
            checks = build_mart_checks(contracts[table], reconcile_count=expected is not None)
            frame = with_invariant_columns(frame, contracts[table])
            batch_definition = project.batch_definition(table, DATASOURCE)
            suite = context.suites.add_or_update(
                gx.ExpectationSuite(name=f"marts.{table}", expectations=[c.expectation for c in checks])
            )
            validation = context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=f"marts.{table}", data=batch_definition, suite=suite)
            )
            parameters = {ROW_COUNT_PARAMETER: expected} if expected is not None else None
            # not cached: see quality.gates (column-pruned reads beat building a cache)
            result = validation.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                result_format=QUICK_RESULT_FORMAT,
                run_id=run_id,
            )
            by_label = {c.label: c for c in checks}
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            for item in result.results:
                config = item.expectation_config
                if item.success or config is None:
                    continue
                check = by_label[config.meta["label"]]
                detailed = batch.validate(
                    check.expectation, result_format=DETAILED_RESULT_FORMAT, expectation_parameters=parameters
                )
                found = detailed.result or {}
                if check.kind in ("range", "invariant"):
                    detail = f"{_plural(found.get('unexpected_count') or 0, 'row')} break it: " + str(
                        _sample(found.get("partial_unexpected_list"))
                    )
                else:
                    detail = _detail(check, found, expected, count_of="")
                failures.append(GateFailure(table, check.label, detail))
            log.info("marts.%s: %d checks (%.1fs)", table, len(checks), time.perf_counter() - started)
    return GateResult(passed=not failures, failures=failures, docs_path=None, tables=list(frames), layer="marts")


__all__ = [
    "CAMPAIGN_MARTS",
    "MartContract",
    "build_mart_checks",
    "campaign_invariants",
    "load_mart_contracts",
    "run_marts_gate",
]
