#!/bin/bash
# First start of the PostgreSQL volume, after 10-platform-databases.sh: Superset's metadata database and
# the read-only login its dashboards read the analytics marts with (schema `analytics` of the serving
# database, which the platform publishes as serving_publisher; schemas/serving/analytics.yaml).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v superset_password="$SUPERSET_DB_PASSWORD" \
    -v reader_password="$ANALYTICS_READER_PASSWORD" <<'SQL'
CREATE ROLE superset LOGIN PASSWORD :'superset_password';
CREATE DATABASE superset OWNER superset;
REVOKE ALL ON DATABASE superset FROM PUBLIC;
CREATE ROLE analytics_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE serving TO analytics_reader;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname serving <<'SQL'
CREATE SCHEMA IF NOT EXISTS analytics AUTHORIZATION serving_publisher;
GRANT USAGE ON SCHEMA analytics TO analytics_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE serving_publisher IN SCHEMA analytics GRANT SELECT ON TABLES TO analytics_reader;
SQL
