"""Migrations that change existing data, run on a real PostgreSQL database created at the revision before them:
64-bit ids (issue 11 #7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text

from backend.models import Base
from tests.backend.conftest import create_database, drop_database, run_alembic

BIG = 2**31 + 5


@pytest.fixture
def pg_db() -> Iterator[str]:
    name, url = create_database("aicd_upgr")
    try:
        yield url
    finally:
        drop_database(name)


def test_ids_become_64_bit_on_an_existing_postgres_database(pg_db: str) -> None:
    run_alembic(pg_db, "upgrade", "0003")
    engine = create_engine(pg_db)
    try:
        with engine.begin() as conn:  # rows written before the upgrade
            ds = conn.execute(
                text(
                    "INSERT INTO datasets (name, description, source, n_examples, created_at) "
                    "VALUES ('old', '', 'x', 1, now()) RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO examples (dataset_id, ext_id, position, question, answer) "
                    "VALUES (:d, 'e1', 0, 'q', '1')"
                ),
                {"d": ds},
            )
            with pytest.raises(Exception, match="out of range"):  # what the issue saw
                with conn.begin_nested():
                    conn.execute(
                        text(
                            f"INSERT INTO datasets (id, name, description, source, n_examples, "
                            f"created_at) VALUES ({BIG}, 'big', '', 'x', 0, now())"
                        )
                    )
        run_alembic(pg_db, "upgrade", "head")
        with engine.begin() as conn:
            insp = inspect(conn)
            for table in Base.metadata.sorted_tables:  # every id and every reference to one
                types = {c["name"]: str(c["type"]) for c in insp.get_columns(table.name)}
                id_cols = ["id", *(fk.parent.name for fk in table.foreign_keys)]
                assert {c: types[c] for c in id_cols} == dict.fromkeys(id_cols, "BIGINT"), table.name
            conn.execute(
                text(
                    f"INSERT INTO datasets (id, name, description, source, n_examples, created_at) "
                    f"VALUES ({BIG}, 'big', '', 'x', 0, now())"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO examples (dataset_id, ext_id, position, question, answer) "
                    "VALUES (:d, 'e1', 0, 'q', '1')"
                ),
                {"d": BIG},
            )
            # the sequences too: the next generated id may pass 2^31-1
            conn.execute(text(f"SELECT setval('examples_id_seq', {BIG})"))
            new_id = conn.execute(
                text(
                    "INSERT INTO examples (dataset_id, ext_id, position, question, answer) "
                    "VALUES (:d, 'e2', 1, 'q', '2') RETURNING id"
                ),
                {"d": ds},
            ).scalar_one()
            assert new_id == BIG + 1
            assert (
                conn.execute(text("SELECT count(*) FROM examples WHERE dataset_id = :d"), {"d": ds}).scalar()
                == 2
            )
    finally:
        engine.dispose()
