"""Alembic: downgrade to base and back up to head, and no drift between models and migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from devtools.layer_env import layer_configured as configured_database
from flex_shared import db
from flex_shared.models import Base
from tests.conftest import fresh_database, run_alembic


def public_objects() -> tuple[set[str], set[str]]:
    with db.get_engine().connect() as connection:
        tables = set(
            connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        types = set(
            connection.execute(
                text("SELECT typname FROM pg_type WHERE typname = 'interview_status'")
            ).scalars()
        )
    return tables, types


def test_downgrade_base_then_upgrade_head_round_trips() -> None:
    seed_tables = {"jobs", "job_chunks", "interview_sessions", "interview_results", "questions"}
    with fresh_database() as url, configured_database(url):
        run_alembic("upgrade", "head")
        tables, _ = public_objects()
        assert seed_tables <= tables

        run_alembic("downgrade", "base")
        tables, types = public_objects()
        assert tables == {"alembic_version"}
        assert types == set()

        run_alembic("upgrade", "head")
        tables, types = public_objects()
        assert seed_tables <= tables
        assert types == {"interview_status"}


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    with db.get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_keyword_search_migration_backfills_existing_chunks() -> None:
    # Given chunks written before the keyword search migration
    with fresh_database() as url, configured_database(url):
        run_alembic("upgrade", "head")
        run_alembic("downgrade", "0002")
        vector = "[" + ",".join(["0"] * 1023 + ["1"]) + "]"
        with db.get_engine().begin() as connection:
            job_id = connection.execute(
                text(
                    "INSERT INTO jobs (company_id, title, description)"
                    " VALUES (1, 'SRE', 'x') RETURNING id"
                )
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO job_chunks (job_id, chunk_index, chunk_text, embedding)"
                    " VALUES (:job, 0, :text, CAST(:v AS vector))"
                ),
                {"job": job_id, "text": "Engineers running 쿠버네티스를 clusters", "v": vector},
            )

        # When the migration runs
        run_alembic("upgrade", "head")

        # Then those chunks are found by keyword, Korean and inflected English alike
        with db.get_engine().connect() as connection:
            for query in ("쿠버네티스", "engineer run cluster"):
                found = connection.execute(
                    text(
                        "SELECT count(*) FROM job_chunks"
                        " WHERE search_vector @@ job_chunk_search_query(:q, true)"
                    ),
                    {"q": query},
                ).scalar_one()
                assert found == 1, query
