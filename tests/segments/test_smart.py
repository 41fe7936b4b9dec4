"""Smart segments: a renewal propensity model trained on a small synthetic history with a planted signal, AUC on
the holdout recorded with the model version, scores for every customer, threshold and top-N membership with
explanations, and idempotent retraining and scoring."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path

import pytest

from mo.config import Settings
from mo.segments.definitions import EXAMPLES_DIR, load_definitions, parse_definition
from mo.segments.smart import (
    MODELS_DIR,
    ModelSpecError,
    get_model,
    load_spec,
    parse_spec,
    score_customers,
    train_and_score,
    train_model,
    training_frame,
)
from tests.conftest import unique
from tests.segments.profile_data import AS_OF, make_world, spark_frames

BASE = {"name": "n", "description": "d", "owner": "retention"}
N_CUSTOMERS = 400
LINES = ["auto", "property", "accident", "health", "life"]


def renewal_odds(profile: dict, payment_mode: str) -> float:
    """The planted signal: app-push consent, agent acquisition and annual payment renew; risky customers leave."""
    logit = -0.6 + 2.2 * profile["consent_app_push"] + 1.2 * (profile["acquisition_channel"] == "agent")
    logit += -1.4 * (profile["risk_rating"] in ("R4", "R5")) + 0.8 * (payment_mode == "annual")
    return 1 / (1 + math.exp(-logit))


def make_history(profiles: list[dict], seed: int = 5) -> tuple[list[tuple], list[tuple], dict[int, int]]:
    """policies and products rows (silver columns the models read) and the expected label of each training
    example. Each customer has 1-2 annual policies ending between 2025-01 and 2026-09; those ending before
    AS_OF are renewed with the planted odds; some non-renewals leave an unpaid renewal quote behind."""
    rnd = random.Random(seed)
    products = [(i + 1, line, 12) for i, line in enumerate(LINES)] + [(6, "health", 1)]
    policies: list[tuple] = []
    labels: dict[int, int] = {}
    window_start, window_end = dt.date(2025, 2, 28), dt.date(2026, 2, 28)  # 12 months before AS_OF - 31 days
    next_id = 1

    def add(customer_id, product_id, start, end, status, renewal_of, issued_at, payment_mode, premium) -> int:
        nonlocal next_id
        policies.append(
            (next_id, customer_id, product_id, start, end, status, renewal_of, issued_at, payment_mode, premium)
        )
        next_id += 1
        return next_id - 1

    for profile in profiles:
        customer_id = profile["customer_id"]
        for _ in range(rnd.randint(1, 2)):
            product_id = rnd.randint(1, 5)
            end = dt.date(2025, 1, 1) + dt.timedelta(days=rnd.randint(0, 630))
            start = end - dt.timedelta(days=364)
            issued = dt.datetime.combine(start - dt.timedelta(days=2), dt.time(10))
            payment_mode = rnd.choice(["annual", "monthly"])
            premium = round(rnd.uniform(500, 8000), 2)
            status = "expired" if end < AS_OF else "in_force"
            pid = add(customer_id, product_id, start, end, status, None, issued, payment_mode, premium)
            if end >= AS_OF:
                continue
            renewed = rnd.random() < renewal_odds(profile, payment_mode)
            if window_start <= end < window_end:
                labels[pid] = int(renewed)
            if renewed:
                new_end = end + dt.timedelta(days=365)
                issued_renewal = dt.datetime.combine(end - dt.timedelta(days=rnd.randint(1, 20)), dt.time(15))
                renewal = add(
                    customer_id,
                    product_id,
                    end + dt.timedelta(days=1),
                    new_end,
                    "expired" if new_end < AS_OF else "in_force",
                    pid,
                    issued_renewal,
                    payment_mode,
                    premium,
                )
                if window_start <= new_end < window_end:
                    labels[renewal] = 0  # ended without a renewal of its own
            elif rnd.random() < 0.3:  # an unpaid renewal quote: not a renewal
                add(customer_id, product_id, end + dt.timedelta(days=1), end + dt.timedelta(days=365), "lapsed", pid,
                    None, payment_mode, premium)  # fmt: skip
        if rnd.random() < 0.2:  # a monthly product: never a training example (term 1 month)
            add(customer_id, 6, dt.date(2025, 6, 1), dt.date(2025, 6, 30), "expired", None,
                dt.datetime(2025, 5, 30, 9), "single", 99.0)  # fmt: skip
    return policies, products, labels


POLICY_DDL = (
    "id bigint, customer_id bigint, product_id bigint, start_date date, end_date date, status string, "
    "renewal_of bigint, issued_at timestamp, payment_mode string, premium decimal(18,2)"
)


def write_world(spark, settings: Settings, profiles, events, policies, products) -> None:
    from decimal import Decimal

    catalog = settings.catalog_name
    for namespace in ("marts", "silver"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {catalog}.{namespace}")
    profile_df, events_df = spark_frames(spark, profiles, events)
    profile_df.writeTo(f"{catalog}.marts.customer_profile").using("iceberg").createOrReplace()
    events_df.writeTo(f"{catalog}.marts.customer_event_daily").using("iceberg").createOrReplace()
    # timestamps go in as UTC text, cast by Spark: naive datetimes would be read in the process's local zone
    rows = [(*p[:7], p[7].isoformat(sep=" ") if p[7] else None, p[8], Decimal(str(p[9]))) for p in policies]
    frame = spark.createDataFrame(rows, POLICY_DDL.replace("issued_at timestamp", "issued_at string"))
    frame = frame.withColumn("issued_at", frame.issued_at.cast("timestamp"))
    frame.writeTo(f"{catalog}.silver.policies").using("iceberg").createOrReplace()
    spark.createDataFrame(products, "id bigint, line string, term_months int").writeTo(
        f"{catalog}.silver.products"
    ).using("iceberg").createOrReplace()


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """One lake for the module (training is the slow part): settings, profiles, policies, expected labels."""
    from spark_jobs.session import get_spark

    settings = Settings(home=tmp_path_factory.mktemp("smart_home"), catalog_name=unique("lake"))
    lake = get_spark(settings)
    profiles, events = make_world(N_CUSTOMERS, seed=23)
    policies, products, labels = make_history(profiles)
    write_world(lake, settings, profiles, events, policies, products)
    return lake, settings, profiles, events, policies, labels


@pytest.fixture(scope="module")
def trained(world):
    lake, settings, *_ = world
    return train_model(lake, settings, "renewal", as_of=AS_OF)


# --- specs ---------------------------------------------------------------------------------------------------


def test_renewal_spec_loads_and_leaking_or_unknown_features_are_refused():
    spec = load_spec("renewal")
    assert spec.model == "renewal" and "product_line" in spec.columns("categorical")
    assert spec.window(AS_OF) == (dt.date(2025, 2, 28), dt.date(2026, 2, 28))

    raw = json.loads(json.dumps(spec.raw))
    raw["features"]["profile"]["numeric"] += ["policy_count", "claims_12m", "no_such_column"]
    raw["features"]["profile"]["categorical"].append("age")
    raw["algorithm"]["params"]["maxDepthh"] = 3
    with pytest.raises(ModelSpecError) as caught:
        parse_spec(raw, source="renewal.yaml")
    message = str(caught.value)
    assert "renewal.yaml#/features/profile/numeric/2: policy_count depends on the outcome" in message
    assert "/features/profile/numeric/3: claims_12m depends on the outcome" in message
    assert "/features/profile/numeric/4: 'no_such_column' is not a customer_profile column" in message
    assert "/features/profile/categorical/6: age is int, not a categorical column" in message
    assert "/algorithm/params/maxDepthh: not a parameter of LogisticRegression" in message

    with pytest.raises(ModelSpecError, match=r"#/algorithm/name: 'svm' is not one of"):
        parse_spec({**spec.raw, "algorithm": {"name": "svm"}}, source="x.yaml")


def test_example_smart_segment_is_a_valid_definition():
    (definition,) = [d for d in load_definitions(EXAMPLES_DIR) if d.kind == "smart"]
    assert definition.kind == "smart" and definition.smart == {"model": "renewal", "top_n": 1000}
    assert (MODELS_DIR / f"{definition.smart['model']}.yaml").is_file()


# --- training ------------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_training_examples_and_labels_follow_the_renewal_chain(world):
    lake, settings, _, _, policies, labels = world
    from mo.segments.smart import _snapshot_id, input_tables

    snapshots = {k: _snapshot_id(lake, t) for k, t in input_tables(settings).items()}
    frame = training_frame(lake, settings, load_spec("renewal"), as_of=AS_OF, snapshots=snapshots)
    rows = {r.example_id: r for r in frame.collect()}
    assert {k: int(r.label) for k, r in rows.items()} == labels
    assert 0.25 < sum(labels.values()) / len(labels) < 0.75

    # Point in time: the renewal of an example (issued after its decision date) is never counted as history.
    by_id = {p[0]: p for p in policies}
    renewals = {p[6]: p for p in policies if p[6] is not None}
    for example_id, row in rows.items():
        customer = by_id[example_id][1]
        reference = by_id[example_id][4] - dt.timedelta(days=30)
        expected_prior = sum(
            1
            for p in policies
            if p[1] == customer and p[0] != example_id and p[7] is not None and p[7].date() < reference
            and p is not renewals.get(example_id)
        )  # fmt: skip
        assert row.prior_policies == expected_prior, example_id
        assert row.reference_date == reference


@pytest.mark.spark
def test_model_trains_records_auc_with_its_version_and_retraining_is_idempotent(world, trained):
    lake, settings, _, _, policies, labels = world
    record = trained
    assert record.version == 1 and record.as_of == AS_OF
    assert record.rows_train + record.rows_holdout == len(labels)
    assert 0.1 < record.rows_holdout / len(labels) < 0.3
    assert record.auc is not None and record.auc > 0.6, record.auc  # the planted signal is found
    assert record.positives_train + record.positives_holdout == sum(labels.values())
    assert record.params["maxIter"] == 100 and record.params["seed"] == 42
    assert "consent_app_push" in record.features["boolean"] and "product_line" in record.features["categorical"]
    assert "profile attributes as of training" in record.notes
    assert Path(record.model_path.removeprefix("file://"), "stages").is_dir()

    stored = lake.sql(f"SELECT * FROM {settings.catalog_name}.segments.models").collect()
    assert [(r.model_id, r.version, r.auc) for r in stored] == [("renewal", 1, record.auc)]
    assert json.loads(stored[0].input_snapshots).keys() == {"customer_profile", "policies", "products"}

    again = train_model(lake, settings, "renewal", as_of=AS_OF)
    assert (again.version, again.fingerprint, again.auc) == (1, record.fingerprint, record.auc)
    assert lake.sql(f"SELECT count(*) FROM {settings.catalog_name}.segments.models").collect()[0][0] == 1


@pytest.mark.spark
def test_new_input_data_gives_the_next_version(spark, tmp_path):
    from spark_jobs.session import get_spark

    settings = Settings(home=tmp_path, catalog_name=unique("lake"))
    lake = get_spark(settings)
    profiles, events = make_world(150, seed=3)
    policies, products, _ = make_history(profiles, seed=9)
    write_world(lake, settings, profiles, events, policies, products)
    first = train_model(lake, settings, "renewal", as_of=AS_OF)
    assert train_model(lake, settings, "renewal", as_of=AS_OF).version == first.version == 1

    lake.sql(f"DELETE FROM {settings.catalog_name}.silver.policies WHERE id % 7 = 0")  # a new silver snapshot
    second = train_model(lake, settings, "renewal", as_of=AS_OF)
    assert second.version == 2 and second.fingerprint != first.fingerprint
    assert second.input_snapshots["policies"] != first.input_snapshots["policies"]
    assert get_model(lake, settings, "renewal").version == 2
    assert get_model(lake, settings, "renewal", version=1).fingerprint == first.fingerprint


# --- scoring and membership ------------------------------------------------------------------------------------


@pytest.mark.spark
def test_every_customer_is_scored_once_per_model_version_and_as_of(world, trained):
    lake, settings, profiles, *_ = world
    result = score_customers(lake, settings, "renewal", as_of=AS_OF)
    assert (result.model_version, result.customers, result.rescored) == (trained.version, N_CUSTOMERS, True)
    table = f"{settings.catalog_name}.segments.scores"
    rows = lake.sql(f"SELECT * FROM {table} WHERE as_of_date = DATE'{AS_OF}'").collect()
    assert sorted(r.customer_id for r in rows) == sorted(p["customer_id"] for p in profiles)
    assert all(0.0 <= r.score <= 1.0 for r in rows) and len({round(r.score, 6) for r in rows}) > 20

    # The planted signal shows in the scores too: consenting customers score higher on average.
    by_id = {p["customer_id"]: p for p in profiles}
    consenting = [r.score for r in rows if by_id[r.customer_id]["consent_app_push"]]
    others = [r.score for r in rows if not by_id[r.customer_id]["consent_app_push"]]
    assert sum(consenting) / len(consenting) > sum(others) / len(others) + 0.1

    again = score_customers(lake, settings, "renewal", as_of=AS_OF)
    assert not again.rescored and again.customers == N_CUSTOMERS
    later = AS_OF + dt.timedelta(days=1)
    assert score_customers(lake, settings, "renewal", as_of=later).rescored
    assert lake.sql(f"SELECT count(*) FROM {table}").collect()[0][0] == 2 * N_CUSTOMERS

    # The entry point for the CLI and the DAG: a model trained within max_age_days is reused, not retrained.
    record, reused = train_and_score(settings, "renewal", as_of=later, max_age_days=30)
    assert (record.version, reused.rescored, reused.customers) == (trained.version, False, N_CUSTOMERS)


@pytest.mark.spark
def test_smart_segments_by_threshold_and_top_n_with_explanations(world, trained):
    from mo.segments.membership import explain, members_at, refresh_segments

    lake, settings, *_ = world
    threshold = parse_definition(
        {**BASE, "id": "likely-renewers", "kind": "smart", "smart": {"model": "renewal", "threshold": 0.6}}
    )
    top = parse_definition({**BASE, "id": "top-renewers", "kind": "smart", "smart": {"model": "renewal", "top_n": 25}})
    untrained = parse_definition(
        {**BASE, "id": "cross-sellers", "kind": "smart", "smart": {"model": "cross_sell", "threshold": 0.5}}
    )
    report = refresh_segments(lake, settings, [threshold, top, untrained], as_of=AS_OF, run_id="smart-run")

    scores = {
        r.customer_id: r.score
        for r in lake.sql(
            f"SELECT customer_id, score FROM {settings.catalog_name}.segments.scores "
            f"WHERE model_id = 'renewal' AND model_version = {trained.version} AND as_of_date = DATE'{AS_OF}'"
        ).collect()
    }
    assert len(scores) == N_CUSTOMERS
    above = {c for c, s in scores.items() if s >= 0.6}
    ranked = sorted(scores, key=lambda c: (-scores[c], c))
    assert 0 < len(above) < N_CUSTOMERS
    assert report.sizes == {"likely-renewers": len(above), "top-renewers": 25}
    (skipped,) = report.skipped
    assert skipped.segment_id == "cross-sellers" and "model 'cross_sell' has no trained version" in skipped.note
    assert "renewal v1 (AUC" in next(s.note for s in report.segments if s.segment_id == "top-renewers")

    assert set(members_at(lake, settings, "likely-renewers", AS_OF).customer_ids) == above
    assert members_at(lake, settings, "top-renewers", AS_OF).customer_ids == sorted(ranked[:25])

    member = min(above)
    why = explain(lake, settings, "likely-renewers", member)
    shown = math.floor(scores[member] * 1000) / 1000
    assert why.is_member and [(m.path, m.label) for m in why.matched] == [
        ("smart", f"score {shown:.3f} >= 0.6 (renewal v1)")
    ]
    best = explain(lake, settings, "top-renewers", ranked[0])
    assert best.matched[0].label.startswith("score ") and "rank 1 of top 25 (renewal v1)" in best.matched[0].label
    outsider = ranked[-1]
    assert not explain(lake, settings, "top-renewers", outsider).is_member
