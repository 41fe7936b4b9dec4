"""The same Alembic migrations build the source schema on SQLite, MariaDB and PostgreSQL."""

import pytest
from sqlalchemy import inspect

from mo.contracts import load_source_contracts
from mo.errors import SourceUnavailable
from mo.oltp.db import make_engine, migrate


def _assert_schema(engine):
    inspector = inspect(engine)
    for name, contract in load_source_contracts().items():
        columns = [c["name"] for c in inspector.get_columns(name)]
        assert columns == contract.column_names, name
        indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(name)}
        assert ("updated_at",) in indexed, f"{name} needs an index on its watermark"


def test_migrations_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'src.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    _assert_schema(engine)


@pytest.mark.mariadb
def test_migrations_on_mariadb(mariadb_url):
    engine = make_engine(mariadb_url)
    migrate(engine)
    _assert_schema(engine)
    engine.dispose()


@pytest.mark.postgres
def test_migrations_on_postgres(postgres_url):
    engine = make_engine(postgres_url)
    migrate(engine)
    _assert_schema(engine)
    engine.dispose()


def test_unreachable_source_names_the_problem():
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(SourceUnavailable, match="source database unreachable at postgresql"):
        migrate(engine)


def test_models_and_migrations_do_not_drift(tmp_path):
    """Autogenerate against a migrated database finds nothing to do: every model change has its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mo.oltp.models import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'src.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
