"""Search API models (SPEC.md, "Search API"): ``POST /search`` and ``GET /jobs/{job_id}``.

Types are strict (``true`` is not a ``top_k``, ``"3"`` is not a ``job_id``): a caller's
mistake is a 422 naming the field rather than a silently coerced query.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, field_validator

from flex_search.distance import Metric
from flex_shared.schemas import ApiModel, DatabaseId, QuestionOut, UtcDatetime
from flex_shared.titan import TITAN_MAX_INPUT_CHARS

SearchMode = Literal["vector", "hybrid", "keyword"]


class SearchRequest(ApiModel):
    # Titan rejects longer inputs: a 422 naming the field, before any embedding call.
    query: Annotated[StrictStr, Field(min_length=1, max_length=TITAN_MAX_INPUT_CHARS)]
    top_k: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    metric: Metric = "cosine"
    job_id: DatabaseId | None = None
    company_id: DatabaseId | None = None
    mode: SearchMode = "vector"
    min_similarity: Annotated[StrictFloat, Field(ge=-1.0, le=1.0)] | None = None
    """Results whose cosine similarity to the query is lower are dropped, in every mode."""

    @field_validator("query")
    @classmethod
    def _query_has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must not be empty or whitespace only")
        return value


class SearchResult(ApiModel):
    chunk_id: int
    job_id: int
    company_id: int
    job_title: str
    chunk_index: int
    chunk_text: str
    distance: float
    """The requested pgvector operator's value: ``<=>``, ``<->`` or ``<#>`` (negative
    inner product)."""
    similarity: float
    """Cosine similarity, whatever the metric (the stored vectors are unit-length):
    ``1 - d`` for cosine, ``1 - d**2 / 2`` for L2, ``-d`` for inner product."""
    score: float
    """What the results are ordered by: ``similarity`` in ``vector`` mode, the text rank
    (``ts_rank_cd``) in ``keyword`` mode, the reciprocal rank fusion score in ``hybrid``."""


class SearchResponse(ApiModel):
    results: list[SearchResult]


class JobResponse(ApiModel):
    id: int
    company_id: int
    title: str
    description: str
    chunk_count: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class SuggestedQuestion(ApiModel):
    question: QuestionOut
    similarity: float
    """Cosine similarity of the question to the job description's nearest chunk."""
    chunk_index: int
    """That chunk's ``chunk_index``."""


class SuggestedQuestionsResponse(ApiModel):
    job_id: int
    questions: list[SuggestedQuestion]
    """The job's own and the general question templates (``job_id`` null), most similar
    first, ties by question id."""
