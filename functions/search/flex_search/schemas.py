"""Search API models (SPEC.md, "Search API"): ``POST /search`` and ``GET /jobs/{job_id}``.

Types are strict (``true`` is not a ``top_k``, ``"3"`` is not a ``job_id``): a caller's
mistake is a 422 naming the field rather than a silently coerced query.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, StrictFloat

from flex_search.distance import Metric
from flex_shared.schemas import (
    WHOLE_FLOAT_AS_INT,
    ApiModel,
    DatabaseId,
    NonBlankText,
    QuestionOut,
    ResponseModel,
    UtcDatetime,
)
from flex_shared.titan import TITAN_MAX_INPUT_CHARS

SearchMode = Literal["vector", "hybrid", "keyword"]


class SearchRequest(ApiModel):
    # Titan rejects longer inputs: a 422 naming the field, before any embedding call.
    query: Annotated[NonBlankText, Field(min_length=1, max_length=TITAN_MAX_INPUT_CHARS)]
    """What to look for, in any language the embedding model reads (Korean and English)."""
    top_k: Annotated[int, Strict(), Field(ge=1, le=100), WHOLE_FLOAT_AS_INT] = 5
    """How many results at most."""
    metric: Metric = "cosine"
    """The pgvector operator whose value is each result's ``distance``: ``cosine`` (``<=>``),
    ``l2`` (``<->``) or ``inner_product`` (``<#>``, negative). The ranking is the same."""
    job_id: DatabaseId | None = None
    """Only this job's chunks."""
    company_id: DatabaseId | None = None
    """Only this company's jobs."""
    mode: SearchMode = "vector"
    """``vector`` (by meaning), ``keyword`` (every word of the query) or ``hybrid`` (both,
    fused by reciprocal rank)."""
    min_similarity: Annotated[StrictFloat, Field(ge=-1.0, le=1.0)] | None = None
    """Results whose cosine similarity to the query is lower are dropped, in every mode."""


class SearchResult(ResponseModel):
    chunk_id: int
    job_id: int
    company_id: int
    job_title: str
    chunk_index: int
    """The chunk's position in its job's description, from 0."""
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


class SearchResponse(ResponseModel):
    results: list[SearchResult]
    """Best first."""


class JobResponse(ResponseModel):
    id: int
    company_id: int
    title: str
    description: str
    """The text extracted from the uploaded file."""
    chunk_count: int
    """How many chunks the description was split into for search."""
    created_at: UtcDatetime
    updated_at: UtcDatetime


class SuggestedQuestion(ResponseModel):
    question: QuestionOut
    similarity: float
    """Cosine similarity of the question to the job description's nearest chunk."""
    chunk_index: int
    """That chunk's ``chunk_index``."""


class SuggestedQuestionsResponse(ResponseModel):
    job_id: int
    questions: list[SuggestedQuestion]
    """The job's own and the general question templates (``job_id`` null), most similar
    first, ties by question id."""
