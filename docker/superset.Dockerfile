# Superset for the compose stack: the stock 6.1.0 image plus what it lacks for this platform.
# - psycopg2: the metadata database and the analytics marts are PostgreSQL, and the stock image ships no
#   database driver; PyHive (pure-sasl, thrift) for SQL Lab's Lake database (the cluster's Thrift server); the
#   versions of dashboards/requirements.lock (what `make dashboards` runs and tests).
# - the project's configuration, its set-up script and the dashboards bundle (dashboards/), and the platform's
#   bundle renderer (mo/dashboards.py with the two modules it imports) and the audited-events rule the event logger
#   applies (mo/superset_events.py), so that the container imports the
#   bundle itself at every start (bootstrap.py setup --render).
FROM apache/superset:6.1.0

USER root
RUN . /app/.venv/bin/activate && uv pip install --no-cache psycopg2-binary==2.9.13 pyhive==0.7.0 thrift==0.25.0 \
    thrift-sasl==0.4.3 pure-sasl==0.6.2 future==1.0.0

COPY dashboards/superset_config.py dashboards/bootstrap.py dashboards/sql_lab_guard.py dashboards/lake_sql_dialect.py dashboards/event_log.py \
    /app/mo_dashboards/
COPY dashboards/bundles /app/mo_dashboards/bundles
COPY mo/__init__.py mo/errors.py mo/dashboards.py mo/superset_events.py /app/mo_platform/mo/
ENV PYTHONPATH=/app/mo_platform \
    SUPERSET_CONFIG_PATH=/app/mo_dashboards/superset_config.py

USER superset
