"""Test fixtures: a real PostgreSQL + pgvector (embedded, see ``devtools.embedded_postgres``, or
``TEST_DATABASE_URL``),
a fresh migrated database per test session, and a clean slate after every test that used it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

# Helper modules whose asserts should explain themselves like a test's.
pytest.register_assert_rewrite("tests.interview_aggregates")

REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = REPO_ROOT / "events"

# Tests never reach AWS or a developer's own database: fake credentials, a fixed region, and a
# placeholder DATABASE_URL (never connected to) until the database fixture provides the real one.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "DB_HOST", "DB_SECRET_ARN", "DB_IAM_AUTH"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "DATABASE_URL": "postgresql://flex@127.0.0.1:1/not_connected_until_a_test_needs_it",
        "EMBEDDING_PROVIDER": "local",
        "POWERTOOLS_SERVICE_NAME": "flex-tests",
        "POWERTOOLS_METRICS_NAMESPACE": "FlexTests",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from devtools import embedded_postgres  # noqa: E402
from devtools import functions as devtools_functions  # noqa: E402
from devtools.layer_env import layer_configured as configured_database  # noqa: E402
from flex_shared import db  # noqa: E402
from flex_shared.database_url import parse_database_url  # noqa: E402

ALL_TABLES = ("interview_results", "interview_sessions", "questions", "job_chunks", "jobs")


def _embedded_server_url() -> str:
    """Start (or join) the embedded PostgreSQL + pgvector kept in a temp dir per checkout."""
    version = embedded_postgres.postgres_version()
    data_dir = embedded_postgres.scratch_data_dir("tests", REPO_ROOT, version)
    return str(embedded_postgres.start(data_dir, version=version).get_uri())


def _admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or _embedded_server_url()


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database on the test server; yield its URL; drop it afterwards."""
    admin_raw = _admin_url()
    admin_url, connect_args = parse_database_url(admin_raw)
    name = f"flex_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, connect_args=connect_args, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_raw).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the database, so ``-m database`` selects them."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on the test server, migrated to head; dropped at the end."""
    with fresh_database() as url, configured_database(url):
        run_alembic("upgrade", "head")
        yield url


def run_alembic(action: str, revision: str) -> None:
    """Run an Alembic command against the configured database, as the CLI would."""
    from alembic import command
    from alembic.config import Config

    alembic_config = Config(str(REPO_ROOT / "alembic.ini"))
    getattr(command, action)(alembic_config, revision)


def truncate_all(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(ALL_TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    """The layer's engine on the test database; every table is emptied after the test."""
    engine = db.get_engine()
    try:
        yield engine
    finally:
        truncate_all(engine)


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    with Session(db_engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def load_function() -> Callable[[str], ModuleType]:
    """Load ``functions/<name>/app.py`` by file path, as Lambda does, under a unique name."""
    return devtools_functions.load_function
