"""What the schema needs from the database server, checked before a migration changes anything.

- PostgreSQL 15 or newer (what RDS and Aurora offer today; the SQL here uses nothing newer).
- pgvector 0.8 or newer: filtered and re-uploaded searches rely on its iterative index scans
  (``hnsw.iterative_scan``). RDS for PostgreSQL ships 0.8 from 15.9, 16.5 and 17.1 on.

:func:`require_supported_server` installs the extension (at the newest version the server
offers) or updates an older one in place when the server offers 0.8; otherwise it raises
:class:`UnsupportedServer` with one line naming what is installed, what is required and the fix,
before anything is created.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

MIN_POSTGRES_VERSION_NUM = 150000
MIN_PGVECTOR = (0, 8, 0)
REQUIRED_PGVECTOR = ".".join(map(str, MIN_PGVECTOR))
_INSUFFICIENT_PRIVILEGE = "42501"


class UnsupportedServer(RuntimeError):
    """The server lacks a version this schema needs; the message says what to do."""


def _version(raw: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", raw)[:3])


def _sqlstate(exc: DBAPIError) -> str | None:
    details = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return str(details.get("C")) if isinstance(details, dict) else None


def require_supported_server(connection: Connection) -> str:
    """Check PostgreSQL, then install or update pgvector to >= 0.8; return its version."""
    version_num = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    if version_num < MIN_POSTGRES_VERSION_NUM:
        shown = connection.execute(text("SHOW server_version")).scalar_one()
        raise UnsupportedServer(
            f"PostgreSQL 15 or newer is required, this server runs {shown}:"
            " upgrade the database engine version (RDS: modify the instance's engine version)"
        )

    installed = connection.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar_one_or_none()
    offered = [
        str(version)
        for version in connection.execute(
            text("SELECT version FROM pg_available_extension_versions WHERE name = 'vector'")
        ).scalars()
    ]
    newest = max(offered, key=_version, default=None)
    if newest is None or _version(newest) < MIN_PGVECTOR:
        raise UnsupportedServer(
            f"pgvector {REQUIRED_PGVECTOR} or newer is required, installed:"
            f" {installed or 'none'}, the server offers at most {newest or 'none'}:"
            " move to a database engine version that ships pgvector 0.8 (RDS for PostgreSQL"
            " 15.9, 16.5, 17.1 or later), then run ALTER EXTENSION vector UPDATE"
        )
    if installed is not None and _version(installed) >= MIN_PGVECTOR:
        return str(installed)
    if not re.fullmatch(r"[0-9][0-9a-z.]*", newest):  # a catalog value, spliced into DDL
        raise UnsupportedServer(f"pgvector reports an unexpected version {newest!r}")
    try:
        if installed is None:
            # The vector type must exist before the first table that uses it.
            connection.execute(text(f"CREATE EXTENSION IF NOT EXISTS vector VERSION '{newest}'"))
        else:
            connection.execute(text(f"ALTER EXTENSION vector UPDATE TO '{newest}'"))
    except DBAPIError as exc:
        if _sqlstate(exc) != _INSUFFICIENT_PRIVILEGE:
            raise
        verb = "CREATE EXTENSION vector" if installed is None else "ALTER EXTENSION vector UPDATE"
        raise UnsupportedServer(
            f"pgvector {REQUIRED_PGVECTOR} or newer is required, installed:"
            f" {installed or 'none'}, the server offers {newest}, but this database user may"
            f" not change the extension: as the master user run {verb}"
        ) from None
    return newest
