"""Runs the Alembic migrations inside the VPC.

Direct invoke: ``{"action": "upgrade" | "current", "revision": "head"}`` (defaults: upgrade to
head). Also a CloudFormation custom resource: Create/Update migrate to head, Delete does
nothing (data outlives stacks), and CloudFormation always gets an answer.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy import text

from flex_shared.config import get_settings
from flex_shared.db import get_engine

logger = Logger(service="migrate")
get_settings()  # fail at start-up, naming the variable, when the configuration is wrong

_HERE = Path(__file__).resolve().parent
# Packaged next to app.py by the build; in a checkout it is the repository's migrations/.
_MIGRATIONS_DIRS = (_HERE / "migrations", _HERE.parents[1] / "migrations")
# Any constant shared by every migration runner: concurrent runs queue instead of racing.
_MIGRATION_LOCK_KEY = 0x666C6578  # "flex"


class MigrationRequestError(ValueError):
    """The invocation asked for something this function does not do."""


def _alembic_config() -> Any:
    from alembic.config import Config

    for directory in _MIGRATIONS_DIRS:
        if (directory / "env.py").is_file():
            config = Config()
            config.set_main_option("script_location", str(directory))
            return config
    raise FileNotFoundError("migrations/ is not packaged with the migrate function")


def _revisions(config: Any) -> dict[str, str | None]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with get_engine().connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return {"current": current, "head": ScriptDirectory.from_config(config).get_current_head()}


def run(action: str = "upgrade", revision: str = "head") -> dict[str, Any]:
    """Migrate (``upgrade``/``downgrade`` to ``revision``) or report (``current``)."""
    from alembic import command

    config = _alembic_config()
    before = _revisions(config)
    if action == "current":
        return {"action": action, **before}
    if action not in ("upgrade", "downgrade"):
        raise MigrationRequestError(f"action must be upgrade, downgrade or current, not {action!r}")
    if action == "downgrade" and revision == "head":
        raise MigrationRequestError("downgrade needs an explicit revision (e.g. 'base' or '-1')")

    with get_engine().begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
    after = _revisions(config)
    logger.info("migrated", extra={"action": action, "from": before["current"], **after})
    return {"action": action, "previous": before["current"], **after}


def _answer_cloudformation(
    event: dict[str, Any], status: str, reason: str, data: dict[str, Any]
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "flex-database-migrations",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {key: str(value) for key, value in data.items()},
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's presigned https URL)
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def _handle_custom_resource(event: dict[str, Any]) -> dict[str, Any]:
    status, reason, data = "SUCCESS", "ok", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = run("upgrade", "head")
            reason = f"migrated to {data['current']}"
        else:
            reason = "delete: the database and its data are kept"
    except Exception as exc:  # CloudFormation must hear back, whatever happened
        logger.exception("migration failed")
        status, reason = "FAILED", f"migration failed: {type(exc).__name__}: {exc}"
    _answer_cloudformation(event, status, reason, data)
    return {"Status": status, "Reason": reason}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return _handle_custom_resource(event)
    # A bad request or a failed migration raises: the caller (a deploy step) must see it fail.
    return run(str(event.get("action", "upgrade")), str(event.get("revision", "head")))
