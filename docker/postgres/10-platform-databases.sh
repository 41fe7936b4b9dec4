#!/bin/bash
# First start of the PostgreSQL volume: one database and one login per consumer, each able to reach
# only its own database. Passwords come from the container's environment (docker-compose.yml);
# psql's :'var' quoting keeps them literal.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v iceberg_password="$ICEBERG_CATALOG_PASSWORD" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v publisher_password="$SERVING_PUBLISHER_PASSWORD" \
    -v api_password="$SERVING_API_DB_PASSWORD" <<'SQL'
-- Iceberg JDBC catalog: the platform's Spark jobs create and update the catalog tables.
CREATE ROLE iceberg LOGIN PASSWORD :'iceberg_password';
CREATE DATABASE iceberg_catalog OWNER iceberg;
REVOKE ALL ON DATABASE iceberg_catalog FROM PUBLIC;

-- Airflow metadata database.
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

-- Serving store: the platform publishes profiles, tags and segments (owner); the API only reads.
CREATE ROLE serving_publisher LOGIN PASSWORD :'publisher_password';
CREATE ROLE serving_api LOGIN PASSWORD :'api_password';
CREATE DATABASE serving OWNER serving_publisher;
REVOKE ALL ON DATABASE serving FROM PUBLIC;
GRANT CONNECT ON DATABASE serving TO serving_api;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname serving <<'SQL'
ALTER SCHEMA public OWNER TO serving_publisher;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO serving_api;
-- Tables the publisher creates later are readable by the API, and only readable.
ALTER DEFAULT PRIVILEGES FOR ROLE serving_publisher IN SCHEMA public GRANT SELECT ON TABLES TO serving_api;
-- The schema the platform publishes into (schemas/serving/serving.yaml): the same rules.
CREATE SCHEMA serving AUTHORIZATION serving_publisher;
GRANT USAGE ON SCHEMA serving TO serving_api;
ALTER DEFAULT PRIVILEGES FOR ROLE serving_publisher IN SCHEMA serving GRANT SELECT ON TABLES TO serving_api;
SQL
