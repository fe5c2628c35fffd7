"""The migrate Lambda: direct invokes (upgrade/current/downgrade) and the CloudFormation custom
resource, which must always answer, against a real database and a local HTTP server standing in
for CloudFormation's presigned response URL."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from devtools.lambda_context import FakeLambdaContext as LambdaContextStandIn
from devtools.layer_env import layer_configured as configured_database
from flex_shared import config, db
from tests.conftest import EVENTS_DIR, REPO_ROOT, fresh_database

UNREACHABLE_DATABASE = "postgresql://flex@127.0.0.1:1/nowhere?connect_timeout=2"
SEED_TABLES = {"jobs", "job_chunks", "interview_sessions", "interview_results", "questions"}


def migrate_context(remaining_ms: int = 900_000) -> LambdaContextStandIn:
    return LambdaContextStandIn(function_name="flex-dev-migrate", remaining_ms=remaining_ms)


@dataclass
class CapturedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class CloudFormationStandIn:
    """Records every request made to the response URL (CloudFormation's presigned S3 URL)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[CapturedRequest] = queue.Queue()
        captured = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                captured.put(
                    CapturedRequest(
                        "PUT",
                        self.path,
                        {key.lower(): value for key, value in self.headers.items()},
                        json.loads(self.rfile.read(length)),
                    )
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def response_url_for(self, event: dict[str, Any]) -> str:
        """The event's presigned URL, re-pointed (path and query kept) at this server."""
        original = urlsplit(event["ResponseURL"])
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{original.path}?{original.query}"

    def next_answer(self, timeout: float = 10.0) -> CapturedRequest:
        return self.requests.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationStandIn]:
    stand_in = CloudFormationStandIn()
    try:
        yield stand_in
    finally:
        stand_in.close()


@pytest.fixture
def migrate(load_function: Callable[[str], ModuleType]) -> ModuleType:
    load_function("migrate")
    return importlib.import_module("flex_migrate.handler")


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database with nothing in it (not even alembic_version), configured for the layer."""
    with fresh_database() as url, configured_database(url):
        yield url


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return event


def cfn_event(
    cloudformation: CloudFormationStandIn, request_type: str = "Create"
) -> dict[str, Any]:
    event = load_event("migrate_cfn_create.json")
    event["ResponseURL"] = cloudformation.response_url_for(event)
    event["RequestType"] = request_type
    if request_type != "Create":
        event["PhysicalResourceId"] = "flex-database-migrations"
    return event


def public_tables() -> set[str]:
    with db.get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        return set(rows)


def migrate_module(name: str) -> ModuleType:
    """A module of the function's package, e.g. ``service`` (once ``load_function`` ran)."""
    return importlib.import_module(f"flex_migrate.{name}")


def head_revision(migrate: ModuleType) -> str:
    from alembic.script import ScriptDirectory

    config = migrate_module("service")._alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return str(head)


# ------------------------------------------------------------------------- direct invokes


def test_upgrade_event_migrates_an_empty_database_and_current_reports_it(
    migrate: ModuleType, empty_database: str
) -> None:
    head = head_revision(migrate)

    result = migrate.lambda_handler(load_event("migrate_upgrade.json"), migrate_context())

    assert result == {"action": "upgrade", "previous": None, "current": head, "head": head}
    assert public_tables() >= SEED_TABLES
    current = migrate.lambda_handler(load_event("migrate_current.json"), migrate_context())
    assert current == {"action": "current", "current": head, "head": head}


def test_upgrade_again_is_a_no_op_and_downgrade_needs_an_explicit_revision(
    migrate: ModuleType, empty_database: str
) -> None:
    head = head_revision(migrate)
    migrate.lambda_handler(load_event("migrate_upgrade.json"), migrate_context())

    again = migrate.lambda_handler(load_event("migrate_upgrade.json"), migrate_context())
    assert again["previous"] == head
    assert again["current"] == head

    with pytest.raises(migrate_module("service").MigrationRequestError, match="explicit revision"):
        migrate.lambda_handler({"action": "downgrade"}, migrate_context())
    with pytest.raises(migrate_module("service").MigrationRequestError, match="not 'drop'"):
        migrate.lambda_handler({"action": "drop"}, migrate_context())
    assert public_tables() >= SEED_TABLES  # rejected requests changed nothing

    down = migrate.lambda_handler({"action": "downgrade", "revision": "base"}, migrate_context())
    assert down["current"] is None
    assert public_tables() == {"alembic_version"}


def test_direct_invoke_fails_loudly_when_the_database_is_unreachable(
    migrate: ModuleType,
) -> None:
    # A deploy step (`sam remote invoke`, `aws lambda invoke`) must see a function error.
    with configured_database(UNREACHABLE_DATABASE), pytest.raises(Exception, match=r"127\.0\.0\.1"):
        migrate.lambda_handler(load_event("migrate_upgrade.json"), migrate_context())


def test_migrations_packaged_next_to_app_py_are_used_first(
    tmp_path: Path, database_url: str
) -> None:
    # The layout `sam build` produces with functions/migrate/Makefile: app.py + flex_migrate/ +
    # migrations/, imported from there (its directory first on sys.path, as /var/task is).
    task = tmp_path / "task"
    task.mkdir()
    shutil.copy(REPO_ROOT / "functions" / "migrate" / "app.py", task / "app.py")
    shutil.copytree(REPO_ROOT / "functions" / "migrate" / "flex_migrate", task / "flex_migrate")
    shutil.copytree(REPO_ROOT / "migrations", task / "migrations")
    with _cold_start(task) as module:
        packaged = sys.modules["flex_migrate.service"]
        assert Path(str(packaged.__file__)).parent == task / "flex_migrate"
        location = packaged._alembic_config().get_main_option("script_location")
        assert Path(location) == task / "migrations"
        current = module.lambda_handler({"action": "current"}, migrate_context())
        assert current["current"] == current["head"]


# ------------------------------------------------------------------ CloudFormation custom resource


def test_create_request_migrates_and_answers_success(
    migrate: ModuleType, empty_database: str, cloudformation: CloudFormationStandIn
) -> None:
    event = cfn_event(cloudformation)
    head = head_revision(migrate)

    result = migrate.lambda_handler(event, migrate_context())

    answer = cloudformation.next_answer()
    assert answer.method == "PUT"
    presigned = urlsplit(event["ResponseURL"])
    assert answer.path == f"{presigned.path}?{presigned.query}"
    assert answer.headers.get("content-type") == ""  # what the presigned URL was signed with
    assert answer.body["Status"] == "SUCCESS"
    assert answer.body["StackId"] == event["StackId"]
    assert answer.body["RequestId"] == event["RequestId"]
    assert answer.body["LogicalResourceId"] == "DatabaseMigrations"
    assert answer.body["PhysicalResourceId"] == "flex-database-migrations"
    assert answer.body["Data"]["current"] == head
    assert answer.body["Reason"] == f"migrated to {head}"
    assert result == {"Status": "SUCCESS", "Reason": f"migrated to {head}"}
    assert public_tables() >= SEED_TABLES
    assert cloudformation.requests.empty()  # answered exactly once


def test_create_request_answers_failed_when_the_database_is_unreachable(
    migrate: ModuleType, cloudformation: CloudFormationStandIn
) -> None:
    event = cfn_event(cloudformation)

    with configured_database(UNREACHABLE_DATABASE):
        result = migrate.lambda_handler(event, migrate_context())  # does not raise

    answer = cloudformation.next_answer()
    assert answer.body["Status"] == "FAILED"
    assert answer.body["Reason"].startswith("migration failed: ")
    assert "Can't create a connection to host 127.0.0.1 and port 1" in answer.body["Reason"]
    assert answer.body["RequestId"] == event["RequestId"]
    assert answer.body["Data"] == {}
    assert result["Status"] == "FAILED"
    assert cloudformation.requests.empty()


def test_delete_request_keeps_the_database_and_answers_success(
    migrate: ModuleType, cloudformation: CloudFormationStandIn
) -> None:
    # Unreachable on purpose: deleting the stack must not touch (or need) the database.
    event = cfn_event(cloudformation, "Delete")

    with configured_database(UNREACHABLE_DATABASE):
        result = migrate.lambda_handler(event, migrate_context())

    answer = cloudformation.next_answer()
    assert answer.body["Status"] == "SUCCESS"
    assert answer.body["PhysicalResourceId"] == "flex-database-migrations"
    assert "kept" in answer.body["Reason"]
    assert result["Status"] == "SUCCESS"


def test_update_request_on_a_migrated_database_answers_success(
    migrate: ModuleType, database_url: str, cloudformation: CloudFormationStandIn
) -> None:
    event = cfn_event(cloudformation, "Update")
    head = head_revision(migrate)

    migrate.lambda_handler(event, migrate_context())

    answer = cloudformation.next_answer()
    assert answer.body["Status"] == "SUCCESS"
    assert answer.body["Data"]["previous"] == head
    assert answer.body["PhysicalResourceId"] == "flex-database-migrations"


def test_answers_failed_before_the_lambda_times_out_and_only_once(
    migrate: ModuleType, empty_database: str, cloudformation: CloudFormationStandIn
) -> None:
    # Given another migration run holding the lock, and a Lambda with little time left
    lock_connection = db.get_engine().connect()
    lock_connection.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": migrate_module("store").MIGRATION_LOCK_KEY},
    )
    context = migrate_context(remaining_ms=int((migrate._ANSWER_MARGIN_SECONDS + 1) * 1000))
    event = cfn_event(cloudformation)
    outcome: dict[str, Any] = {}
    run = threading.Thread(
        target=lambda: outcome.update(migrate.lambda_handler(event, context)), daemon=True
    )
    try:
        # When the migration is still waiting as the deadline nears
        run.start()
        answer = cloudformation.next_answer(timeout=15)

        # Then CloudFormation has been told FAILED, before the timeout
        assert answer.body["Status"] == "FAILED"
        assert "timeout" in answer.body["Reason"]
        assert run.is_alive()
    finally:
        lock_connection.rollback()
        lock_connection.close()
    run.join(timeout=30)
    # and the late outcome is not sent as a second, contradicting answer
    assert not run.is_alive()
    assert outcome["Status"] == "FAILED"
    assert cloudformation.requests.empty()


def test_bad_configuration_still_answers_cloudformation(
    cloudformation: CloudFormationStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No database configured at all: the module still loads (no init error CloudFormation
    # would never hear about) and the request is answered FAILED naming the variable.
    for name in ("DATABASE_URL", "DB_HOST", "DB_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    config.reset_settings()
    db.reset_engine()
    try:
        with _cold_start(REPO_ROOT / "functions" / "migrate") as module:
            module.lambda_handler(cfn_event(cloudformation), migrate_context())
    finally:
        monkeypatch.undo()
        config.reset_settings()
        db.reset_engine()

    answer = cloudformation.next_answer()
    assert answer.body["Status"] == "FAILED"
    assert "ConfigError" in answer.body["Reason"]
    assert "DATABASE_URL" in answer.body["Reason"]
    assert os.environ.get("DATABASE_URL")  # restored for the other tests


def _forget_modules(package: str) -> dict[str, ModuleType]:
    """Take ``package`` and its modules out of ``sys.modules``; returns them."""
    names = [name for name in sys.modules if name == package or name.startswith(f"{package}.")]
    return {name: sys.modules.pop(name) for name in names}


@contextmanager
def _cold_start(task: Path) -> Iterator[ModuleType]:
    """``task/app.py`` imported as in a new container: ``task`` first on ``sys.path`` and
    flex_migrate imported afresh from it; the process's own modules are put back after."""
    kept = _forget_modules("flex_migrate")
    sys.path.insert(0, str(task))
    try:
        spec = importlib.util.spec_from_file_location("migrate_app_cold", task / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(task))
        _forget_modules("flex_migrate")
        sys.modules.update(kept)
