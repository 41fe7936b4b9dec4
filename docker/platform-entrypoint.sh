#!/bin/sh
# Entry point of the platform image. The Airflow API server reads its admin password from a file
# (SimpleAuthManager); the password itself only ever arrives through the environment, so write the
# file here, readable by this user alone, and drop the variable before starting the process.
set -eu

if [ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]; then
    passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW_ADMIN_PASSWORD needs AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
    umask 077
    python - "$passwords_file" <<'PY'
import json, os, sys
with open(sys.argv[1], "w") as out:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
PY
    unset AIRFLOW_ADMIN_PASSWORD
fi

exec "$@"
