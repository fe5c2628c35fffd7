"""Benchmark databases: a named database on a real PostgreSQL + pgvector, migrated to head.

The server is ``BENCH_DATABASE_URL`` (or ``TEST_DATABASE_URL``) when set, else an embedded
server (``devtools.embedded_postgres``) kept in its own data directory, separate from the
tests' server, so benchmark data survives between runs (loading 100k vectors and building HNSW
takes minutes) and a test run never stops the server under a running benchmark.

    from bench import bench_db
    url = bench_db.ensure_database("bench_search")      # create + migrate if missing
    engine = bench_db.engine_for(url)
    with devtools.layer_env.layer_configured(url): ...  # DATABASE_URL for the handlers
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from bench.output import RESULTS_DIR as RESULTS_DIR
from devtools import embedded_postgres

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / "layers" / "shared") not in sys.path:  # `python -m bench.x` from a checkout
    sys.path.insert(0, str(REPO_ROOT / "layers" / "shared"))

from flex_shared.database_url import parse_database_url  # noqa: E402

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_server: Any = None


def _embedded_server_url() -> str:
    global _server
    if _server is None:
        version = embedded_postgres.postgres_version()
        data_dir = embedded_postgres.scratch_data_dir("bench", REPO_ROOT, version)
        _server = embedded_postgres.start(data_dir, version=version)
    return str(_server.get_uri())


def admin_url() -> str:
    """URL of the benchmark server's maintenance database."""
    return (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or _embedded_server_url()
    )


def engine_for(url: str, **kwargs: Any) -> Engine:
    """A pg8000 engine for ``url`` (same URL rules as the layer's DATABASE_URL)."""
    parsed, connect_args = parse_database_url(url)
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def database_url(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"bad benchmark database name {name!r}")
    return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)


def _exists(admin: Engine, name: str) -> bool:
    with admin.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
    return found is not None


def migrate(url: str) -> None:
    """``alembic upgrade head`` on ``url`` through a handed-over connection."""
    from alembic import command
    from alembic.config import Config

    alembic_config = Config(str(REPO_ROOT / "alembic.ini"))
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            alembic_config.attributes["connection"] = connection
            command.upgrade(alembic_config, "head")
            connection.commit()
    finally:
        engine.dispose()


def ensure_database(name: str, *, recreate: bool = False) -> str:
    """Create database ``name`` if missing (or drop and create it when ``recreate``),
    migrate it to head, and return its URL. Migrating an existing database is a no-op
    unless new revisions were added."""
    url = database_url(name)
    admin = engine_for(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        if recreate:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not _exists(admin, name):
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    migrate(url)
    return url
