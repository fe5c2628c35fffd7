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
