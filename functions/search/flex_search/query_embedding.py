"""Query embeddings with a small per-container LRU cache.

A warm container answers repeated queries (pagination, retries, popular searches) without a
Bedrock round trip. The cache holds the pgvector text literal, ready to bind, so a hit costs
neither the embedding call nor formatting 1,024 floats.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from flex_shared.db import vector_literal
from flex_shared.embeddings import get_embedder

QUERY_CACHE_SIZE = 256
"""About 20 KB per entry (the text literal): a few MB at most."""


class QueryEmbeddingCache:
    """Least-recently-used map from query text to its vector literal (``'[0.1,...]'``)."""

    def __init__(self, max_entries: int = QUERY_CACHE_SIZE) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> str | None:
        with self._lock:
            literal = self._entries.get(query)
            if literal is not None:
                self._entries.move_to_end(query)
            return literal

    def put(self, query: str, vector: list[float]) -> str:
        literal = vector_literal(vector)
        with self._lock:
            self._entries[query] = literal
            self._entries.move_to_end(query)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return literal

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


QUERY_CACHE = QueryEmbeddingCache()


def query_vector_literal(query: str, *, deadline: float | None = None) -> str:
    """The query's embedding as a pgvector literal; embeds through the configured provider
    on a cache miss, retrying until ``deadline`` (a ``time.monotonic()`` instant). Raises
    ``EmbeddingUnavailable`` (a ``DependencyUnavailable``) or
    ``EmbeddingInputError`` (an ``InvalidInput``); failures are not cached."""
    literal = QUERY_CACHE.get(query)
    if literal is None:
        literal = QUERY_CACHE.put(query, get_embedder().embed_query(query, deadline=deadline))
    return literal
