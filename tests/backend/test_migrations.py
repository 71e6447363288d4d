"""Alembic is the only source of the schema: upgrade on an empty database gives exactly the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from backend.models import Base
from tests.backend.conftest import create_database, drop_database, run_alembic


def test_upgrade_matches_models_and_downgrade_works() -> None:
    name, url = create_database("aicd_migr")
    try:
        run_alembic(url, "upgrade", "head")
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == []
            tables = set(inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:  # the naming convention reached the database
            uniques = {u["name"] for u in inspect(conn).get_unique_constraints("metric_points")}
            assert uniques == {"uq_metric_points_run_id_step"}
        check = run_alembic(url, "check")
        assert "No new upgrade operations detected" in check.stdout + check.stderr
        run_alembic(url, "downgrade", "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        run_alembic(url, "upgrade", "head")
        engine.dispose()
    finally:
        drop_database(name)


def test_sqlite_upgrade_head(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    run_alembic(url, "upgrade", "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    engine.dispose()
