"""The embedded PostgreSQL for local runs (``devtools.embedded_postgres``: PostgreSQL 18 +
pgvector 0.8): the server's data directory kept in the project between runs, database ``flex``
created (``make run``: created afresh, see README "Local state") and migrated to head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from devtools import embedded_postgres
from devtools.embedded_postgres import usable_data_dir as usable_data_dir


@dataclass
class EmbeddedPostgres:
    """An embedded server; stopped on :meth:`stop` only if this process started it."""

    data_dir: Path
    started_here: bool
    _server: Any

    @classmethod
    def start(cls, data_dir: Path, log: Callable[[str], None] = print) -> EmbeddedPostgres:
        version = embedded_postgres.postgres_version()
        embedded_postgres.set_aside_other_major(data_dir, version, log)
        already_running = embedded_postgres.is_running(data_dir)
        server = embedded_postgres.start(data_dir, version=version)
        return cls(data_dir=data_dir, started_here=not already_running, _server=server)

    def admin_url(self) -> str:
        return str(self._server.get_uri())

    def pid(self) -> int | None:
        pid = self._server.get_pid()
        return int(pid) if pid else None

    def stop(self) -> None:
        """Stop the server if this process started it (another process may be using it)."""
        if not self.started_here:
            return
        self._server.stop()
        self.started_here = False


def ensure_database(admin_url: str, name: str, *, fresh: bool = False) -> str:
    """Create database ``name`` on the server if missing (``fresh``: drop it first, whoever is
    connected); return its URL."""
    from sqlalchemy import create_engine, text

    from flex_shared.database_url import parse_database_url

    url, connect_args = parse_database_url(admin_url)
    engine = create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if fresh:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    # Same URL, other database; the query (libpq-style ?host=/socket/dir) is kept as written.
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def migrate_to_head(repo_root: Path, database_url: str) -> str | None:
    """``alembic upgrade head`` on ``database_url``; returns the revision reached."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    from devtools.layer_env import layer_configured
    from flex_shared import db

    with layer_configured(database_url):
        command.upgrade(Config(str(repo_root / "alembic.ini")), "head")
        with db.get_engine().connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
