"""Runs the Alembic migrations: upgrade or downgrade in one transaction under the migration
lock, or report the current and head revisions. Knows nothing of the invocation's shape."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from sqlalchemy.engine import Connection

from flex_migrate import store
from flex_shared.db import run_in_transaction

logger = Logger(service="migrate", child=True)

_TASK_ROOT = Path(__file__).resolve().parents[1]  # where app.py is (/var/task on Lambda)
# Packaged next to app.py by the build; in a checkout it is the repository's migrations/.
_MIGRATIONS_DIRS = (_TASK_ROOT / "migrations", _TASK_ROOT.parents[1] / "migrations")


class MigrationRequestError(ValueError):
    """The invocation asked for something this function does not do."""


def _alembic_config() -> Any:
    from alembic.config import Config

    for directory in _MIGRATIONS_DIRS:
        if (directory / "env.py").is_file():
            # The revisions import migrations.server_requirements, so the directory holding
            # migrations/ must be importable before any is loaded: env.py arranges it for a
            # run, but reading the head (every invocation, `current` alone) loads them first.
            if str(directory.parent) not in sys.path:
                sys.path.append(str(directory.parent))
            config = Config()
            config.set_main_option("script_location", str(directory))
            return config
    raise FileNotFoundError("migrations/ is not packaged with the migrate function")


def _revisions(config: Any) -> dict[str, str | None]:
    from alembic.script import ScriptDirectory

    current = run_in_transaction(store.current_revision)
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

    def migrate(connection: Connection) -> None:
        store.lock_migrations(connection)  # concurrent runs queue instead of racing
        config.attributes["connection"] = connection
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    run_in_transaction(migrate)
    after = _revisions(config)
    logger.info("migrated", extra={"action": action, "from": before["current"], **after})
    return {"action": action, "previous": before["current"], **after}
