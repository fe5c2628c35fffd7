"""Alembic environment: migrates through the shared layer's engine (same configuration as
the Lambdas), or through a connection handed over in ``config.attributes["connection"]``."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import context
from sqlalchemy.engine import Connection

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
if str(_PACKAGE_ROOT) not in sys.path:
    # Revisions import ``migrations.server_requirements``: the repository root in a checkout,
    # /var/task in the migrate function (which packages migrations/ beside its app.py).
    sys.path.insert(0, str(_PACKAGE_ROOT))
try:
    from flex_shared import models
except ImportError:  # run from a checkout: the layer is not installed
    sys.path.insert(0, str(_PACKAGE_ROOT / "layers" / "shared"))
    from flex_shared import models

target_metadata = models.Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    handed_over = context.config.attributes.get("connection")
    if handed_over is not None:
        _run(handed_over)
        return
    from flex_shared.db import get_engine

    with get_engine().connect() as connection:
        _run(connection)
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(
        url="postgresql+pg8000://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
