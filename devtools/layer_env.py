"""Point the shared layer at a database for a while (tests, benchmarks, the local runner)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flex_shared import config, db


@contextmanager
def layer_configured(database_url: str) -> Iterator[None]:
    """Set ``DATABASE_URL`` to ``database_url`` and rebuild the layer's settings and engine;
    restore both afterwards."""
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url
    config.reset_settings()
    db.reset_engine()
    try:
        yield
    finally:
        db.reset_engine()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        config.reset_settings()
