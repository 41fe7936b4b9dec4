"""Run `mo sync` as a Spark application on a cluster: ``spark-submit ... spark_jobs/submit_sync.py``.

The application is the same code as the CLI: it reads :func:`mo.config.get_settings` (``MO_SPARK_MASTER``
names the cluster, the catalog and warehouse settings must be reachable from the executors) and calls
:func:`spark_jobs.sync.run_sync`. :func:`submit_command` builds the spark-submit call with the jars
:mod:`spark_jobs.session` uses: they must be on the command line, because in client mode the driver
JVM is already running when the session's ``spark.jars`` would be read.

    python -m spark_jobs.submit_sync --print-command   # show the spark-submit call for this environment
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mo.config import Settings, get_settings


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def submit_command(settings: Settings, tables: list[str] | None = None, *, driver_memory: str = "1g") -> list[str]:
    """The spark-submit argv that runs this module against ``settings.spark_master``."""
    from spark_jobs.session import spark_jars

    jars = spark_jars()
    argv = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        settings.spark_master,
        "--name",
        "mo-sync",
        "--jars",
        ",".join(jars),
        "--driver-class-path",
        os.pathsep.join(jars),
        "--driver-memory",
        driver_memory,
        "--conf",
        "spark.driver.extraJavaOptions=-Duser.timezone=UTC",
        "--conf",
        "spark.executor.extraJavaOptions=-Duser.timezone=UTC",
        str(Path(__file__).resolve()),
    ]
    for table in tables or []:
        argv += ["--table", table]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sync source tables into bronze and silver (Spark application)")
    parser.add_argument("--table", dest="tables", action="append", help="sync only this table (repeatable)")
    parser.add_argument("--print-command", action="store_true", help="print the spark-submit call and exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.print_command:
        print(" ".join(submit_command(settings, args.tables)))
        return 0

    from mo.errors import MoError
    from spark_jobs.session import get_spark
    from spark_jobs.sync import check_sync_config, run_sync

    try:
        check_sync_config(settings, args.tables)
    except MoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    spark = get_spark(settings, app_name="mo-sync")
    try:
        manifest = run_sync(spark, settings, tables=args.tables)
    except MoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(json.dumps({"run_id": manifest["run_id"], "tables": manifest["tables"]}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
