"""Embedding providers behind one interface (``EMBEDDING_PROVIDER``).

PLACEHOLDER: minimal version so other parts can be built against the interface; the real
Titan client (concurrency, retries, deadlines) and local embedder replace it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from .config import get_settings
from .errors import DependencyUnavailable, InvalidInput


class EmbeddingUnavailable(DependencyUnavailable):
    """The embedding service failed or throttled past the retry budget."""

    def __init__(self, message: str) -> None:
        super().__init__("embedding service", message)


class EmbeddingInputError(InvalidInput):
    """An input the model rejects (e.g. over Titan's limit); names the input's position."""


class Embedder(Protocol):
    model_id: str
    dimensions: int

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        """Embed many texts; results in input order. ``deadline`` is a ``time.monotonic()``
        instant after which no retry is attempted."""
        ...

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        """Embed one search query."""
        ...


class LocalEmbedder:
    """Deterministic offline embedder (placeholder)."""

    model_id = "local-hash-v1"

    def __init__(self, dimensions: int = 1024) -> None:
        self.dimensions = dimensions

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for token in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimensions
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        if norm == 1.0 and not any(vector):
            vector[0] = 1.0
        return [v / norm for v in vector]

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        return self._embed(text)


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The container's embedder, chosen by ``EMBEDDING_PROVIDER``."""
    settings = get_settings()
    if settings.embedding_provider == "local":
        return LocalEmbedder(settings.embedding_dimensions)
    raise NotImplementedError("titan provider not implemented yet")
