"""The migrations need PostgreSQL >= 15 and pgvector >= 0.8, and check before changing anything.

A real pgvector 0.6.2 server is the unmaintained ``pgserver`` 0.1.4 (PostgreSQL 16.2), kept in
its own virtualenv (``.venv-pgvector06``, created by ``make test``) so the project's own
environment never has it. Its PostgreSQL 16 data directory opens with the embedded server's
PostgreSQL 16 binaries, which carry pgvector 0.8.5: that is a database whose server now offers
0.8 while the extension installed in it is still 0.6.2, as after an RDS engine upgrade.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from devtools import embedded_postgres
from devtools.layer_env import layer_configured
from flex_shared.database_url import parse_database_url
from migrations.server_requirements import UnsupportedServer
from tests.conftest import REPO_ROOT

PGVECTOR06_PYTHON = REPO_ROOT / ".venv-pgvector06" / "bin" / "python"
_SYSTEM_USER = "pgserver" if os.geteuid() == 0 else None

_START = """
import sys, pgserver
print(pgserver.get_server(sys.argv[1], cleanup_mode=None).get_uri())
"""
_STOP = """
import sys
from pgserver._commands import pg_ctl
pg_ctl(["-w", "-m", "fast", "stop"], pgdata=sys.argv[1], user=sys.argv[2] or None)
"""


def _old_server(*arguments: str, script: str) -> str:
    if not PGVECTOR06_PYTHON.exists():
        pytest.fail("the pgvector 0.6 server is missing: `make test` creates .venv-pgvector06")
    done = subprocess.run(
        [str(PGVECTOR06_PYTHON), "-c", script, *arguments],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture
def old_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A running PostgreSQL 16.2 + pgvector 0.6.2 server; stopped afterwards."""
    data_dir = tmp_path / "pg06"
    yield data_dir
    if (data_dir / "postmaster.pid").exists():
        _old_server(str(data_dir), _SYSTEM_USER or "", script=_STOP)


def _engine(url: str) -> Engine:
    parsed, connect_args = parse_database_url(url)
    return create_engine(parsed, connect_args=connect_args, isolation_level="AUTOCOMMIT")


def _upgrade(url: str, revision: str) -> None:
    with layer_configured(url):
        command.upgrade(Config(str(REPO_ROOT / "alembic.ini")), revision)


def _state(url: str) -> dict[str, object]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            ).scalars()
            version = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar_one_or_none()
            names = list(tables)
            revision = (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                if "alembic_version" in names
                else None
            )
    finally:
        engine.dispose()
    return {"tables": names, "vector": version, "revision": revision}


def test_a_pgvector_06_server_is_refused_before_anything_is_created(old_data_dir: Path) -> None:
    # Given an empty database on a server whose pgvector is 0.6.2
    url = _old_server(str(old_data_dir), script=_START)
    assert _state(url) == {"tables": [], "vector": None, "revision": None}

    # When migrating to head
    with pytest.raises(UnsupportedServer) as refused:
        _upgrade(url, "head")

    # Then one line names the installed and offered versions, the requirement and the fix
    message = str(refused.value)
    assert "\n" not in message
    assert "pgvector 0.8.0 or newer is required" in message
    assert "installed: none, the server offers at most 0.6.2" in message
    assert "ALTER EXTENSION vector UPDATE" in message
    # and nothing was created: no extension, no table, no revision
    assert _state(url) == {"tables": [], "vector": None, "revision": None}


def test_an_installed_06_extension_is_updated_once_the_server_offers_08(
    old_data_dir: Path,
) -> None:
    # Given a database at revision 0001 whose vector extension was installed at 0.6.2
    url = _old_server(str(old_data_dir), script=_START)
    engine = _engine(url)
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION vector"))
        connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        connection.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        connection.execute(text("CREATE TABLE kept (id int, embedding vector(3))"))
        connection.execute(text("INSERT INTO kept VALUES (1, '[1,0,0]')"))
    engine.dispose()

    # When that server (still only 0.6.2) is asked for 0002, it refuses and changes nothing
    with pytest.raises(UnsupportedServer, match=r"installed: 0\.6\.2, the server offers at most"):
        _upgrade(url, "0002")
    assert _state(url)["revision"] == "0001"
    assert _state(url)["vector"] == "0.6.2"

    # When the same data directory runs on PostgreSQL 16 binaries that ship pgvector 0.8.5
    _old_server(str(old_data_dir), _SYSTEM_USER or "", script=_STOP)
    server = embedded_postgres.start(old_data_dir, version=16)
    try:
        url = str(server.get_uri())
        _upgrade(url, "0002")

        # Then the extension was updated in place and the data is still there
        state = _state(url)
        assert state["revision"] == "0002"
        assert state["vector"] == "0.8.5"
        engine = _engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT embedding::text FROM kept")).scalar_one() == (
                "[1,0,0]"
            )
        engine.dispose()
    finally:
        server.stop()


def test_the_test_server_has_what_production_runs(database_url: str) -> None:
    engine = _engine(database_url)
    with engine.connect() as connection:
        version_num = int(connection.execute(text("SHOW server_version_num")).scalar_one())
        vector = connection.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
    engine.dispose()
    assert version_num >= 150000
    assert tuple(int(part) for part in vector.split(".")) >= (0, 8, 0)
