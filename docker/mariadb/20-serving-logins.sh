#!/bin/bash
# First start of the MariaDB volume, after 10-source-reader.sh (sourced by the image's entrypoint, like
# it: not executable on purpose). Logins of the serving side, each with the least it needs:
# - mo_api, the serving API: reads the source; the tables it writes are granted one by one, INSERT/UPDATE
#   only, by `python -m app.cli grant-logins` (the compose service serving-init) once the migration has
#   created them (a grant on a table that does not exist yet is refused);
# - mo_relay, the outbox relay: reads and marks the outbox only, granted the same way;
# - mo_dispatch, the campaign dispatcher, and mo_channels, the channel workers: no table at all until
#   grant-logins gives each SELECT on what it reads and INSERT/UPDATE on what it writes (DISPATCH_WRITES,
#   CHANNEL_WRITES in serving/app/cli.py); mo_channels alone reads customers' phone numbers;
# - mo_dashboards, the dashboards-sync service: no table until grant-logins lets it read and append the audit log
#   and read the staff accounts' names, roles and organisations (DASHBOARDS_SYNC_WRITES);
# - source_writer, the owner of the database, may pass on its privileges, so that serving-init grants
#   those table privileges without the root password.

api_password="$(docker_sql_escape_string_literal "${SERVING_SOURCE_PASSWORD:?set SERVING_SOURCE_PASSWORD}")"
relay_password="$(docker_sql_escape_string_literal "${OUTBOX_RELAY_PASSWORD:?set OUTBOX_RELAY_PASSWORD}")"
dispatch_password="$(docker_sql_escape_string_literal "${CAMPAIGN_DISPATCH_PASSWORD:?set CAMPAIGN_DISPATCH_PASSWORD}")"
channels_password="$(docker_sql_escape_string_literal "${CHANNEL_WORKER_PASSWORD:?set CHANNEL_WORKER_PASSWORD}")"
dashboards_password="$(docker_sql_escape_string_literal "${DASHBOARDS_SYNC_PASSWORD:?set DASHBOARDS_SYNC_PASSWORD}")"

docker_process_sql --database=mysql <<SQL
CREATE USER 'mo_api'@'%' IDENTIFIED BY '${api_password}';
GRANT SELECT ON \`${MARIADB_DATABASE}\`.* TO 'mo_api'@'%';
CREATE USER 'mo_relay'@'%' IDENTIFIED BY '${relay_password}';
GRANT USAGE ON *.* TO 'mo_relay'@'%';
CREATE USER 'mo_dispatch'@'%' IDENTIFIED BY '${dispatch_password}';
GRANT USAGE ON *.* TO 'mo_dispatch'@'%';
CREATE USER 'mo_channels'@'%' IDENTIFIED BY '${channels_password}';
GRANT USAGE ON *.* TO 'mo_channels'@'%';
CREATE USER 'mo_dashboards'@'%' IDENTIFIED BY '${dashboards_password}';
GRANT USAGE ON *.* TO 'mo_dashboards'@'%';
GRANT ALL PRIVILEGES ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%' WITH GRANT OPTION;
SQL
