"""Search domain logic: embed the query, rank in the database, fuse, shape the results.

Modes (SPEC.md, "Search API"): ``vector`` (nearest chunks by embedding), ``keyword`` (chunks
containing every word of the query, by text rank) and ``hybrid`` (both lists fused by
reciprocal rank fusion). Every mode reports each result's vector distance and similarity, and
``min_similarity`` drops results less similar than asked, in every mode.

Knows nothing of API Gateway; raises the layer's domain errors (``NotFound``, the embedder's
``EmbeddingUnavailable`` and ``EmbeddingInputError``), which the resolver turns into HTTP
answers; anything else the embedder raises is a bug, and answered as one (500).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from aws_lambda_powertools import Logger
from sqlalchemy.engine import Connection

from flex_search import store
from flex_search.distance import Metric, similarity
from flex_search.query_embedding import query_vector_literal
from flex_search.schemas import (
    JobResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SuggestedQuestion,
    SuggestedQuestionsResponse,
)
from flex_shared.config import get_settings
from flex_shared.db import run_in_transaction, vector_literal
from flex_shared.embeddings import get_embedder
from flex_shared.errors import Conflict, NotFound
from flex_shared.schemas import QuestionOut

logger = Logger(child=True)

KEYWORD_MATCH_ALL = True
"""A chunk must contain every word of the query to be a keyword match. Measured on the
evaluation set (bench/bench_quality.py): with the words OR-ed, a paraphrase or a cross-lingual
query fills the keyword list with chunks sharing one common word ("engineer"), and fusion then
pushes the right job down; with AND the keyword list is short and right, or empty."""

HYBRID_MIN_CANDIDATES = 30
"""Each side's top candidates fused in ``hybrid`` mode: ``max(30, 3 * top_k)``. Deeper lists
cost latency (every candidate's vector is read to report its distance) and change little: a
chunk ranked below 30 on one side scores at most 1/91 there."""

RRF_K = 60
"""Reciprocal rank fusion: a chunk scores ``sum(1 / (RRF_K + rank))`` over the lists it is in
(rank 1 = best). 60 is the usual constant: it keeps one list's top from outweighing a chunk
that both lists rank well."""


@dataclass(frozen=True)
class ScoredHit:
    hit: store.ChunkHit
    score: float


def _result(metric: Metric, scored: ScoredHit) -> SearchResult:
    hit = scored.hit
    return SearchResult(
        chunk_id=hit.chunk_id,
        job_id=hit.job_id,
        company_id=hit.company_id,
        job_title=hit.job_title,
        chunk_index=hit.chunk_index,
        chunk_text=hit.chunk_text,
        distance=hit.distance,
        similarity=similarity(metric, hit.distance),
        score=scored.score,
    )


def reciprocal_rank_fusion(
    metric: Metric, ranked_lists: Sequence[Sequence[store.ChunkHit]], *, k: int = RRF_K
) -> list[ScoredHit]:
    """Chunks of all lists by ``sum(1 / (k + rank))``; ties go to the more similar chunk,
    then the lower id, so the order is total and repeatable."""
    scores: dict[int, float] = {}
    hits: dict[int, store.ChunkHit] = {}
    for ranked in ranked_lists:
        for rank, hit in enumerate(ranked, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
            hits[hit.chunk_id] = hit
    order = sorted(
        hits,
        key=lambda chunk_id: (
            -scores[chunk_id],
            -similarity(metric, hits[chunk_id].distance),
            chunk_id,
        ),
    )
    return [ScoredHit(hits[chunk_id], scores[chunk_id]) for chunk_id in order]


def _nearest(
    connection: Connection, literal: str, request: SearchRequest, top_k: int
) -> list[store.ChunkHit]:
    """The ``top_k`` nearest chunks; with ``min_similarity``, those at least that similar
    (they are the nearest ones: the list is cut, never short of a better chunk)."""
    outcome = store.search_chunks(
        connection,
        literal,
        metric=request.metric,
        top_k=top_k,
        chunk_filter=store.ChunkFilter(job_id=request.job_id, company_id=request.company_id),
        ef_search=get_settings().hnsw_ef_search,
    )
    if outcome.strategy == "index_then_exact":
        # Worth knowing: many of these mean dead tuples to VACUUM or an ef_search too small.
        logger.info(
            "index scan came back short; answered by exact scan",
            extra={"top_k": top_k, "ef_search": outcome.ef_search},
        )
    if request.min_similarity is None:
        return outcome.hits
    floor = request.min_similarity
    return [hit for hit in outcome.hits if similarity(request.metric, hit.distance) >= floor]


def _keyword(
    connection: Connection, literal: str, request: SearchRequest, limit: int
) -> list[tuple[store.ChunkHit, float]]:
    return store.keyword_chunks(
        connection,
        request.query.strip(),
        literal,
        metric=request.metric,
        limit=limit,
        chunk_filter=store.ChunkFilter(job_id=request.job_id, company_id=request.company_id),
        match_all=KEYWORD_MATCH_ALL,
        min_similarity=request.min_similarity,
    )


def search(request: SearchRequest, *, deadline: float | None = None) -> SearchResponse:
    """The best ``top_k`` chunks for the query in the requested mode, best first: in
    ``vector`` mode ``min(top_k, matching)`` of them (``min_similarity`` aside). ``deadline``
    (a ``time.monotonic()`` instant) bounds the embedding service's retries."""
    # Every mode embeds the query: each result reports its distance and similarity. Outside
    # the transaction: a slow embedding call holds no connection.
    literal = query_vector_literal(request.query.strip(), deadline=deadline)

    def rank(connection: Connection) -> list[ScoredHit]:
        if request.mode == "vector":
            nearest = _nearest(connection, literal, request, request.top_k)
            return [ScoredHit(hit, similarity(request.metric, hit.distance)) for hit in nearest]
        if request.mode == "keyword":
            matches = _keyword(connection, literal, request, request.top_k)
            return [ScoredHit(hit, rank) for hit, rank in matches]
        candidates = max(HYBRID_MIN_CANDIDATES, 3 * request.top_k)
        # Keyword side first: the vector side's SET LOCALs (no seq scan, no sort) are meant
        # for its own plan, and last until the transaction ends.
        matches = _keyword(connection, literal, request, candidates)
        nearest = _nearest(connection, literal, request, candidates)
        fused = reciprocal_rank_fusion(request.metric, [nearest, [hit for hit, _ in matches]])
        return fused[: request.top_k]

    scored = run_in_transaction(rank)
    return SearchResponse(results=[_result(request.metric, hit) for hit in scored])


def read_job(job_id: int) -> JobResponse:
    """A job still in search, or ``NotFound``."""
    job = run_in_transaction(lambda connection: store.find_job(connection, job_id))
    if job is None:
        raise NotFound("job", job_id)
    return JobResponse(
        id=job.id,
        company_id=job.company_id,
        title=job.title,
        description=job.description,
        chunk_count=job.chunk_count,
        created_at=job.created_at.replace(tzinfo=UTC),
        updated_at=job.updated_at.replace(tzinfo=UTC),
    )


# --- suggested questions ------------------------------------------------------------------

QUESTION_EMBEDDING_MAX_CHARS = 2_000
"""A question is embedded by its first 2,000 characters: a template is a sentence or a few,
and this stays far inside Titan's input limits (8,192 tokens) whatever the script."""


def _require_job_in_search(connection: Connection, job_id: int, model: str) -> None:
    chunks = store.live_job_chunks(connection, job_id, model)
    if chunks is None:
        raise NotFound("job", job_id)
    if chunks == 0:
        # Its description was embedded by another model (before a change of model, until the
        # job is ingested again): vectors of two models are never compared.
        raise Conflict(
            f"job {job_id}'s description has no embedding by the current model {model};"
            " ingest it again to compare questions with it"
        )


def _embed_questions(texts: list[str], deadline: float | None) -> list[list[float]]:
    # The embedder raises EmbeddingUnavailable (503) or EmbeddingInputError itself.
    return get_embedder().embed_documents(
        [text[:QUESTION_EMBEDDING_MAX_CHARS] for text in texts], deadline=deadline
    )


def _suggestions(job_id: int, rows: list[store.SuggestedQuestionRow]) -> SuggestedQuestionsResponse:
    return SuggestedQuestionsResponse(
        job_id=job_id,
        questions=[
            SuggestedQuestion(
                question=QuestionOut.model_validate(row.question),
                similarity=row.similarity,
                chunk_index=row.chunk_index,
            )
            for row in rows
        ],
    )


def suggest_questions(
    job_id: int, top_k: int, *, deadline: float | None = None
) -> SuggestedQuestionsResponse:
    """The job's own and the general question templates closest in meaning to its
    description. Questions without a current embedding (new, changed text, another model) are
    embedded first, outside any transaction, and kept: an unchanged question is never embedded
    twice. ``deadline`` bounds the embedding service's retries."""
    model = get_embedder().model_id

    def rank(connection: Connection) -> list[store.SuggestedQuestionRow]:
        return store.suggested_questions(connection, job_id, model, top_k)

    def read(
        connection: Connection,
    ) -> tuple[list[store.QuestionText], list[store.SuggestedQuestionRow]]:
        _require_job_in_search(connection, job_id, model)
        missing = store.questions_to_embed(connection, job_id, model)
        return missing, ([] if missing else rank(connection))

    missing, ranked = run_in_transaction(read)
    if not missing:
        return _suggestions(job_id, ranked)  # nothing to embed: one transaction
    vectors = _embed_questions([question.text for question in missing], deadline)

    def store_and_rank(connection: Connection) -> list[store.SuggestedQuestionRow]:
        _require_job_in_search(connection, job_id, model)
        store.save_question_embeddings(
            connection,
            model,
            [
                store.QuestionEmbedding(question.id, question.text_sha256, vector_literal(vector))
                for question, vector in zip(missing, vectors, strict=True)
            ],
        )
        return rank(connection)

    return _suggestions(job_id, run_in_transaction(store_and_rank))
