"""Superset configuration for the middle office's dashboards (SUPERSET_CONFIG_PATH points here).

Everything secret comes from the environment; nothing is written to disk. Outside development
(MO_ENVIRONMENT / SUPERSET_ENVIRONMENT other than ``development``) Superset refuses to start without
SUPERSET_SECRET_KEY. The metadata database is SUPERSET_DATABASE_URL (PostgreSQL in the stack), else a SQLite
file under MO_HOME/superset. The cache is Redis when SUPERSET_REDIS_URL is set, else memory and files (below).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask_babel import lazy_gettext as _  # noqa: F401  (Superset's config convention)

ENVIRONMENT = os.environ.get("SUPERSET_ENVIRONMENT") or os.environ.get("MO_ENVIRONMENT") or "development"
# A fixed key for a development machine only, like the Makefile's demo PII key.
DEV_SECRET_KEY = "dev-only-superset-key-not-for-production"

SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY") or ""
if not SECRET_KEY:
    if ENVIRONMENT != "development":
        raise SystemExit(
            f"error: SUPERSET_SECRET_KEY is not set (environment {ENVIRONMENT!r}); Superset refuses to start"
        )
    SECRET_KEY = DEV_SECRET_KEY

MO_HOME = Path(os.environ.get("MO_HOME") or Path.home() / ".mo")
SUPERSET_HOME = MO_HOME / "superset"
SQLALCHEMY_DATABASE_URI = os.environ.get("SUPERSET_DATABASE_URL") or f"sqlite:///{SUPERSET_HOME / 'superset.db'}"
DATA_DIR = str(SUPERSET_HOME)

# Chinese and English UI (the user picks in the menu); Chinese by default for the insurer's analysts.
BABEL_DEFAULT_LOCALE = os.environ.get("SUPERSET_LOCALE", "zh")
LANGUAGES = {
    "zh": {"flag": "cn", "name": "简体中文"},
    "en": {"flag": "us", "name": "English"},
}

FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
    "DASHBOARD_CROSS_FILTERS": True,
    "DASHBOARD_RBAC": True,
    "ENABLE_TEMPLATE_PROCESSING": False,
    "ALERT_REPORTS": False,
    # Row-level security applies to SQL Lab too: an organisation's analyst reads only its subtree there.
    "RLS_IN_SQLLAB": True,
}
# No telemetry (6.1's navigation bar still loads its pixel: block apachesuperset.gateway.scarf.sh at the proxy).
SCARF_ANALYTICS = False

# The analytics store's embedded default is a SQLite file (PostgreSQL schema `analytics` in the stack).
PREVENT_UNSAFE_DB_CONNECTIONS = False
# SQL Lab: results only through the read-only analytics database (allow_dml is off in the bundle);
# no CSV upload into it and no "CREATE TABLE AS" from SQL Lab.
SQLLAB_CTAS_NO_LIMIT = False
ALLOWED_USER_CSV_SCHEMA_FUNC = lambda database, user: []  # noqa: E731
ROW_LIMIT = 50_000
SQL_MAX_ROW = 100_000

WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
# The UI is served on 127.0.0.1 behind no TLS proxy in development.
TALISMAN_ENABLED = ENVIRONMENT != "development"
SESSION_COOKIE_SECURE = ENVIRONMENT != "development"

_redis = os.environ.get("SUPERSET_REDIS_URL")
if _redis:
    _prefix = os.environ.get("SUPERSET_REDIS_PREFIX", "mo_superset_")

    def _cache(name: str, timeout: int) -> dict:
        return {
            "CACHE_TYPE": "RedisCache",
            "CACHE_DEFAULT_TIMEOUT": timeout,
            "CACHE_KEY_PREFIX": f"{_prefix}{name}_",
            "CACHE_REDIS_URL": _redis,
        }

    CACHE_CONFIG = _cache("cache", 300)
    DATA_CACHE_CONFIG = _cache("data", 300)
    FILTER_STATE_CACHE_CONFIG = _cache("filter_state", 86400)
    EXPLORE_FORM_DATA_CACHE_CONFIG = _cache("explore", 86400)
    RATELIMIT_STORAGE_URI = _redis
else:
    # Several gunicorn worker processes on one machine (mo.dashboards.start_superset), no server: a filter's state
    # and an explore link saved by one worker must be read by another, so those live in files under
    # MO_HOME/superset/cache; query results and metadata are cached in each worker's memory (a file write per chart
    # drawn cost more than the query it saves).
    def _files(name: str, timeout: int) -> dict:
        return {
            "CACHE_TYPE": "FileSystemCache",
            "CACHE_DEFAULT_TIMEOUT": timeout,
            "CACHE_DIR": str(SUPERSET_HOME / "cache" / name),
            "CACHE_THRESHOLD": 20_000,
        }

    CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
    DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300, "CACHE_THRESHOLD": 2000}
    FILTER_STATE_CACHE_CONFIG = _files("filter_state", 86400)
    EXPLORE_FORM_DATA_CACHE_CONFIG = _files("explore", 86400)
    RATELIMIT_STORAGE_URI = "memory://"

# Logins: five attempts per minute per address outside development.
RATELIMIT_ENABLED = ENVIRONMENT != "development"
AUTH_RATE_LIMITED = True
AUTH_RATE_LIMIT = "5 per minute" if ENVIRONMENT != "development" else "100 per minute"

# SQL Lab on the lake (database `Lake`, docs/dashboards.md): PyHive's hive:// dialect fixed for Spark's Thrift
# server, Superset's Hive engine spec reading Spark's SHOW VIEWS, no Java reflection functions, and every
# database whose allow_dml is off refusing what does not just read (CALL, SET, CACHE, USE... that Superset's own
# DML check lets through), naming the statement, before anything is sent.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import sql_lab_guard  # noqa: E402

try:
    import lake_sql_dialect  # noqa: E402
except ImportError:  # no PyHive (Superset's stock image): no Lake here, the rest works
    lake_sql_dialect = None
else:
    lake_sql_dialect.register()
FLASK_APP_MUTATOR = sql_lab_guard.patch_superset
# The event log keeps what the platform's audit copies (dashboard views, exports, chart rows) and Superset's recent
# activity, not a row per chart drawn (dashboards/event_log.py).
import event_log  # noqa: E402

EVENT_LOGGER = event_log.AuditedEventLogger()
SQL_QUERY_MUTATOR = sql_lab_guard.read_only_guard
