"""The embedded PostgreSQL (pgserver: PostgreSQL 16 + pgvector) for local runs: data kept in
a project directory between runs, database ``flex`` created and migrated to head."""

from __future__ import annotations

import atexit
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_SOCKET_NAME = ".s.PGSQL.5432"


def usable_data_dir(preferred: Path) -> Path:
    """``preferred``, or a short directory under the temp dir when the server's unix socket
    inside it would exceed the socket path limit (deep checkouts)."""
    preferred = preferred.resolve()
    if len(str(preferred / _SOCKET_NAME).encode()) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"flex-local-pg-{digest}"


@dataclass
class EmbeddedPostgres:
    """A pgserver instance; stopped on :meth:`stop` only if this process started it."""

    data_dir: Path
    started_here: bool
    _server: Any

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedPostgres:
        import pgserver
        from pgserver.utils import PostmasterInfo

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
        already_running = info is not None and info.is_running()
        server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        return cls(data_dir=data_dir, started_here=not already_running, _server=server)

    def admin_url(self) -> str:
        return str(self._server.get_uri())

    def pid(self) -> int | None:
        return int(self._server.get_pid()) if self._server.get_pid() else None

    def stop(self) -> None:
        """Stop the server if this process started it (another process may be using it)."""
        if not self.started_here:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined,unused-ignore]

        info = self._server.get_postmaster_info()
        if info.process.is_running():
            pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user
            )
        # Stopped here: pgserver's own exit hook would try again and complain.
        atexit.unregister(self._server._cleanup)
        self._server.global_process_id_list.get_and_remove(os.getpid())
        self.started_here = False


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server if missing; return its URL."""
    from sqlalchemy import create_engine, text

    from flex_shared.db import parse_database_url

    url, connect_args = parse_database_url(admin_url)
    engine = create_engine(url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
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
