#!/bin/bash
# First start of the PostgreSQL volume, after 10-platform-databases.sh: Superset's metadata database and
# the read-only login its dashboards read the analytics marts with (schema `analytics` of the serving
# database, which the platform publishes as serving_publisher; schemas/serving/analytics.yaml), and the login of
# the dashboards-sync service (superset_sync): it may connect to `superset` and nothing more here; Superset's
# tables do not exist yet (Superset creates them at its start), so bootstrap.py setup grants it exactly the
# tables it reads and writes after each migration (SYNC_GRANTS in dashboards/bootstrap.py).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v superset_password="$SUPERSET_DB_PASSWORD" \
    -v reader_password="$ANALYTICS_READER_PASSWORD" \
    -v sync_password="$SUPERSET_SYNC_DB_PASSWORD" <<'SQL'
CREATE ROLE superset LOGIN PASSWORD :'superset_password';
CREATE DATABASE superset OWNER superset;
REVOKE ALL ON DATABASE superset FROM PUBLIC;
CREATE ROLE analytics_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE serving TO analytics_reader;
CREATE ROLE superset_sync LOGIN PASSWORD :'sync_password';
GRANT CONNECT ON DATABASE superset TO superset_sync;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname serving <<'SQL'
CREATE SCHEMA IF NOT EXISTS analytics AUTHORIZATION serving_publisher;
GRANT USAGE ON SCHEMA analytics TO analytics_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE serving_publisher IN SCHEMA analytics GRANT SELECT ON TABLES TO analytics_reader;
SQL
