"""Run the dbt project (dbt/) in-process on this process's SparkSession.

Why in-process: dbt-spark's ``session`` method executes SQL on ``SparkSession.builder.getOrCreate()``, so
when this module creates the session first with :func:`spark_jobs.session.get_spark` (jars, Iceberg
catalog, master from the ``MO_*`` settings) dbt reuses it, and one JVM serves the sync, dbt and the
segment jobs. The profile (dbt/profiles.yml, target ``session``) then only has to name the catalog; it
reads ``MO_CATALOG_NAME``, which :func:`run_dbt` sets from the settings for the duration of the call.

dbt's ``target/`` (manifest, compiled SQL, docs) and ``logs/`` go under ``MO_HOME/dbt``, never into the
repository. A failed node raises :class:`mo.errors.MoError` naming the node and dbt's message.

``python -m mo.marts.dbt build --vars '{as_of_date: 2025-12-31}'`` runs any dbt command this way.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mo.config import REPO_ROOT, Settings, get_settings
from mo.errors import MoError

DBT_PROJECT_DIR = REPO_ROOT / "dbt"
DEFAULT_CATALOG_CONF = "spark.sql.defaultCatalog"
# Failure statuses of dbt node results (RunStatus / TestStatus values).
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})

_lock = threading.Lock()  # the environment and the session's default catalog are process-wide


class DbtFailed(MoError):
    """A dbt command failed; the message names each failed node and why."""


def dbt_state_dir(settings: Settings) -> Path:
    return settings.home / "dbt"


def build_vars(settings: Settings, as_of_date: date | str | None = None) -> dict[str, Any]:
    """Every dbt var a build needs: ``as_of_date`` (default: today, UTC), the send decision's contact caps (the
    settings' one definition, for the contact pressure mart) and the tag registry's vars."""
    if as_of_date is None:
        as_of = datetime.now(UTC).date().isoformat()
    elif isinstance(as_of_date, date):
        as_of = as_of_date.isoformat()
    else:
        try:
            as_of = date.fromisoformat(as_of_date).isoformat()
        except ValueError:
            raise MoError(f"as_of_date {as_of_date!r} is not a date (expected YYYY-MM-DD)") from None
    result: dict[str, Any] = {
        "as_of_date": as_of,
        "contact_cap_7d": settings.contact_cap_7d,
        "contact_cap_30d": settings.contact_cap_30d,
        "contact_cap_channel_7d": settings.contact_cap_channel_7d,
    }
    result.update(_registry_vars())
    return result


def _registry_vars() -> dict[str, Any]:
    """The tag registry as dbt vars, when the tags package is installed (it owns the registry format)."""
    try:
        from mo.tags.registry import load_registry, registry_vars  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return {}
    return dict(registry_vars(load_registry()))


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _has_flag(args: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in args for f in flags)


def dbt_args(settings: Settings, args: list[str], vars: Mapping[str, Any] | None = None) -> list[str]:
    """The full dbt command line: project and profiles in dbt/, target ``session``, vars as JSON."""
    full = list(args)
    if not _has_flag(full, "--project-dir"):
        full += ["--project-dir", str(DBT_PROJECT_DIR)]
    if not _has_flag(full, "--profiles-dir"):
        full += ["--profiles-dir", str(DBT_PROJECT_DIR)]
    if not _has_flag(full, "--target", "-t"):
        full += ["--target", "session"]
    if vars and not _has_flag(full, "--vars"):
        full += ["--vars", json.dumps(dict(vars), default=str)]
    return full


def _one_line(message: str, limit: int) -> str:
    """dbt's message on one line, without the Java stack trace Spark errors carry."""
    text = " ".join(message.split())
    for marker in (" at org.", " at java.", " at scala.", " at py4j."):
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    return text[:limit]


def failed_nodes(result: Any) -> list[tuple[str, str]]:
    """(unique_id, message) of every node dbt reports as errored or failed."""
    failures = []
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status in FAILED_STATUSES:
            node = getattr(node_result, "node", None)
            name = str(getattr(node, "unique_id", None) or getattr(node, "name", "?"))
            message = str(getattr(node_result, "message", "") or status)
            failures.append((name, _one_line(message, 800)))
    return failures


def layer_schemas(project_file: Path = DBT_PROJECT_DIR / "dbt_project.yml") -> list[str]:
    """The schemas (catalog namespaces) the project's models go to: every ``+schema`` under ``models``."""
    import yaml

    found: list[str] = []

    def walk(config: Any) -> None:
        if not isinstance(config, dict):
            return
        for key, value in config.items():
            if key == "+schema" and isinstance(value, str) and value not in found:
                found.append(value)
            walk(value)

    walk(yaml.safe_load(project_file.read_text()).get("models"))
    return found


def _ensure_lake_objects(spark, settings: Settings) -> None:
    """Create what a young lake may lack, so every model, any ``--select`` and `docs generate` resolve:

    - the (empty) source tables: bronze.events before the first event ingest, segments.* before the first
      segment refresh;
    - the layers' namespaces: dbt lists the relations of every schema in the project before it creates
      the selected models' schemas, and a missing Iceberg namespace fails that listing (a first build
      limited to ``--select staging`` stopped on "Namespace does not exist: intermediate").
    """
    from mo.segments.definitions import ensure_definitions_table
    from mo.segments.membership import ensure_tables as ensure_segment_tables
    from spark_jobs.events_ingest import ensure_tables as ensure_event_tables

    ensure_event_tables(spark, settings)
    ensure_segment_tables(spark, settings)
    ensure_definitions_table(spark, settings)
    from spark_jobs.campaign_sync import ensure_silver_tables as ensure_campaign_tables

    ensure_campaign_tables(spark, settings)  # the campaign results marts read them before the first campaign
    for schema in layer_schemas():
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.{schema}")


def run_dbt(settings: Settings, args: list[str], *, vars: Mapping[str, Any] | None = None) -> Any:
    """Run ``dbt <args>`` on the settings' lake; return dbt's result object, raise DbtFailed on failure."""
    from dbt.cli.main import dbtRunner

    from spark_jobs.session import get_spark

    if not args:
        raise MoError("no dbt command given (e.g. ['build'])")
    spark = get_spark(settings, app_name="mo-dbt")
    _ensure_lake_objects(spark, settings)
    state = dbt_state_dir(settings)
    state.mkdir(parents=True, exist_ok=True)
    env = {
        "MO_CATALOG_NAME": settings.catalog_name,
        "MO_DBT_TARGET": "session",
        "DBT_TARGET_PATH": str(state / "target"),
        "DBT_LOG_PATH": str(state / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = dbt_args(settings, args, vars)
    with _lock, _environment(env):
        previous_catalog = spark.conf.get(DEFAULT_CATALOG_CONF, None)
        try:
            outcome = dbtRunner().invoke(command)
        finally:
            # dbt switched the shared session's default catalog; give other users of the session theirs back
            if previous_catalog is not None:
                spark.conf.set(DEFAULT_CATALOG_CONF, previous_catalog)
            else:
                spark.conf.unset(DEFAULT_CATALOG_CONF)
    if outcome.success:
        return outcome.result
    what = f"dbt {args[0]}"
    failures = failed_nodes(outcome.result)
    if failures:
        listed = "; ".join(f"{name}: {message}" for name, message in failures)
        raise DbtFailed(f"{what} failed on {len(failures)} node(s): {listed}")
    if outcome.exception is not None:
        raise DbtFailed(f"{what} failed: {_one_line(str(outcome.exception), 1000)}")
    raise DbtFailed(f"{what} failed (see {state / 'logs' / 'dbt.log'})")


def main(argv: list[str] | None = None) -> int:
    """``python -m mo.marts.dbt <dbt args>``: dbt on the lake of the current MO_* settings."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings = get_settings()
    try:
        run_dbt(settings, args, vars=None if _has_flag(args, "--vars") else build_vars(settings))
    except MoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
