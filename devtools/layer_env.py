"""Point the shared layer at other settings for a while (tests, benchmarks, the local runner)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from flex_shared import config, db
from flex_shared.embeddings import reset_embedder


@contextmanager
def layer_environment(**variables: str) -> Iterator[None]:
    """Set the environment ``variables`` and rebuild the layer's settings, engine and embedder
    from them; restore all of it afterwards."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    _forget_layer_state()
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_layer_state()


def layer_configured(database_url: str) -> AbstractContextManager[None]:
    """The layer on ``database_url`` (``DATABASE_URL``) for a while."""
    return layer_environment(DATABASE_URL=database_url)


def _forget_layer_state() -> None:
    config.reset_settings()
    db.reset_engine()
    reset_embedder()
