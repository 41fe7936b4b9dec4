"""The silver quality gate: Great Expectations validations of the candidate silver state.

The sync writes silver to an audit branch, calls :func:`run_silver_gate` with the branch's live rows,
and publishes only if the gate passes (write-audit-publish). Suites come from the contracts (see
:mod:`quality.suites`); results and Data Docs are kept in a Great Expectations file project under
``<MO_HOME>/gx``.

Why validation definitions and not one checkpoint: a Spark dataframe reaches GX as a batch parameter,
and a checkpoint passes the same batch parameters to all its validations, so a checkpoint could hold
only one table. Nine single-table checkpoints with UpdateDataDocsAction would rebuild the Data Docs
index nine times; instead each table's validation definition runs once and the docs are updated once
per gate for exactly the results of this run, as UpdateDataDocsAction would do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mo.config import Settings
from mo.contracts import TableContract, load_source_contracts
from mo.errors import ContractViolation, MoError, QualityGateFailed
from quality.suites import (
    SOURCE_COUNT_PARAMETER,
    Check,
    build_checks,
    build_suite,
    count_suite_name,
    orphan_column,
    parent_of,
    suite_name,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DATASOURCE = "silver"
BATCH_DEFINITION = "candidate"
SAMPLE_SIZE = 5
RUN_NAME = "silver_gate"
# Data Docs index lists the newest results only: building it reads each listed result from disk.
DOCS_RESULTS_LIMIT = 100
# Results (JSON and HTML) kept per table; an hourly sync writes one per table per run.
RUNS_KEPT_PER_TABLE = 50
QUICK_RESULT_FORMAT = {"result_format": "BOOLEAN_ONLY"}
DETAILED_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
FULL_VALIDATIONS_FILE = "mo_full_validations.json"


@dataclass(frozen=True)
class GateFailure:
    table: str  # e.g. "policies"
    expectation: str  # e.g. "expect_column_values_to_be_in_set(status)"
    detail: str  # e.g. "2 unexpected values: ['bogus']"


@dataclass
class GateResult:
    passed: bool
    failures: list[GateFailure]
    docs_path: str | None  # Data Docs index.html, if written
    tables: list[str] = field(default_factory=list)  # tables validated, in dependency order
    layer: str = "silver"  # what was validated: silver (the sync's gate) or marts (build_profiles')
    modes: dict[str, str] = field(default_factory=dict)  # table -> whole | scoped | unchanged (main suite)
    scope_rows: dict[str, int] = field(default_factory=dict)  # rows validated of each scoped table

    def summary(self) -> str:
        """One line per failure (or one line saying what passed), for logs and the CLI."""
        if self.passed:
            return f"{self.layer} gate passed: {', '.join(self.tables) or 'no tables'}"
        return "\n".join(f"{self.layer}.{f.table}: {f.expectation} failed: {f.detail}" for f in self.failures)

    def raise_for_failure(self) -> None:
        """Raise QualityGateFailed naming every failed expectation; nothing may be published after it."""
        if not self.passed:
            raise QualityGateFailed(self.summary().replace("\n", "; "))


# --- the Great Expectations project ------------------------------------------------------------------


def _fingerprint(suite) -> list[str]:
    """What makes two suites check the same things (ids, versions and rendering left out)."""
    return [
        json.dumps([e.expectation_type, e.configuration.kwargs, e.meta, e.description], sort_keys=True, default=str)
        for e in suite.expectations
    ]


def _digest(suite) -> str:
    return hashlib.sha256("\n".join(_fingerprint(suite)).encode()).hexdigest()


class _Project:
    """A file context with its Spark data source, loaded once per process and MO_HOME."""

    def __init__(self, root: Path) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        root.mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=str(root))
        variables = self.context.variables
        changed = False
        if variables.analytics_enabled is not False:
            variables.analytics_enabled = False
            changed = True
        bars = variables.progress_bars
        globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
        if globally is not False:
            # Progress bars write carriage-return noise into task logs.
            variables.progress_bars = ProgressBarsConfig(globally=False)
            changed = True
        site = (variables.data_docs_sites or {}).get("local_site")
        if site is not None:
            index = site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
            if index.get("validation_results_limit") != DOCS_RESULTS_LIMIT:
                index["validation_results_limit"] = DOCS_RESULTS_LIMIT
                variables.data_docs_sites = variables.data_docs_sites  # type: ignore[assignment]  # GX stub
                changed = True
        if changed:
            variables.save()
        self.root = root / "gx"
        self.docs_dir = self.root / "uncommitted" / "data_docs" / "local_site"
        self._batch_definitions: dict[tuple[str, str], Any] = {}
        self._validations: dict[str, tuple[list[str], Any]] = {}

    def spark_source(self, name: str):
        """The project's Spark data source ``name`` (added on first use), with batch persisting off.

        GX's Spark source persists every batch's dataframe and never releases it: a gate would cache each
        whole table it validates (every column, orphan markers included) and keep them all until the process
        ends. The gates decide what to cache themselves (scopes, see run_silver_gate); sources made before
        this setting get it in memory, which is where the execution engine reads it from.
        """
        try:
            source = self.context.data_sources.get(name)
        except (KeyError, ValueError, LookupError):
            source = self.context.data_sources.add_spark(name=name, persist=False)
        source.persist = False  # type: ignore[attr-defined]  # a Spark source (GX stubs: Datasource)
        return source

    def batch_definition(self, table: str, source: str = DATASOURCE):
        """The whole-dataframe batch definition of ``table``'s asset in data source ``source`` (made on first use)."""
        key = (source, table)
        if key not in self._batch_definitions:
            datasource = self.spark_source(source)
            try:
                asset = datasource.get_asset(table)
            except LookupError:
                asset = datasource.add_dataframe_asset(name=table)  # type: ignore[attr-defined]  # Spark source
            try:
                definition = asset.get_batch_definition(BATCH_DEFINITION)
            except (KeyError, LookupError):
                definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
            self._batch_definitions[key] = definition
        return self._batch_definitions[key]

    def validation(self, table: str, suite) -> tuple[Any, bool]:
        """The validation definition of ``suite`` (named as the suite, on ``table``'s batch definition) and
        whether the stored suite had to change.

        The stores are written only when the contract-derived suite differs from the stored one, which
        after the first run is only when a contract changes.
        """
        import great_expectations as gx

        wanted = _fingerprint(suite)
        name = suite.name
        cached = self._validations.get(name)
        if cached and cached[0] == wanted:
            return cached[1], False
        try:
            stored = self.context.validation_definitions.get(name)
            if _fingerprint(stored.suite) == wanted and stored.batch_definition.id == self.batch_definition(table).id:
                self._validations[name] = (wanted, stored)
                return stored, False
        except (KeyError, ValueError, LookupError, gx.exceptions.DataContextError):
            pass
        saved = self.context.suites.add_or_update(suite)
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=self.batch_definition(table), suite=saved)
        )
        self._validations[name] = (wanted, definition)
        return definition, True

    def suite_page_missing(self, name: str) -> bool:
        return not (self.docs_dir / "expectations" / Path(*name.split("."))).with_suffix(".html").exists()

    def prune(self, table: str, keep: int = RUNS_KEPT_PER_TABLE) -> None:
        """Drop all but the newest ``keep`` results of a table's suites, from the results store and Data Docs.

        Both keep one folder per run (``<suite path>/<run name>/<run time>``) and run times sort as text.
        """
        for name in (suite_name(table), count_suite_name(table)):
            suite_path = Path(*name.split("."))
            for base in (self.root / "uncommitted" / "validations", self.docs_dir / "validations"):
                runs_dir = base / suite_path / RUN_NAME
                if not runs_dir.is_dir():
                    continue
                runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
                for old in runs[: max(len(runs) - keep, 0)]:
                    shutil.rmtree(old, ignore_errors=True)

    # Full validations: when each suite last passed on a whole table, and which version of the suite.
    # A table's main suite may run on the rows a sync changed only while this record is current.

    def _full_validations_file(self) -> Path:
        return self.root / "uncommitted" / FULL_VALIDATIONS_FILE

    def full_validations(self) -> dict[str, dict[str, str]]:
        """Suite name -> {fingerprint, at} of its last whole-table pass (read once per gate)."""
        try:
            return json.loads(self._full_validations_file().read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def record_full_validations(self, suites: list, at: dt.datetime) -> None:
        path = self._full_validations_file()
        records = self.full_validations()
        for suite in suites:
            records[suite.name] = {"fingerprint": _digest(suite), "at": at.isoformat()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    def docs_index(self) -> str | None:
        index = self.docs_dir / "index.html"
        return str(index) if index.exists() else None


_projects: dict[str, _Project] = {}
_projects_lock = threading.Lock()


def gx_project_dir(settings: Settings) -> Path:
    """The gate's Great Expectations project (``<MO_HOME>/gx``)."""
    return settings.home / "gx"


def _project(settings: Settings) -> _Project:
    key = str(settings.home.resolve())
    with _projects_lock:
        if key not in _projects:
            # get_context puts the project in a "gx" folder under the root it is given.
            _projects[key] = _Project(settings.home)
        return _projects[key]


# Parents whose key column is estimated below this many bytes are broadcast to the reference checks.
GATE_BROADCAST_BYTES = 64 * 1024 * 1024


def _gate_planning(spark: SparkSession):
    """Plan the gate's queries statically, and broadcast the parents of reference checks.

    The gate runs many small aggregates per table; adaptive execution submits every shuffle
    stage as its own job, which more than doubled the job count and the wall time of a gate over nine
    small tables. Reference checks probe a parent's key column: Spark's default broadcast threshold
    (10 MB) sends a 2M-row parent (16 MB of keys) to a sort-merge join that sorts the whole child once
    per reference; a hash of the parent's keys is probed instead up to :data:`GATE_BROADCAST_BYTES`,
    larger parents still sort-merge. Previous settings are restored for whatever the session runs next.
    """
    from spark_jobs.session import temporary_conf

    return temporary_conf(
        spark,
        {"spark.sql.adaptive.enabled": "false", "spark.sql.autoBroadcastJoinThreshold": str(GATE_BROADCAST_BYTES)},
    )


# --- frames ---------------------------------------------------------------------------------------------


def with_orphan_markers(
    spark: SparkSession,
    frame: DataFrame,
    contract: TableContract,
    tables: dict[str, DataFrame],
    pending: dict[str, DataFrame] | None = None,
) -> DataFrame:
    """``frame`` plus one column per checkable reference: the foreign key where no parent row has it.

    A key among the parent's ``pending`` ids (column ``k``: the source holds that parent in a state newer
    than the run's view, and the next run syncs it) is not an orphan.

    Written as ``NOT EXISTS`` so Spark plans an existence join (the anti-join, as a flag): the child
    keeps its rows one for one whatever the parent holds (so counts and uniqueness are checked on the
    same frame), the parent needs no distinct, small parents are broadcast and large ones sort-merged.
    """
    from spark_jobs.session import sql_over_frames

    references = [
        c
        for c in contract.columns
        if c.references and not c.pii and c.name in frame.columns and parent_of(c)[0] in tables
    ]
    if not references:
        return frame
    markers = []
    frames = {"child": frame}
    for i, column in enumerate(references):
        parent, key = parent_of(column)
        frames[f"parent{i}"] = tables[parent]
        fk = f"c.`{column.name}`"
        missing = f"NOT EXISTS (SELECT 1 FROM {{parent{i}}} p WHERE p.`{key}` = {fk})"
        if pending and parent in pending:
            frames[f"pending{i}"] = pending[parent]
            missing += f" AND NOT EXISTS (SELECT 1 FROM {{pending{i}}} q WHERE q.k = {fk})"
        markers.append(f"CASE WHEN {fk} IS NOT NULL AND {missing} THEN {fk} END AS `{orphan_column(column.name)}`")
    return sql_over_frames(spark, f"SELECT c.*, {', '.join(markers)} FROM {{child}} c", **frames)


# --- results --------------------------------------------------------------------------------------------


def _sample(values: list[Any] | None) -> list[Any]:
    seen: list[Any] = []
    for value in values or []:
        if value not in seen:
            seen.append(value)
        if len(seen) == SAMPLE_SIZE:
            break
    return seen


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def row_count_detail(observed: Any, expected: int | None, count_of: str = "source ", *, table: str = "") -> str:
    """A failed row count; against the source it names what an incremental sync cannot see and the way out
    (the full-refresh command for ``table``)."""
    detail = f"row count {observed} != {count_of}{expected}"
    if count_of == "source " and isinstance(observed, int) and expected is not None:
        refresh = f"`mo sync --table {table or 'TABLE'} --full-refresh` reconciles the table"
        if observed > expected:
            detail += f" (rows deleted in the source without a soft delete? {refresh})"
        elif observed < expected:
            detail += (
                " (rows committed late with an older updated_at? the next run picks up those within the"
                f" look-back window; for older ones {refresh})"
            )
    return detail


def _detail(
    check: Any, result: dict[str, Any], source_count: int | None, count_of: str = "source ", *, table: str = ""
) -> str:
    """A failed expectation's detail, for a silver ``Check`` or a marts ``MartCheck`` (both have ``kind``);
    ``count_of`` names what the row count was reconciled with."""
    count = result.get("unexpected_count") or 0
    sample = _sample(result.get("partial_unexpected_list"))
    if check.kind == "columns":
        missing = sorted(result.get("details", {}).get("mismatched", {}).get("missing") or [])
        return f"missing columns: {missing}"
    if check.kind == "row_count":
        return row_count_detail(result.get("observed_value"), source_count, count_of, table=table)
    if check.kind == "primary_key":
        return f"{_plural(count, 'row')} with duplicate values: {sample}"
    if check.kind == "not_null":
        return f"{_plural(count, 'null value')}"
    if check.kind == "enum":
        return f"{_plural(count, 'unexpected value')}: {sample}"
    if check.kind == "live":
        return f"{_plural(count, 'soft-deleted row')} in the live state"
    if check.kind == "reference":
        ref = check.reference
        return f"{_plural(count, 'orphan row')}: {ref.name} values {sample} not found in {ref.references}"  # type: ignore[union-attr]
    return str(result)


def _exception_message(info: dict[str, Any] | None) -> str | None:
    """The first error message in a result's exception info (flat, or keyed by metric as GX 1.x does)."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return (entry.get("exception_message") or "unknown error").splitlines()[0]
    return None


def _failures(table: str, checks: list[Check], validation, source_count: int | None) -> list[GateFailure]:
    by_label = {c.label: c for c in checks}
    missing_columns: set[str] = set()
    evaluated = []
    for result in validation.results:
        if result.success:
            continue
        check = by_label[result.expectation_config.meta["label"]]
        evaluated.append((check, result))
        if check.kind == "columns":
            details = (result.result or {}).get("details", {}).get("mismatched", {})
            missing_columns.update(details.get("missing") or [])
    failures = []
    for check, result in evaluated:
        message = _exception_message(result.exception_info)
        if message is not None:
            if check.column in missing_columns:
                continue  # already reported as a missing column
            failures.append(GateFailure(table, check.label, f"could not be evaluated: {message}"))
        else:
            detail = _detail(check, result.result or {}, source_count, table=table)
            failures.append(GateFailure(table, check.label, detail))
    return failures


def _diagnose(project: _Project, validation, frame, parameters, result, result_id) -> None:
    """Replace the pass/fail results of failed expectations with counts and sample values, in place.

    Sample values cost one Spark job per expectation, so they are computed for failures only, on the
    same frame. The completed result is stored again under its key, so Data Docs shows the
    detail too.
    """
    batch = validation.batch_definition.get_batch(batch_parameters={"dataframe": frame})
    by_label = {e.meta["label"]: e for e in validation.suite.expectations}
    for index, item in enumerate(result.results):
        if item.success:
            continue
        expectation = by_label[item.expectation_config.meta["label"]]
        result.results[index] = batch.validate(
            expectation, result_format=DETAILED_RESULT_FORMAT, expectation_parameters=parameters
        )
    project.context.validation_results_store.store_validation_results(
        suite_validation_result=result,
        suite_validation_result_identifier=result_id,
        expectation_suite_identifier=result_id.expectation_suite_identifier,
    )


# --- the gate -------------------------------------------------------------------------------------------


def _validate(project: _Project, run_id, validation, frame, parameters, table: str, checks: list[Check], count):
    """Run one validation definition on ``frame``; returns its failures and the result's identifier."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    result = validation.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=parameters,
        result_format=QUICK_RESULT_FORMAT,
        run_id=run_id,
    )
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=validation.suite.name),
        run_id=run_id,
        batch_identifier=result.batch_id,
    )
    if not result.success:
        _diagnose(project, validation, frame, parameters, result, result_id)
    return _failures(table, checks, result, count), result_id


def run_silver_gate(
    spark: SparkSession,
    settings: Settings,
    tables: dict[str, DataFrame],
    source_counts: dict[str, int],
    scopes: dict[str, DataFrame | None] | None = None,
    pending: dict[str, DataFrame] | None = None,
) -> GateResult:
    """Validate the candidate silver state of ``tables`` (live rows) against suites derived from contracts.

    ``source_counts`` holds the source's live row count as the run saw each table it synced; those tables
    must reconcile exactly. References are checked wherever the parent's frame is given. ``pending`` holds
    per table the ids (column ``k``) the source changed after the run's view (the sync's
    :func:`spark_jobs.sync.pending_keys`): the source count leaves them out, so the row count is taken
    without them, and a reference to one of them is not an orphan; the next run syncs them.
    Returns every failure found (the gate does not stop at the first) and the Data Docs index.

    ``scopes`` (the sync's :func:`spark_jobs.sync.gate_scopes`) narrows a table's main suite to the rows a
    run can have made invalid: a frame of the rows it changed plus the rows referring to a parent row it
    changed, or None when neither the table nor any of its parents changed. A table absent from
    ``scopes``, or every table when ``scopes`` is None, is validated whole. Why the narrowing is sound: main
    only moves through a passing gate, so a row that did not change and whose parents did not change
    still passes every row check and reference; duplicates of a key involve a changed row; an orphan
    refers to a changed (deleted) parent row. It holds only for what the gate has seen, so a scope is
    used only while the table's current suite has passed on the whole table within
    ``settings.gate_full_interval_hours`` (a changed contract, a first run or a day-old check validates
    whole; changes made to silver outside the sync are caught by that daily whole validation). References
    of a scoped table are checked against the parents' whole candidate state, and the row count is
    reconciled on the whole table (less its pending ids) in every case, as its own suite
    (``silver.<table>.count``).

    Each table is validated once with pass/fail results only (a few aggregate jobs per table); the
    expectations that fail are then evaluated again with unexpected counts and sample values, so the
    cost of diagnosing is paid only for what needs a diagnosis (see :func:`_diagnose`).
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    contracts = load_source_contracts()
    unknown = sorted(set(tables) - set(contracts))
    if unknown:
        raise ContractViolation(f"no contract in schemas/sources/ for table(s): {', '.join(unknown)}")
    unvalidated = sorted(set(source_counts) - set(tables))
    if unvalidated:
        raise MoError(
            f"quality gate: source counts given for tables without a candidate frame: {', '.join(unvalidated)}"
        )

    project = _project(settings)
    now = dt.datetime.now(dt.UTC)
    run_id = RunIdentifier(run_name=RUN_NAME, run_time=now)
    horizon = now - dt.timedelta(hours=settings.gate_full_interval_hours)
    failures: list[GateFailure] = []
    docs_resources: list = []
    modes: dict[str, str] = {}
    scope_rows: dict[str, int] = {}
    validated_whole: list = []
    whole_passes = project.full_validations() if scopes is not None else {}
    order = [t for t in contracts if t in tables]
    with _gate_planning(spark):
        for table in order:
            started = time.perf_counter()
            contract = contracts[table]
            count = source_counts.get(table)
            checks = build_checks(contract, reconcile_count=count is not None, parents_present=set(tables))
            count_checks = [c for c in checks if c.kind == "row_count"]
            main_checks = [c for c in checks if c.kind != "row_count"]
            suite = build_suite(contract, main_checks)
            validation, suite_changed = project.validation(table, suite)
            last_whole = whole_passes.get(suite.name) or {}
            trusted = (
                not suite_changed
                and last_whole.get("fingerprint") == _digest(suite)
                and dt.datetime.fromisoformat(last_whole["at"]) >= horizon
            )
            scoped = scopes is not None and table in scopes and trusted
            scope = scopes[table] if scoped and scopes is not None else tables[table]
            table_failures: list[GateFailure] = []
            if scope is None:
                modes[table] = "unchanged"
            else:
                modes[table] = "scoped" if scoped else "whole"
                frame = with_orphan_markers(spark, scope, contract, tables, pending)
                if scoped:
                    # A scope is small and each of GX's jobs would otherwise find it again in the whole table.
                    # A whole table is not cached: GX bundles the column checks into one aggregate job and
                    # the uniqueness check into another, each reading only the Parquet columns it needs;
                    # caching first read every column and measured 1.6-3.8x slower on a 690k-row world.
                    frame = frame.persist()
                    scope_rows[table] = frame.count()
                try:
                    found, result_id = _validate(project, run_id, validation, frame, None, table, main_checks, count)
                finally:
                    if scoped:
                        frame.unpersist()
                table_failures += found
                docs_resources.append(result_id)
                if not scoped:
                    validated_whole.append(suite)
                if suite_changed or project.suite_page_missing(suite.name):
                    docs_resources.append(ExpectationSuiteIdentifier(name=suite.name))
            if count_checks:
                count_suite = build_suite(contract, count_checks, count_suite_name(table))
                count_validation, count_changed = project.validation(table, count_suite)
                counted = tables[table]
                if pending and table in pending:
                    pk = contract.primary_key
                    counted = counted.join(pending[table].withColumnRenamed("k", pk), pk, "left_anti")
                found, result_id = _validate(
                    project,
                    run_id,
                    count_validation,
                    counted,
                    {SOURCE_COUNT_PARAMETER: count},
                    table,
                    count_checks,
                    count,
                )
                table_failures += found
                docs_resources.append(result_id)
                if count_changed or project.suite_page_missing(count_suite.name):
                    docs_resources.append(ExpectationSuiteIdentifier(name=count_suite.name))
            failures.extend(table_failures)
            log.info(
                "silver.%s: %d checks (%s%s), %d failed (%.1fs)",
                table,
                len(checks),
                modes[table],
                f", {scope_rows[table]} rows" if table in scope_rows else "",
                len(table_failures),
                time.perf_counter() - started,
            )

    if not failures and validated_whole:
        project.record_full_validations(validated_whole, now)
    docs_path = None
    if docs_resources:
        started = time.perf_counter()
        project.context.build_data_docs(resource_identifiers=docs_resources)
        docs_path = project.docs_index()
        for table in order:
            project.prune(table)
        log.info("data docs updated (%.1fs): %s", time.perf_counter() - started, docs_path)
    return GateResult(
        passed=not failures,
        failures=failures,
        docs_path=docs_path,
        tables=order,
        modes=modes,
        scope_rows=scope_rows,
    )
