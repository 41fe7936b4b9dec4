"""Smart segments: propensity models trained with Spark MLlib on the lake's history, scores per customer, and the
segment as a score threshold or the top N customers.

A model is specified as data (``schemas/segments/models/<model>.yaml``, schema ``model.schema.json``): which
policies are training examples and what their label is, the training window, the holdout, the features and the
estimator. ``renewal`` is the first: examples are annual policies that ran to their end in the window, the label
is whether an issued renewal (``renewal_of`` = the policy's id) exists.

Point in time. Silver and the profile hold the *current* state, while a label is about a decision taken months
ago, so features must not describe the world after that decision. The compromise taken here:
- policy features (``product_line``, ``payment_mode``, ``premium``, ``is_renewal``, ``prior_policies``,
  ``other_policies_in_force``) are computed from silver as of each example's decision date (end date minus
  ``decision_lead_days``), counting only policies issued before it; for scoring, as of the run's as-of date on
  the customer's next annual policy to end;
- profile attributes come from ``customer_profile`` as it is at training time (there is no profile history).
  Attributes that a renewal itself changes (holdings, premium, value, claims, vehicle, renewal dates: see
  ``OUTCOME_DEPENDENT``) are refused, so the remaining leakage is drift of slowly-changing attributes (age band,
  preferred channel, consents). The model record states this in ``notes``.

Versions. A training run is fingerprinted by the spec's content, the as-of date, the window and the Iceberg
snapshot ids of its inputs (read pinned to those snapshots). The same fingerprint returns the recorded version
without training again; a new one gets version n+1. Records go to ``<catalog>.segments.models`` (with the AUC on
the holdout), the MLlib PipelineModel under ``<warehouse>/_models/<catalog>/<model>/v<version>`` (the warehouse,
not MO_HOME, so cluster executors can read it), scores to ``<catalog>.segments.scores``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mo.config import SCHEMAS_DIR, Settings
from mo.errors import MoError
from mo.segments.rules import PROFILE_CONTRACT_PATH, RuleError, RuleProblem, _pointer

MODELS_DIR = SCHEMAS_DIR / "segments" / "models"
MODEL_SCHEMA_PATH = MODELS_DIR / "model.schema.json"

NUMERIC_TYPES = ("int", "bigint", "double")
# Policy features computed from silver as of the decision date, and how the pipeline treats each.
POLICY_FEATURES = {
    "product_line": "categorical",
    "payment_mode": "categorical",
    "premium": "numeric",
    "is_renewal": "boolean",
    "prior_policies": "numeric",
    "other_policies_in_force": "numeric",
}
# Profile attributes a renewal (or its absence) changes: in-force holdings, premium and value, claims on in-force
# policies, the insured vehicle, renewal dates. Read from today's profile they would tell the model the answer.
OUTCOME_DEPENDENT_GROUPS = ("policy", "subject", "value")
OUTCOME_DEPENDENT = ("claims_12m", "has_open_claim")
# ...except tenure: years since the first policy started, kept by customers who stopped renewing.
NOT_OUTCOME_DEPENDENT = ("tenure_years",)
NONE_CATEGORY = "(none)"
POINT_IN_TIME_NOTE = (
    "policy features as of each example's decision date (end_date - decision_lead_days) from silver, counting "
    "policies issued before it; profile attributes as of training (no profile history), outcome-dependent "
    "attributes refused"
)


class ModelSpecError(RuleError):
    """A propensity model spec is invalid; ``problems`` name the JSON pointer of each bad node."""

    what = "propensity model spec"


class ModelNotTrained(MoError):
    """No recorded version of a propensity model (on or before a date)."""


@dataclass(frozen=True)
class ModelSpec:
    model: str
    label: dict
    training_window: dict
    holdout: dict
    features: dict
    algorithm: dict
    raw: dict = field(compare=False, repr=False)
    source: str | None = field(default=None, compare=False)

    @property
    def canonical_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def profile_features(self, kind: str) -> list[str]:
        return list(self.features.get("profile", {}).get(kind, []))

    def policy_features(self, kind: str) -> list[str]:
        return [f for f in self.features["policy"] if POLICY_FEATURES[f] == kind]

    def columns(self, kind: str) -> list[str]:
        return self.profile_features(kind) + self.policy_features(kind)

    @property
    def feature_list(self) -> dict[str, list[str]]:
        return {kind: self.columns(kind) for kind in ("numeric", "boolean", "categorical")}

    def window(self, as_of: dt.date) -> tuple[dt.date, dt.date]:
        """[start, end) of the end dates of training examples."""
        end = as_of - dt.timedelta(days=int(self.training_window["gap_days"]))
        return _add_months(end, -int(self.training_window["months"])), end


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    version: int
    fingerprint: str
    trained_at: dt.datetime
    as_of: dt.date
    window_start: dt.date
    window_end: dt.date
    rows_train: int
    rows_holdout: int
    positives_train: int
    positives_holdout: int
    auc: float | None
    algorithm: str
    params: dict
    features: dict
    input_snapshots: dict
    model_path: str
    notes: str
    spec: str = field(repr=False, default="")  # the spec's canonical JSON at training (the file may change later)

    @property
    def label(self) -> str:
        return f"{self.model_id} v{self.version}"


@dataclass(frozen=True)
class ScoreResult:
    model_id: str
    model_version: int
    as_of: dt.date
    customers: int
    rescored: bool  # False when the scores of this (model, version, as-of, profile snapshot) were already there


# --- specs -----------------------------------------------------------------------------------------------------


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


@cache
def model_schema() -> dict:
    return json.loads(MODEL_SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _profile_contract() -> dict[str, dict]:
    raw = yaml.safe_load(Path(PROFILE_CONTRACT_PATH).read_text(encoding="utf-8"))
    return {c["name"]: c for c in raw["columns"]}


def spec_problems(data: Any) -> list[RuleProblem]:
    """Every problem of a model spec: the JSON Schema, then profile columns, their types and leakage, params."""
    from jsonschema import Draft202012Validator

    problems = [
        RuleProblem(
            _pointer(e.absolute_path), e.message.replace("Additional properties are not allowed", "unknown key")
        )
        for e in Draft202012Validator(model_schema()).iter_errors(data)
    ]
    if problems:
        return problems
    contract = _profile_contract()
    wanted = {"numeric": NUMERIC_TYPES, "boolean": ("boolean",), "categorical": ("string",)}
    seen: set[str] = set()
    for kind, names in data["features"].get("profile", {}).items():
        for i, name in enumerate(names):
            path = f"/features/profile/{kind}/{i}"
            column = contract.get(name)
            if column is None:
                problems.append(
                    RuleProblem(path, f"{name!r} is not a customer_profile column ({PROFILE_CONTRACT_PATH.name})")
                )
            elif column["type"] not in wanted[kind]:
                problems.append(RuleProblem(path, f"{name} is {column['type']}, not a {kind} column"))
            elif name in OUTCOME_DEPENDENT or (
                column.get("group") in OUTCOME_DEPENDENT_GROUPS and name not in NOT_OUTCOME_DEPENDENT
            ):
                problems.append(
                    RuleProblem(
                        path,
                        f"{name} depends on the outcome (group {column.get('group')}): today's value would leak "
                        "whether old policies were renewed",
                    )
                )
            elif column.get("segmentable", True) is False:
                problems.append(RuleProblem(path, f"{name} is not a usable attribute (segmentable: false)"))
            if name in seen:
                problems.append(RuleProblem(path, f"{name} is listed twice"))
            seen.add(name)
    if not seen and not data["features"]["policy"]:
        problems.append(RuleProblem("/features", "no features"))
    estimator = _estimator_class(data["algorithm"]["name"])
    # the constructor's keyword arguments are the estimator's params (no JVM needed to check them)
    accepted = set(inspect.signature(estimator.__init__).parameters) - {"self"}
    for key in data["algorithm"].get("params", {}):
        if key in ("featuresCol", "labelCol", "predictionCol", "probabilityCol", "rawPredictionCol"):
            problems.append(RuleProblem(f"/algorithm/params/{key}", "set by the pipeline, not the spec"))
        elif key not in accepted:
            problems.append(RuleProblem(f"/algorithm/params/{key}", f"not a parameter of {estimator.__name__}"))
    return problems


def parse_spec(data: Any, *, source: str | Path | None = None) -> ModelSpec:
    problems = spec_problems(data)
    if problems:
        raise ModelSpecError(problems, source=source)
    return ModelSpec(
        model=data["model"],
        label=data["label"],
        training_window=data["training_window"],
        holdout=data["holdout"],
        features=data["features"],
        algorithm=data["algorithm"],
        raw=data,
        source=str(source) if source else None,
    )


def load_spec(model: str, folder: Path = MODELS_DIR) -> ModelSpec:
    """The spec of ``model`` from ``<folder>/<model>.yaml``; the file's ``model`` must be its name."""
    path = Path(folder) / f"{model}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise MoError(f"no propensity model spec {path} (known models: {', '.join(known) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelSpecError("", f"not valid YAML: {exc}", source=path) from None
    spec = parse_spec(data, source=path)
    if spec.model != model:
        raise ModelSpecError("/model", f"{spec.model!r} does not match the file name {path.name}", source=path)
    return spec


def _estimator_class(name: str):
    from pyspark.ml.classification import GBTClassifier, LogisticRegression

    return {"logistic_regression": LogisticRegression, "gbt": GBTClassifier}[name]


# --- tables ----------------------------------------------------------------------------------------------------


def _table(settings: Settings, name: str) -> str:
    return f"{settings.catalog_name}.segments.{name}"


def models_table(settings: Settings) -> str:
    return _table(settings, "models")


def scores_table(settings: Settings) -> str:
    return _table(settings, "scores")


def input_tables(settings: Settings) -> dict[str, str]:
    catalog = settings.catalog_name
    return {
        "customer_profile": f"{catalog}.marts.customer_profile",
        "policies": f"{catalog}.silver.policies",
        "products": f"{catalog}.silver.products",
    }


def model_path(settings: Settings, model_id: str, version: int) -> str:
    return f"{settings.resolved_warehouse.rstrip('/')}/_models/{settings.catalog_name}/{model_id}/v{version}"


def ensure_tables(spark, settings: Settings) -> None:
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.segments")
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {models_table(settings)} (
            model_id string NOT NULL,
            version int NOT NULL,
            fingerprint string NOT NULL,
            trained_at timestamp NOT NULL,
            as_of date NOT NULL,
            window_start date NOT NULL,
            window_end date NOT NULL,
            rows_train bigint NOT NULL,
            rows_holdout bigint NOT NULL,
            positives_train bigint NOT NULL,
            positives_holdout bigint NOT NULL,
            auc double,
            algorithm string NOT NULL,
            params string NOT NULL,
            features string NOT NULL,
            spec string NOT NULL,
            input_snapshots string NOT NULL,
            model_path string NOT NULL,
            trained_by string NOT NULL,
            notes string NOT NULL
        ) USING iceberg"""
    )
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {scores_table(settings)} (
            model_id string NOT NULL,
            model_version int NOT NULL,
            as_of_date date NOT NULL,
            customer_id bigint NOT NULL,
            score double NOT NULL,
            profile_snapshot_id bigint NOT NULL,
            scored_at timestamp NOT NULL
        ) USING iceberg
        PARTITIONED BY (model_id, model_version, as_of_date)"""
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # aware: PySpark reads a naive datetime in the process's local zone


def _snapshot_id(spark, table: str) -> int:
    """The snapshot ``main`` points at (not the newest snapshot: audit branches of silver have their own)."""
    if not spark.catalog.tableExists(table):
        raise MoError(f"{table} does not exist: sync silver and build the marts before training or scoring")
    spark.sql(f"REFRESH TABLE {table}")
    rows = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'").collect()
    if not rows:
        raise MoError(f"{table} has no committed snapshot on main")
    return int(rows[0].snapshot_id)


def _pinned(spark, table: str, snapshot_id: int):
    return spark.sql(f"SELECT * FROM {table} VERSION AS OF {int(snapshot_id)}")


# --- features --------------------------------------------------------------------------------------------------


def _policies(spark, settings: Settings, snapshots: dict[str, int]):
    from pyspark.sql import functions as F

    tables = input_tables(settings)
    policies = _pinned(spark, tables["policies"], snapshots["policies"])
    products = _pinned(spark, tables["products"], snapshots["products"])
    for table, frame, needed in (
        (tables["policies"], policies, ("id", "customer_id", "product_id", "start_date", "end_date", "status")),
        (tables["policies"], policies, ("renewal_of", "issued_at", "payment_mode", "premium")),
        (tables["products"], products, ("id", "line", "term_months")),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise MoError(f"{table} has no column {missing[0]} (needed by the propensity models)")
    return (
        policies.alias("p")
        .join(products.alias("pr"), F.col("p.product_id") == F.col("pr.id"))
        .select(
            F.col("p.id").alias("policy_id"),
            "p.customer_id",
            "p.start_date",
            "p.end_date",
            "p.status",
            "p.renewal_of",
            "p.issued_at",
            "p.payment_mode",
            F.col("p.premium").cast("double").alias("premium"),
            F.col("pr.line").alias("product_line"),
            F.col("pr.term_months").alias("term_months"),
        )
    )


def _history(anchors, policies):
    """prior_policies and other_policies_in_force per anchor, counting only policies issued before its reference
    date, never the anchor policy or its renewal."""
    from pyspark.sql import functions as F

    a, o = anchors.alias("a"), policies.alias("o")
    anchor_policy = F.coalesce(F.col("a.policy_id"), F.lit(-1))
    joined = a.join(
        o,
        (F.col("o.customer_id") == F.col("a.customer_id"))
        & (F.col("o.policy_id") != anchor_policy)
        & (F.col("o.renewal_of").isNull() | (F.col("o.renewal_of") != anchor_policy))
        & F.col("o.issued_at").isNotNull()
        & (F.col("o.issued_at") < F.col("a.reference_date").cast("timestamp")),
        "left",
    )
    in_force = (F.col("o.start_date") <= F.col("a.reference_date")) & (F.col("o.end_date") >= F.col("a.reference_date"))
    return joined.groupBy("a.example_id").agg(
        F.count("o.policy_id").alias("prior_policies"),
        F.count(F.when(in_force, 1)).alias("other_policies_in_force"),
    )


def _prepared(frame, spec: ModelSpec, extra: list[str]):
    """Feature columns ready for the pipeline: doubles (nulls as 0 plus a ``__missing`` flag for nullable profile
    numerics), booleans as 0/1, categoricals as strings with ``(none)`` for missing."""
    from pyspark.sql import functions as F

    contract = _profile_contract()
    columns = [F.col(c) for c in extra]
    for name in spec.columns("numeric"):
        columns.append(F.coalesce(F.col(name).cast("double"), F.lit(0.0)).alias(name))
        if contract.get(name, {}).get("nullable", False):
            columns.append(F.col(name).isNull().cast("double").alias(f"{name}__missing"))
    for name in spec.columns("boolean"):
        columns.append(F.coalesce(F.col(name).cast("double"), F.lit(0.0)).alias(name))
    for name in spec.columns("categorical"):
        columns.append(F.coalesce(F.col(name).cast("string"), F.lit(NONE_CATEGORY)).alias(name))
    return frame.select(*columns)


def _numeric_inputs(spec: ModelSpec) -> list[str]:
    contract = _profile_contract()
    names = []
    for name in spec.columns("numeric"):
        names.append(name)
        if contract.get(name, {}).get("nullable", False):
            names.append(f"{name}__missing")
    return names + spec.columns("boolean")


def _profile(spark, settings: Settings, spec: ModelSpec, snapshot_id: int):
    table = input_tables(settings)["customer_profile"]
    profile = _pinned(spark, table, snapshot_id)
    wanted = ["customer_id", *(c for k in ("numeric", "boolean", "categorical") for c in spec.profile_features(k))]
    missing = [c for c in wanted if c not in profile.columns]
    if missing:
        raise MoError(f"{table} has no column {missing[0]} (a feature of model {spec.model})")
    return profile.select(*wanted)


def training_frame(spark, settings: Settings, spec: ModelSpec, *, as_of: dt.date, snapshots: dict[str, int]):
    """One row per training example: example_id (the policy id), customer_id, label (0/1) and the raw features."""
    from pyspark.sql import functions as F

    start, end = spec.window(as_of)
    lead = int(spec.training_window["decision_lead_days"])
    policies = _policies(spark, settings, snapshots)
    as_of_ts = F.lit(as_of.isoformat()).cast("timestamp")
    renewed = (
        policies.where(
            F.col("renewal_of").isNotNull() & F.col("issued_at").isNotNull() & (F.col("issued_at") < as_of_ts)
        )
        .select(F.col("renewal_of").alias("renewed_policy_id"))
        .distinct()
    )
    examples = policies.where(
        F.col("issued_at").isNotNull()
        & (F.col("term_months") == int(spec.label["term_months"]))
        & F.col("status").isin(list(spec.label["eligible_statuses"]))
        & (F.col("end_date") >= F.lit(start))
        & (F.col("end_date") < F.lit(end))
    )
    anchors = examples.join(renewed, examples.policy_id == renewed.renewed_policy_id, "left").select(
        F.col("policy_id").alias("example_id"),
        "customer_id",
        "policy_id",
        F.date_sub("end_date", lead).alias("reference_date"),
        "product_line",
        "payment_mode",
        "premium",
        F.col("renewal_of").isNotNull().alias("is_renewal"),
        F.col("renewed_policy_id").isNotNull().cast("double").alias("label"),
    )
    history = _history(anchors, policies)
    profile = _profile(spark, settings, spec, snapshots["customer_profile"])
    return anchors.join(history, "example_id").join(profile, "customer_id")


def scoring_frame(spark, settings: Settings, spec: ModelSpec, *, as_of: dt.date, snapshots: dict[str, int]):
    """One row per customer in the profile: the features as of ``as_of``, on the customer's next annual policy to
    end (the one a renewal campaign would be about); customers without one get ``(none)`` and zeros."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    policies = _policies(spark, settings, snapshots)
    as_of_ts = F.lit(as_of.isoformat()).cast("timestamp")
    current = policies.where(
        F.col("issued_at").isNotNull()
        & (F.col("issued_at") < as_of_ts)
        & (F.col("term_months") == int(spec.label["term_months"]))
        & F.col("status").isin("in_force", "expired")
        & (F.col("start_date") <= F.lit(as_of))
        & (F.col("end_date") >= F.lit(as_of))
    )
    first = Window.partitionBy("customer_id").orderBy("end_date", "policy_id")
    next_policy = current.withColumn("n", F.row_number().over(first)).where("n = 1")
    profile = _profile(spark, settings, spec, snapshots["customer_profile"])
    anchors = (
        profile.select("customer_id")
        .join(next_policy, "customer_id", "left")
        .select(
            F.col("customer_id").alias("example_id"),
            "customer_id",
            "policy_id",
            F.lit(as_of).alias("reference_date"),
            "product_line",
            "payment_mode",
            "premium",
            F.col("renewal_of").isNotNull().alias("is_renewal"),
        )
    )
    return anchors.join(_history(anchors, policies), "example_id").join(profile, "customer_id")


def build_pipeline(spec: ModelSpec):
    """StringIndexer + OneHotEncoder per categorical, VectorAssembler, then the spec's estimator."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    stages: list = []
    categorical = spec.columns("categorical")
    vectors = []
    if categorical:
        indexed = [f"{c}__idx" for c in categorical]
        vectors = [f"{c}__vec" for c in categorical]
        # alphabetical order: the same categories give the same encoding whatever their frequencies
        stages.append(
            StringIndexer(
                inputCols=categorical, outputCols=indexed, handleInvalid="keep", stringOrderType="alphabetAsc"
            )
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=vectors, handleInvalid="keep"))
    stages.append(VectorAssembler(inputCols=_numeric_inputs(spec) + vectors, outputCol="features"))
    params = dict(spec.algorithm.get("params", {}))
    if spec.algorithm["name"] == "gbt":
        params.setdefault("seed", int(spec.holdout["seed"]))
    stages.append(_estimator_class(spec.algorithm["name"])(featuresCol="features", labelCol="label", **params))
    return Pipeline(stages=stages)


# --- training --------------------------------------------------------------------------------------------------


def fingerprint(spec: ModelSpec, as_of: dt.date, snapshots: dict[str, int]) -> str:
    start, end = spec.window(as_of)
    material = {
        "spec": json.loads(spec.canonical_json),
        "as_of": as_of.isoformat(),
        "window": [start.isoformat(), end.isoformat()],
        "snapshots": snapshots,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _record(row) -> ModelRecord:
    return ModelRecord(
        model_id=row.model_id,
        version=row.version,
        fingerprint=row.fingerprint,
        trained_at=row.trained_at,
        as_of=row.as_of,
        window_start=row.window_start,
        window_end=row.window_end,
        rows_train=row.rows_train,
        rows_holdout=row.rows_holdout,
        positives_train=row.positives_train,
        positives_holdout=row.positives_holdout,
        auc=row.auc,
        algorithm=row.algorithm,
        params=json.loads(row.params),
        features=json.loads(row.features),
        input_snapshots=json.loads(row.input_snapshots),
        model_path=row.model_path,
        notes=row.notes,
        spec=row.spec,
    )


def model_history(spark, settings: Settings, model_id: str) -> list[ModelRecord]:
    """Every recorded version of a model, oldest first."""
    ensure_tables(spark, settings)
    spark.sql(f"REFRESH TABLE {models_table(settings)}")
    rows = spark.sql(
        f"SELECT * FROM {models_table(settings)} WHERE model_id = :model_id ORDER BY version",
        args={"model_id": model_id},
    ).collect()
    return [_record(r) for r in rows]


def get_model(
    spark, settings: Settings, model_id: str, *, version: int | None = None, on_or_before: dt.date | None = None
) -> ModelRecord:
    """A recorded version: ``version``, else the latest trained with an as-of date on or before ``on_or_before``
    (the latest of all when None). Raises ModelNotTrained."""
    history = model_history(spark, settings, model_id)
    if version is not None:
        for record in history:
            if record.version == version:
                return record
        raise ModelNotTrained(f"model {model_id!r} has no version {version} in {models_table(settings)}")
    eligible = [r for r in history if on_or_before is None or r.as_of <= on_or_before]
    if not eligible:
        when = f" with an as-of date on or before {on_or_before}" if on_or_before else ""
        raise ModelNotTrained(
            f"model {model_id!r} has no trained version{when} in {models_table(settings)} "
            f"(train it: mo segments train {model_id})"
        )
    return max(eligible, key=lambda r: (r.as_of, r.version))


def train_model(
    spark,
    settings: Settings,
    model: str | ModelSpec,
    *,
    as_of: dt.date,
    trained_by: str = "mo",
) -> ModelRecord:
    """Train ``model`` on the history before ``as_of``, evaluate AUC on the holdout, save the PipelineModel and
    record the version. Idempotent: the same spec, as-of date and input snapshots return the recorded version."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    spec = load_spec(model) if isinstance(model, str) else model
    snapshots = {name: _snapshot_id(spark, table) for name, table in input_tables(settings).items()}
    ensure_tables(spark, settings)
    print_ = fingerprint(spec, as_of, snapshots)
    history = model_history(spark, settings, spec.model)
    for record in history:
        if record.fingerprint == print_:
            return record
    version = max((r.version for r in history), default=0) + 1

    seed, fraction = int(spec.holdout["seed"]), float(spec.holdout["fraction"])
    raw = training_frame(spark, settings, spec, as_of=as_of, snapshots=snapshots)
    data = _prepared(raw, spec, ["example_id", "customer_id", "label"])
    bucket = F.pmod(F.xxhash64(F.col("example_id"), F.lit(seed)), F.lit(10_000))
    data = data.withColumn("is_holdout", bucket < F.lit(int(round(fraction * 10_000)))).localCheckpoint()
    counts = {
        (r.is_holdout, r.label): r.n for r in data.groupBy("is_holdout", "label").agg(F.count("*").alias("n")).collect()
    }
    rows_train = counts.get((False, 0.0), 0) + counts.get((False, 1.0), 0)
    rows_holdout = counts.get((True, 0.0), 0) + counts.get((True, 1.0), 0)
    start, end = spec.window(as_of)
    if not counts.get((False, 0.0)) or not counts.get((False, 1.0)):
        raise MoError(
            f"model {spec.model}: the training set (policies ending {start} to {end}, {rows_train} rows) needs both "
            f"renewed and not renewed examples; found {counts.get((False, 1.0), 0)} renewed"
        )
    train, holdout = data.where(~F.col("is_holdout")), data.where(F.col("is_holdout"))
    fitted = build_pipeline(spec).fit(train)
    auc = None
    if counts.get((True, 0.0)) and counts.get((True, 1.0)):
        evaluator = BinaryClassificationEvaluator(rawPredictionCol="rawPrediction", labelCol="label")
        auc = float(evaluator.setMetricName("areaUnderROC").evaluate(fitted.transform(holdout)))
    path = model_path(settings, spec.model, version)
    fitted.write().overwrite().save(path)  # before the record: a crash leaves unreferenced files, never a bad row

    params = {**spec.algorithm.get("params", {}), "holdout_fraction": fraction, "seed": seed}
    features = {
        **spec.feature_list,
        "assembled": _numeric_inputs(spec) + [f"{c}__vec" for c in spec.columns("categorical")],
    }
    row = (
        spec.model,
        version,
        print_,
        _now(),
        as_of,
        start,
        end,
        rows_train,
        rows_holdout,
        counts.get((False, 1.0), 0),
        counts.get((True, 1.0), 0),
        auc,
        spec.algorithm["name"],
        json.dumps(params, sort_keys=True),
        json.dumps(features),
        spec.canonical_json,
        json.dumps(snapshots, sort_keys=True),
        path,
        trained_by,
        POINT_IN_TIME_NOTE,
    )
    frame = spark.createDataFrame([row], spark.table(models_table(settings)).schema)
    view = f"segment_model_new_{print_}"
    frame.createOrReplaceTempView(view)
    try:
        # MERGE on (model_id, version): two trainings racing for one version conflict at commit.
        spark.sql(
            f"MERGE INTO {models_table(settings)} t USING {view} s "
            "ON t.model_id = s.model_id AND t.version = s.version WHEN NOT MATCHED THEN INSERT *"
        )
    finally:
        spark.catalog.dropTempView(view)
    return get_model(spark, settings, spec.model, version=version)


def ensure_model(
    spark, settings: Settings, model: str, *, as_of: dt.date, max_age_days: int | None = None, trained_by: str = "mo"
) -> ModelRecord:
    """The version to score with at ``as_of``: the latest one trained within ``max_age_days`` before ``as_of``, or
    a new training (None: train whenever the inputs changed; same inputs give the same version)."""
    if max_age_days is not None:
        try:
            latest = get_model(spark, settings, model, on_or_before=as_of)
        except ModelNotTrained:
            latest = None
        if latest is not None and (as_of - latest.as_of).days <= max_age_days:
            return latest
    return train_model(spark, settings, model, as_of=as_of, trained_by=trained_by)


# --- scoring ---------------------------------------------------------------------------------------------------


def score_customers(
    spark, settings: Settings, model_id: str, *, as_of: dt.date, version: int | None = None
) -> ScoreResult:
    """Score every customer of customer_profile with a recorded version (default: the latest trained on or before
    ``as_of``) into segments.scores. Idempotent per (model, version, as-of): the rows are replaced in one commit,
    and skipped when they were computed from the same profile snapshot."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    record = get_model(spark, settings, model_id, version=version, on_or_before=None if version else as_of)
    spec = parse_spec(json.loads(record.spec), source=record.label)
    tables = input_tables(settings)
    snapshots = {name: _snapshot_id(spark, table) for name, table in tables.items()}
    table = scores_table(settings)
    spark.sql(f"REFRESH TABLE {table}")
    key = {"model_id": model_id, "version": record.version, "as_of": as_of}
    where = "model_id = :model_id AND model_version = :version AND as_of_date = :as_of"
    existing = spark.sql(
        f"SELECT count(*) AS n, min(profile_snapshot_id) AS lo, max(profile_snapshot_id) AS hi "
        f"FROM {table} WHERE {where}",
        args=key,
    ).collect()[0]
    if existing.n and existing.lo == existing.hi == snapshots["customer_profile"]:
        return ScoreResult(model_id, record.version, as_of, existing.n, rescored=False)
    features = _prepared(scoring_frame(spark, settings, spec, as_of=as_of, snapshots=snapshots), spec, ["customer_id"])
    predictions = PipelineModel.load(record.model_path).transform(features)
    scored = predictions.select(
        F.lit(model_id).alias("model_id"),
        F.lit(record.version).cast("int").alias("model_version"),
        F.lit(as_of).cast("date").alias("as_of_date"),
        F.col("customer_id").cast("bigint").alias("customer_id"),
        vector_to_array(F.col("probability"))[1].alias("score"),
        F.lit(snapshots["customer_profile"]).cast("bigint").alias("profile_snapshot_id"),
        F.lit(_now().strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp").alias("scored_at"),
    ).localCheckpoint()
    condition = (
        (F.col("model_id") == F.lit(model_id))
        & (F.col("model_version") == F.lit(record.version))
        & (F.col("as_of_date") == F.lit(as_of))
    )
    # (model, version, as-of) is exactly a partition: the overwrite replaces whole partitions, even after
    # compaction rewrote their files, and readers see the old or the new scores.
    scored.writeTo(table).overwrite(condition)
    return ScoreResult(model_id, record.version, as_of, scored.count(), rescored=True)


def scores_frame(spark, settings: Settings, model_id: str, version: int, as_of: dt.date):
    """customer_id, score of one (model, version, as-of)."""
    return spark.sql(
        f"SELECT customer_id, score FROM {scores_table(settings)} "
        "WHERE model_id = :model_id AND model_version = :version AND as_of_date = :as_of",
        args={"model_id": model_id, "version": version, "as_of": as_of},
    )


def train_and_score(
    settings: Settings,
    model: str = "renewal",
    *,
    as_of: dt.date | None = None,
    max_age_days: int | None = None,
    trained_by: str = "mo",
) -> tuple[ModelRecord, ScoreResult]:
    """Train (or reuse, see ``ensure_model``) ``model`` and score every customer at ``as_of`` (default: today,
    UTC): what ``mo segments train`` and the build_profiles DAG run before the segment refresh."""
    from spark_jobs.session import get_spark

    spec = load_spec(model)  # an invalid spec stops here, before Spark starts
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    spark = get_spark(settings, app_name=f"propensity-{spec.model}")
    record = ensure_model(spark, settings, spec.model, as_of=as_of, max_age_days=max_age_days, trained_by=trained_by)
    return record, score_customers(spark, settings, spec.model, as_of=as_of, version=record.version)


# --- smart segment membership ----------------------------------------------------------------------------------


def smart_members(spark, settings: Settings, definition, *, as_of: dt.date):
    """(DataFrame of customer_id, matched_clauses; note) for a smart segment at ``as_of``, or (None, reason) when
    its model has no version trained on or before ``as_of``. Scores the customers first if that (model, version,
    as-of) has no scores from the current profile. Called by ``membership.refresh_segments``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    smart = definition.smart or {}
    model_id = smart["model"]
    try:
        record = get_model(spark, settings, model_id, on_or_before=as_of)
    except ModelNotTrained as exc:
        return None, str(exc)
    score_customers(spark, settings, model_id, as_of=as_of, version=record.version)
    scores = scores_frame(spark, settings, model_id, record.version, as_of)
    auc = f"AUC {record.auc:.3f}" if record.auc is not None else "no holdout AUC"
    # Truncated, never rounded up: a listed score is never shown above the member's real score.
    shown = F.format_string("%.3f", F.floor(F.col("score") * 1000) / 1000)
    if "threshold" in smart:
        threshold = float(smart["threshold"])
        members = scores.where(F.col("score") >= F.lit(threshold))
        reason = F.format_string("smart: score %s >= %s (%s)", shown, F.lit(f"{threshold:g}"), F.lit(record.label))
        note = f"{record.label} ({auc}), score >= {threshold:g}"
    else:
        top_n = int(smart["top_n"])
        ranked = scores.withColumn("rank", F.row_number().over(Window.orderBy(F.desc("score"), "customer_id")))
        members = ranked.where(F.col("rank") <= F.lit(top_n))
        reason = F.format_string(
            "smart: score %s, rank %d of top %d (%s)", shown, F.col("rank"), F.lit(top_n), F.lit(record.label)
        )
        note = f"{record.label} ({auc}), top {top_n}"
    return members.select("customer_id", F.array(reason).alias("matched_clauses")), note


__all__ = [
    "MODELS_DIR",
    "ModelNotTrained",
    "ModelRecord",
    "ModelSpec",
    "ModelSpecError",
    "ScoreResult",
    "ensure_model",
    "get_model",
    "load_spec",
    "model_history",
    "parse_spec",
    "score_customers",
    "smart_members",
    "train_and_score",
    "train_model",
    "training_frame",
]
