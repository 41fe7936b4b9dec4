"""Bad configuration and unreachable sources stop the sync with one clear line, before Spark reads anything."""

from __future__ import annotations

import pytest

from mo.config import get_settings
from mo.errors import ConfigError, SourceUnavailable
from spark_jobs.extract import jdbc_source
from spark_jobs.sync import run_sync


def test_jdbc_urls_per_engine():
    maria = jdbc_source("mariadb+pymysql://mo:p%40ss@db.internal:3307/core")
    assert maria.url == "jdbc:mysql://db.internal:3307/core?permitMysqlScheme"  # never jdbc:mariadb://
    assert maria.driver == "org.mariadb.jdbc.Driver"
    assert maria.properties == {"user": "mo", "password": "p@ss"}
    assert maria.label == "mysql:db.internal:3307/core"
    assert jdbc_source("mysql://root@127.0.0.1/test").url == "jdbc:mysql://127.0.0.1:3306/test?permitMysqlScheme"
    pg = jdbc_source("postgresql+psycopg2://postgres@127.0.0.1/warehouse")
    assert (pg.url, pg.driver, pg.properties) == (
        "jdbc:postgresql://127.0.0.1:5432/warehouse",
        "org.postgresql.Driver",
        {"user": "postgres"},
    )
    lite = jdbc_source("sqlite:////data/mo/source.db")
    assert (lite.url, lite.driver, lite.label) == (
        "jdbc:sqlite:/data/mo/source.db",
        "org.sqlite.JDBC",
        "sqlite:source.db",
    )
    assert "p@ss" not in maria.label + maria.url


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown source URL scheme 'oracle'"):
        jdbc_source("oracle://scott:tiger@db/orcl")
    with pytest.raises(ConfigError, match="in-memory SQLite"):
        jdbc_source("sqlite://")


def test_unknown_scheme_in_settings_stops_the_sync(mo_home, monkeypatch):
    monkeypatch.setenv("MO_SOURCE_URL", "oracle://scott:tiger@db/orcl")
    with pytest.raises(ConfigError, match="unknown source URL scheme 'oracle'"):
        run_sync(None, get_settings(), gate=lambda *a, **k: None)


def test_unreachable_source_is_named_in_one_line(mo_home, monkeypatch):
    monkeypatch.setenv("MO_SOURCE_URL", "postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(SourceUnavailable) as caught:
        run_sync(None, get_settings(), gate=lambda *a, **k: None)  # no Spark needed to find out
    message = str(caught.value)
    assert message.startswith("source database unreachable at postgresql")
    assert "\n" not in message and "secret" not in message


def test_missing_pii_key_and_unknown_table(mo_home, monkeypatch):
    monkeypatch.delenv("MO_PII_KEY", raising=False)
    with pytest.raises(ConfigError, match="MO_PII_KEY is not set"):
        run_sync(None, get_settings(), gate=lambda *a, **k: None)
    monkeypatch.setenv("MO_PII_KEY", "test-key")
    with pytest.raises(ConfigError, match="unknown table policys"):
        run_sync(None, get_settings(), tables=["policys"], gate=lambda *a, **k: None)


def test_temporary_conf_restores_set_and_unset_values(spark):
    from spark_jobs.session import temporary_conf

    set_key, unset_key = "spark.sql.shuffle.partitions", "spark.sql.inMemoryColumnarStorage.compressed"
    before = spark.conf.get(set_key)
    spark.conf.unset(unset_key)
    with pytest.raises(RuntimeError), temporary_conf(spark, {set_key: "3", unset_key: "false"}):
        assert (spark.conf.get(set_key), spark.conf.get(unset_key)) == ("3", "false")
        raise RuntimeError("the block fails")
    assert spark.conf.get(set_key) == before
    assert spark.conf.get(unset_key, None) in (None, "true")  # back to the default, not left at "false"
