# The platform image: Airflow (every component), the Spark master and workers, and the `mo` CLI.
# One image for all of them so the driver (inside the Airflow scheduler), the executors and the CLI
# run the same Python, the same pyspark and the same Iceberg and JDBC jars.
FROM python:3.11-slim-bookworm AS platform

ARG UV_VERSION=0.13.9
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    JAVA_TOOL_OPTIONS=-Duser.timezone=UTC \
    AIRFLOW_HOME=/opt/airflow \
    MO_HOME=/var/lib/mo

# Java for Spark; the JDBC drivers Spark reads the sources and the Iceberg catalog with
# (spark_jobs/session.py expects them under /usr/share/java); curl for the health checks.
# (The man1 directory is missing from slim images and the JRE's post-install step needs it.)
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless procps curl tini \
      libmariadb-java libpostgresql-jdbc-java libxerial-sqlite-jdbc-java \
 && rm -rf /var/lib/apt/lists/* \
 && test -f /usr/share/java/mariadb-java-client.jar \
 && test -f /usr/share/java/postgresql.jar \
 && test -f /usr/share/java/sqlite-jdbc.jar

RUN pip install --no-cache-dir "uv==${UV_VERSION}" && uv venv --python /usr/local/bin/python3.11 "$VIRTUAL_ENV"

WORKDIR /opt/mo
# Dependencies first, from the hashed lock alone, so code changes do not re-download them.
COPY requirements/platform.lock requirements/platform.lock
RUN uv pip sync --no-cache requirements/platform.lock

COPY pyproject.toml ./
COPY mo mo
COPY spark_jobs spark_jobs
COPY quality quality
COPY schemas schemas
COPY dags dags
COPY dbt dbt
RUN uv pip install --no-cache --no-deps -e . && mo --help >/dev/null

COPY docker/platform-entrypoint.sh /usr/local/bin/platform-entrypoint
RUN chmod 0755 /usr/local/bin/platform-entrypoint \
 && useradd --create-home --uid 50000 --gid 0 mo \
 && mkdir -p "$AIRFLOW_HOME/logs" "$MO_HOME" /var/lib/lakehouse /var/lib/spark/work \
 && chown -R mo:0 "$AIRFLOW_HOME" "$MO_HOME" /var/lib/lakehouse /var/lib/spark

USER mo
ENTRYPOINT ["tini", "--", "platform-entrypoint"]
CMD ["mo", "--help"]

# The dashboards-sync service (`mo dashboards sync`, target dashboards-sync): the platform image plus Superset's own
# environment, in which the user sync runs Superset's security manager (dashboards/bootstrap.py sync-users; Superset
# needs SQLAlchemy < 2, the platform 2). Laid out as `make dashboards-env` lays it out, so mo/dashboards_users.py
# finds it where it does on a workstation: dashboards/.venv from dashboards/requirements.lock, beside the
# configuration and the set-up script. No bundle, no gunicorn: this image serves nothing.
FROM platform AS dashboards-sync
USER root
COPY dashboards/requirements.lock dashboards/requirements.lock
RUN uv venv --python /usr/local/bin/python3.11 dashboards/.venv \
 && VIRTUAL_ENV=/opt/mo/dashboards/.venv uv pip sync --no-cache dashboards/requirements.lock
COPY dashboards/superset_config.py dashboards/bootstrap.py dashboards/sql_lab_guard.py dashboards/lake_sql_dialect.py dashboards/event_log.py \
    dashboards/
USER mo
