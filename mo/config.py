"""Settings for every job, read from the environment (prefix ``MO_``).

Nothing is configured on a fresh machine: the embedded defaults put a SQLite source, a JDBC
(SQLite) Iceberg catalog with a local warehouse, local Spark and a local Kafka-protocol broker
under ``MO_HOME``. Pointing the same code at servers and a Spark cluster is configuration only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mo.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = REPO_ROOT / "schemas"

SOURCE_SCHEMES = ("sqlite", "mysql", "mariadb", "postgresql")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MO_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".mo")
    env: str = "development"

    # Source OLTP database (SQLAlchemy URL). Default: SQLite file under home.
    source_url: str | None = None

    # Iceberg catalog. Default: JDBC catalog on SQLite + local warehouse under home.
    catalog_name: str = "lake"
    catalog_uri: str | None = None  # jdbc:sqlite:..., jdbc:postgresql://..., or thrift://... (hive)
    catalog_type: str = "jdbc"  # jdbc | hadoop | hive | rest
    catalog_user: str | None = None
    catalog_password: str | None = None
    warehouse: str | None = None  # file:///..., s3a://bucket/path

    # Spark
    spark_master: str = "local[2]"
    spark_driver_memory: str = "3g"
    spark_shuffle_partitions: int = 8
    spark_extra_conf: str = ""  # "k=v,k=v" added verbatim (object-store credentials, executor sizes)

    # Kafka. Default: embedded Tansu broker started by `mo broker start` on this port.
    kafka_bootstrap: str | None = None
    embedded_kafka_port: int = 19092
    kafka_topic_prefix: str = "mo"

    # Sync behaviour
    sync_lookback_minutes: int = 24 * 60  # re-read window below the watermark for late-arriving rows
    jdbc_partition_rows: int = 250_000  # rows per JDBC read partition for big tables
    jdbc_fetch_size: int = 10_000
    # The gate validates only what a sync changed while each table passed whole within this many hours
    # (0: always whole)
    gate_full_interval_hours: int = 24
    # A running sync holds a lease in ops.sync_leases, renewed as it goes; a run whose lease expired without
    # an end record is dead: the next run (or maintenance) removes its audit branches and records it abandoned.
    # Must exceed the longest single step of one table (extracting the largest table, its MERGE, the gate).
    sync_lease_minutes: float = Field(default=60.0, gt=0)

    # Content reconciliation (`mo reconcile`, daily in source_sync): the id space is cut into this many
    # ranges per level, a differing range is cut again until it holds at most leaf_rows rows, then its rows
    # are compared one by one
    reconcile_parts: int = Field(default=64, ge=2)
    reconcile_leaf_rows: int = Field(default=2000, ge=1)
    reconcile_interval_hours: float = Field(default=24.0, ge=0)

    # Lake maintenance (compaction, snapshot expiry): at most once per interval, at the end of a sync
    maintenance_interval_hours: int = 24
    snapshot_retention_hours: int = 7 * 24  # how far back time travel on lake tables reaches

    # Health (`mo status --check`): silver older than this is stale (source_sync runs hourly), and more
    # events than this waiting on the broker for the ingest (events_ingest runs every 10 minutes) is a lag
    sync_max_age_hours: float = Field(default=3.0, gt=0)
    events_max_waiting: int = Field(default=100_000, ge=0)
    # ... and the API's business events waiting in the outbox longer than this (the relay or the broker is down)
    outbox_max_lag_minutes: float = Field(default=15.0, gt=0)

    # Serving store (published profiles, segments). Default: SQLite file and embedded Redis under home.
    serving_db_url: str | None = None  # postgresql://... for a server (schema `serving`)
    redis_url: str | None = None  # redis://host:6379/0 for a server
    redis_prefix: str = Field(default="mo", pattern=r"^[A-Za-z0-9_.-]+$")  # key prefix, for a shared Redis
    serving_columnar: bool = True  # also write a DuckDB copy of each refresh for the fast segment preview

    # Tokenisation key for PII (ID numbers, phones, names). Secret: environment only.
    pii_key: str | None = None

    # Channel providers (mo.channels). Base URLs of the real providers; the dev defaults point every channel at
    # the provider sandbox (`mo channels sandbox start`) on channel_sandbox_port, with the sandbox's credentials.
    # Secrets come from the environment only: outside development the sandbox credentials are refused.
    channel_sandbox_port: int = 18980
    # The sandbox's bind address: loopback by default; 0.0.0.0 where other containers reach it (docker-compose.yml)
    channel_sandbox_host: str = "127.0.0.1"
    channel_wechat_base_url: str | None = None  # https://api.weixin.qq.com
    channel_wechat_appid: str = "wx-sandbox-appid"
    channel_wechat_secret: str = "wx-sandbox-secret"
    channel_wechat_token: str = "wx-sandbox-token"  # the Official Account server token: signs its event pushes
    channel_sms_base_url: str | None = None  # https://dysmsapi.aliyuncs.com
    channel_sms_access_key_id: str = "sandbox-access-key"
    channel_sms_access_key_secret: str = "sandbox-access-secret"
    channel_push_base_url: str | None = None  # https://api.jpush.cn
    channel_push_app_key: str = "sandbox-app-key"
    channel_push_master_secret: str = "sandbox-master-secret"
    channel_coupon_base_url: str | None = None  # https://api.mch.weixin.qq.com
    channel_coupon_mchid: str = "1900000109"
    channel_coupon_api_key: str = "sandbox-coupon-api-v3-key"
    channel_coupon_appid: str = "wx-sandbox-appid"
    # Receipts: where providers post them (the serving API's /v1/webhooks/{provider}) and the shared secret
    channel_webhook_url: str | None = None
    channel_webhook_secret: str = "sandbox-webhook-secret"
    # Channel workers: attempts before the dead letter, exponential backoff, per-provider rate (in-process
    # token bucket per worker process: with N workers of a channel, give each 1/N of the provider's limit)
    channel_max_attempts: int = Field(default=5, ge=1)
    channel_backoff_s: float = Field(default=0.5, gt=0)
    channel_backoff_max_s: float = Field(default=30.0, gt=0)
    channel_rate_per_s: float = Field(default=50.0, gt=0)
    channel_timeout_s: float = Field(default=5.0, gt=0)
    # Tracked links: signed redirect tokens to the serving API's /v1/t/{token}
    channel_link_base_url: str = "http://127.0.0.1:8000"
    channel_link_secret: str = "sandbox-link-secret"
    channel_link_ttl_days: float = Field(default=30.0, gt=0)
    channel_link_allowed_hosts: str = "www.example-insurer.cn,m.example-insurer.cn"  # comma-separated
    # The send decision (mo/campaigns/decision.py): marketing caps over rolling windows counted from the contact
    # ledger (all channels, and per channel over 7 x 24 h), the send window in the customer's local time, and
    # the time zone of a customer who chose none.
    contact_cap_7d: int = Field(default=2, ge=0)
    contact_cap_30d: int = Field(default=4, ge=0)
    contact_cap_channel_7d: int = Field(default=2, ge=0)
    contact_window_start: str = Field(default="09:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    contact_window_end: str = Field(default="21:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    contact_time_zone: str = "Asia/Shanghai"
    # Key of the holdout hash (HMAC); falls back to the PII key. Secret: environment only.
    holdout_key: str | None = None
    # SQL Lab on the lake (mo.lake_sql): Spark's Thrift server in local mode on 127.0.0.1:lake_sql_port over the
    # jobs' catalog, started by `make dashboards` when a lake exists (lake_sql_server=false skips it: a JVM, about
    # lake_sql_memory of heap). Production: lake_sql_url, the cluster's Thrift server or Trino (hive://, trino://).
    lake_sql_server: bool = True
    lake_sql_port: int = Field(default=10015, ge=1, le=65535)
    lake_sql_memory: str = Field(default="1g", pattern=r"^[0-9]+[kmgKMG]$")
    lake_sql_url: str | None = None
    # Superset as `make dashboards` and `make demo` serve it (mo.dashboards.start_superset): gunicorn worker
    # processes and threads per worker. A dashboard's chart requests run in parallel only across processes (each
    # costs Superset tens of milliseconds of Python under one GIL); about 250 MB of memory per process.
    dashboards_workers: int = Field(default=1, ge=1, le=16)
    dashboards_threads: int = Field(default=8, ge=1, le=64)

    @property
    def resolved_source_url(self) -> str:
        url = self.source_url or f"sqlite:///{self.home / 'source.db'}"
        scheme = urlsplit(url).scheme.split("+")[0]
        if scheme not in SOURCE_SCHEMES:
            raise ConfigError(
                f"unknown source URL scheme '{scheme}' in MO_SOURCE_URL; expected one of {', '.join(SOURCE_SCHEMES)}"
            )
        return url

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"jdbc:sqlite:{self.lake_dir / 'catalog.db'}"

    @property
    def resolved_warehouse(self) -> str:
        return self.warehouse or f"file://{self.lake_dir / 'warehouse'}"

    @property
    def resolved_kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_kafka_port}"

    @property
    def uses_embedded_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    def channel_base_url(self, provider: str) -> str:
        """The provider's base URL: its setting, else the local provider sandbox."""
        url = getattr(self, f"channel_{provider}_base_url")
        return (url or self.channel_sandbox_url).rstrip("/")

    @property
    def channel_sandbox_url(self) -> str:
        """Where this machine reaches the local sandbox: its bind host, or loopback when it binds every address."""
        host = self.channel_sandbox_host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.channel_sandbox_port}"

    def require_channel_secrets(self) -> None:
        """Outside development, the sandbox's well-known credentials are refused (secrets: environment only)."""
        if self.env == "development":
            return
        defaults = Settings.model_fields
        same = [
            f"MO_{name.upper()}"
            for name in (
                "channel_wechat_secret",
                "channel_wechat_token",
                "channel_sms_access_key_secret",
                "channel_push_master_secret",
                "channel_coupon_api_key",
                "channel_webhook_secret",
                "channel_link_secret",
            )
            if getattr(self, name) == defaults[name].default
        ]
        if same:
            raise ConfigError(f"{', '.join(same)} still the sandbox default; set the real secrets in the environment")

    def require_pii_key(self) -> bytes:
        if not self.pii_key:
            raise ConfigError("MO_PII_KEY is not set: the PII tokenisation key must come from the environment")
        if self.env == "production" and len(self.pii_key) < 32:
            raise ConfigError("MO_PII_KEY is shorter than 32 characters; production needs a strong key")
        return self.pii_key.encode()

    @field_validator("contact_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name such as Asia/Shanghai)") from None
        return value

    def require_holdout_key(self) -> bytes:
        """The key holdout buckets are hashed with: MO_HOLDOUT_KEY, else the PII key. Changing it reshuffles only
        customers not yet assigned (assignments are stored, never recomputed)."""
        if self.holdout_key:
            return self.holdout_key.encode()
        return self.require_pii_key()


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests and the CLI change the environment)."""
    try:
        settings = Settings()
    except ValidationError as exc:  # one line naming each bad variable, not a traceback
        bad = "; ".join(f"MO_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid setting: {bad}") from None
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings
