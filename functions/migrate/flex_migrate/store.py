"""The SQL the migrations need besides Alembic's own: the lock that makes concurrent runs queue,
and the revision the database is at."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATION_LOCK_KEY = 0x666C6578  # "flex": any constant shared by every migration runner


def lock_migrations(connection: Connection) -> None:
    """Wait for, then hold until the transaction ends, the lock every migration run takes."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def current_revision(connection: Connection) -> str | None:
    """The revision in ``alembic_version``; None for a database never migrated."""
    from alembic.runtime.migration import MigrationContext  # the migrate function only

    return MigrationContext.configure(connection).get_current_revision()
