"""Search domain logic: embed the query, rank in the database, shape the results.

Knows nothing of API Gateway; raises the layer's domain errors (``NotFound``,
``DependencyUnavailable``, ``InvalidInput``), which the resolver turns into HTTP answers.
"""

from __future__ import annotations

from datetime import UTC

from aws_lambda_powertools import Logger

from flex_search import store
from flex_search.distance import Metric, similarity
from flex_search.query_embedding import query_vector_literal
from flex_search.schemas import JobResponse, SearchRequest, SearchResponse, SearchResult
from flex_shared.config import get_settings
from flex_shared.db import connection_transaction
from flex_shared.errors import DependencyUnavailable, FlexError, NotFound

logger = Logger(child=True)


def _embed(query: str, deadline: float | None) -> str:
    try:
        return query_vector_literal(query, deadline=deadline)
    except DependencyUnavailable as exc:
        # The provider's message ("throttled", "timed out") does not say what failed: name it.
        raise DependencyUnavailable(
            exc.dependency, f"{exc.dependency} is unavailable: {exc.message}"
        ) from exc
    except FlexError:
        raise  # EmbeddingInputError (an InvalidInput): the query itself is refused, 422
    except Exception as exc:  # an unexpected provider failure is still a dependency failure
        logger.exception("query embedding failed")
        raise DependencyUnavailable("embedding service") from exc


def _result(metric: Metric, hit: store.ChunkHit) -> SearchResult:
    return SearchResult(
        chunk_id=hit.chunk_id,
        job_id=hit.job_id,
        company_id=hit.company_id,
        job_title=hit.job_title,
        chunk_index=hit.chunk_index,
        chunk_text=hit.chunk_text,
        distance=hit.distance,
        similarity=similarity(metric, hit.distance),
    )


def search(request: SearchRequest, *, deadline: float | None = None) -> SearchResponse:
    """The ``min(top_k, matching)`` chunks nearest to the query, best first. ``deadline``
    (a ``time.monotonic()`` instant) bounds the embedding service's retries."""
    literal = _embed(request.query.strip(), deadline)
    with connection_transaction() as connection:
        outcome = store.search_chunks(
            connection,
            literal,
            metric=request.metric,
            top_k=request.top_k,
            chunk_filter=store.ChunkFilter(job_id=request.job_id, company_id=request.company_id),
            ef_search=get_settings().hnsw_ef_search,
        )
    if outcome.strategy == "index_then_exact":
        # Worth knowing: many of these mean dead tuples to VACUUM or an ef_search too small.
        logger.info(
            "index scan came back short; answered by exact scan",
            extra={"top_k": request.top_k, "ef_search": outcome.ef_search},
        )
    return SearchResponse(results=[_result(request.metric, hit) for hit in outcome.hits])


def read_job(job_id: int) -> JobResponse:
    """A job still in search, or ``NotFound``."""
    with connection_transaction() as connection:
        job = store.find_job(connection, job_id)
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
