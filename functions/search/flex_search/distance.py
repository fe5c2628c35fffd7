"""The three distance metrics a search may ask for, and what each distance says as cosine
similarity. One home for the request schema, the service and the store; imports nothing."""

from __future__ import annotations

from typing import Literal

Metric = Literal["cosine", "l2", "inner_product"]
"""pgvector's ``<=>`` (cosine distance), ``<->`` (L2) and ``<#>`` (negative inner product)."""


def similarity(metric: Metric, distance: float) -> float:
    """Cosine similarity from the operator's value, valid for unit-length vectors:
    cosine ``1 - d``; L2 ``1 - d**2 / 2`` (``|a - b|**2 = 2 - 2 cos``); inner product ``-d``
    (``<#>`` is the negative inner product, which equals the cosine for unit vectors)."""
    if metric == "cosine":
        return 1.0 - distance
    if metric == "l2":
        return 1.0 - distance * distance / 2.0
    return -distance
