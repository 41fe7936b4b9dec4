#!/bin/bash
# First start of the MariaDB volume (sourced by the image's entrypoint, which provides
# docker_process_sql and docker_sql_escape_string_literal). The image itself created the source
# database and its writer (MARIADB_DATABASE, MARIADB_USER: the application that owns the data, here
# the demo generator). The platform gets its own login that can only read: extraction must never
# be able to change the insurer's systems.
# Not executable on purpose: the entrypoint sources non-executable scripts, which is what gives
# them its helpers; for the same reason it sets no shell options of its own.

reader_password="$(docker_sql_escape_string_literal "${SOURCE_READER_PASSWORD:?set SOURCE_READER_PASSWORD}")"

docker_process_sql --database=mysql <<SQL
CREATE USER 'mo_reader'@'%' IDENTIFIED BY '${reader_password}';
GRANT SELECT ON \`${MARIADB_DATABASE}\`.* TO 'mo_reader'@'%';
SQL
