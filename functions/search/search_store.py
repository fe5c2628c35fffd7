"""Vector search and job reads in PostgreSQL + pgvector (data access; no HTTP here).

How a query is answered (the response must hold ``min(top_k, matching chunks)`` rows):

* The stored vectors are unit-length (Titan ``normalize=true``; the local embedder too), so
  cosine distance, L2 distance and negative inner product rank them identically:
  ``l2 = sqrt(2 * cosine)`` and ``inner = cosine - 1``. Every metric therefore walks the seed's
  cosine HNSW index and reports the requested operator's own value, re-sorted by it.
* ``hnsw.ef_search`` is set per transaction (``SET LOCAL``), never per session.
* An index scan returns at most ``ef_search`` rows and filters are applied after it, so a
  selective filter, or dead row versions left by re-uploads, can leave it short. Strategy:
  - no filter: index scan; if it comes back short, an exact scan;
  - with a filter: count the matching chunks (btree on ``company_id`` / ``job_id``, the
    count capped). Few -> exact scan of just those rows. Many -> on pgvector >= 0.8 an
    iterative index scan (``relaxed_order``, bounded by ``max_scan_tuples``) with the filter
    inside, re-sorted outside; before 0.8 (no iterative scans) an index scan over-fetching
    ``top_k / selectivity`` candidates with ``ef_search`` raised to match. Short -> exact.
* The exact scan computes the requested operator over the filtered rows in a materialised CTE,
  which keeps the planner off the HNSW index (an approximate answer is what we fall back from).
* Jobs taken out of search (``jobs.deleted_at``) never appear.

Keyword search (``keyword_chunks``) matches ``job_chunks.search_vector`` (a generated
``tsvector``, GIN-indexed; migration 0003) against ``job_chunk_search_query``, which tokenises
the query exactly as the column tokenises chunks, and ranks by ``ts_rank_cd``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import Connection

from flex_shared.db import set_local

if TYPE_CHECKING:
    # The handler passes a Core Connection (sqlalchemy.orm is not imported on a cold start);
    # tests and benchmarks may pass a Session: both execute the same SQL text.
    from sqlalchemy.orm import Session

Metric = Literal["cosine", "l2", "inner_product"]
Strategy = Literal["index", "iterative_index", "exact", "index_then_exact"]

OPERATORS: dict[Metric, str] = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}

EXACT_SCAN_MAX_ROWS = 2_000
"""A filter keeping at most this many chunks is answered by an exact scan of just those rows
(btree lookup, then a 4 KB TOASTed vector each: about 33 us per row at 100k rows in
bench/bench_search.py, so 2,000 rows ~ 65 ms) -- exact, and where an index scan would need
an ``ef_search`` of ``2 * top_k / selectivity``, beyond pgvector's 1,000 at 1% selectivity.
Above it, the index (13 ms at ef_search 100, 21 ms at 200 in the same benchmark) is cheaper."""

EF_SEARCH_MAX = 1000
"""pgvector's upper bound for ``hnsw.ef_search``."""

OVERFETCH_FACTOR = 2.0
"""Index candidates fetched per expected match, for the filter's unevenness across the graph."""

KEYWORD_RANK_MAX_ROWS = 1_000
"""Keyword matches ranked per query. Ranking reads every matched chunk's tsvector (about 6 us
each): a query of common words ("경험", "engineer") matches most of a large table, so only the
first 1,000 matches found are ranked (bench/bench_search.py: p95 bounded at 100k chunks)."""

ITERATIVE_MAX_SCAN_TUPLES = 20_000
"""Upper bound of an iterative index scan (pgvector >= 0.8) before the exact fallback."""


@dataclass(frozen=True)
class ChunkFilter:
    job_id: int | None = None
    company_id: int | None = None

    @property
    def active(self) -> bool:
        return self.job_id is not None or self.company_id is not None

    def sql(self) -> str:
        clauses = []
        if self.job_id is not None:
            clauses.append("jc.job_id = :job_id")
        if self.company_id is not None:
            clauses.append("jc.company_id = :company_id")
        return " AND ".join(clauses) or "TRUE"

    def params(self) -> dict[str, int]:
        values = {"job_id": self.job_id, "company_id": self.company_id}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    job_id: int
    company_id: int
    job_title: str
    chunk_index: int
    chunk_text: str
    distance: float


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[ChunkHit]
    strategy: Strategy
    ef_search: int | None


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, Any]


@dataclass(frozen=True)
class JobRecord:
    id: int
    company_id: int
    title: str
    description: str
    chunk_count: int
    created_at: datetime
    updated_at: datetime


_HIT_COLUMNS = "jc.id, jc.job_id, j.company_id, j.title, jc.chunk_index, jc.chunk_text, c.distance"


def index_statement(
    query_literal: str,
    metric: Metric,
    top_k: int,
    candidates: int,
    chunk_filter: ChunkFilter,
    *,
    filter_inside: bool = False,
) -> Statement:
    """Nearest ``candidates`` by the cosine HNSW index, then the live, matching ``top_k`` by the
    requested operator. ``filter_inside`` puts the filter into the index scan (iterative scans
    on pgvector >= 0.8); otherwise it is applied to the candidates."""
    operator = OPERATORS[metric]
    inner_where = f"WHERE {chunk_filter.sql()}" if filter_inside else ""
    sql = f"""
WITH c AS MATERIALIZED (
    SELECT jc.id, jc.embedding {operator} CAST(:query AS vector) AS distance
    FROM job_chunks AS jc
    {inner_where}
    ORDER BY jc.embedding <=> CAST(:query AS vector)
    LIMIT :candidates
)
SELECT {_HIT_COLUMNS}
FROM c
JOIN job_chunks AS jc ON jc.id = c.id
JOIN jobs AS j ON j.id = jc.job_id
WHERE j.deleted_at IS NULL AND {chunk_filter.sql()}
ORDER BY c.distance, jc.id
LIMIT :top_k"""
    params: dict[str, Any] = {
        "query": query_literal,
        "candidates": candidates,
        "top_k": top_k,
        **chunk_filter.params(),
    }
    return Statement(sql, params)


def exact_statement(
    query_literal: str, metric: Metric, top_k: int, chunk_filter: ChunkFilter
) -> Statement:
    """Exact ``top_k`` by the requested operator over every live matching chunk. The CTE is
    materialised so the ORDER BY cannot be turned into an (approximate) HNSW index scan."""
    operator = OPERATORS[metric]
    sql = f"""
WITH scored AS MATERIALIZED (
    SELECT jc.id, jc.embedding {operator} CAST(:query AS vector) AS distance
    FROM job_chunks AS jc
    JOIN jobs AS j ON j.id = jc.job_id
    WHERE j.deleted_at IS NULL AND {chunk_filter.sql()}
),
c AS (
    SELECT id, distance FROM scored ORDER BY distance, id LIMIT :top_k
)
SELECT {_HIT_COLUMNS}
FROM c
JOIN job_chunks AS jc ON jc.id = c.id
JOIN jobs AS j ON j.id = jc.job_id
ORDER BY c.distance, jc.id"""
    return Statement(sql, {"query": query_literal, "top_k": top_k, **chunk_filter.params()})


def matching_statement(chunk_filter: ChunkFilter, cap: int) -> Statement:
    """How many chunks the filter keeps (counting stops at ``cap``), and the table's size
    as the planner last estimated it (``reltuples``; -1 when never analysed)."""
    sql = f"""
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM job_chunks AS jc WHERE {chunk_filter.sql()} LIMIT :cap
    ) AS m) AS matching,
    (SELECT reltuples FROM pg_class WHERE oid = 'job_chunks'::regclass) AS total_estimate"""
    return Statement(sql, {"cap": cap, **chunk_filter.params()})


def set_locals(session: Session | Connection, settings: dict[str, str | int]) -> None:
    """Several ``SET LOCAL`` in one round trip (``set_config(..., true)``, as
    :func:`flex_shared.db.set_local` does for one): each round trip costs a millisecond or
    more through RDS Proxy."""
    calls = ", ".join(f"set_config(:name{i}, :value{i}, true)" for i in range(len(settings)))
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(settings.items()):
        params[f"name{i}"] = name
        params[f"value{i}"] = str(value)
    session.execute(text(f"SELECT {calls}"), params)


def index_settings(ef_search: int) -> dict[str, str | int]:
    """This transaction's settings for an HNSW scan: ``ef_search``, and no sequential scan. The
    strategy was chosen on purpose; the planner, which underestimates scanning TOASTed 4 KB
    vectors, would otherwise prefer a full sort on small and mid-sized tables."""
    return {"hnsw.ef_search": ef_search, "enable_seqscan": "off"}


def use_index(session: Session | Connection, ef_search: int) -> None:
    set_locals(session, index_settings(ef_search))


def _use_exact(session: Session | Connection) -> None:
    set_local(session, "enable_seqscan", "on")


def estimated_matching(session: Session | Connection, chunk_filter: ChunkFilter) -> float:
    """The planner's estimate of the rows the filter keeps (no rows are read)."""
    plan = session.execute(
        text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM job_chunks AS jc WHERE {chunk_filter.sql()}"),
        chunk_filter.params(),
    ).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


_vector_version: tuple[int, ...] | None = None


def pgvector_version(session: Session | Connection) -> tuple[int, ...]:
    """The installed pgvector version, read once per container."""
    global _vector_version
    if _vector_version is None:
        raw = session.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
        _vector_version = tuple(int(part) for part in str(raw).split(".")[:3] if part.isdigit())
    return _vector_version


def reset_pgvector_version() -> None:
    global _vector_version
    _vector_version = None


def _run(session: Session | Connection, statement: Statement) -> list[ChunkHit]:
    rows = session.execute(text(statement.sql), statement.params).all()
    hits = []
    for row in rows:
        distance = float(row[6])
        if not math.isfinite(distance):
            continue  # a zero vector has no direction: NaN is not comparable, nor JSON
        hits.append(ChunkHit(row[0], row[1], row[2], row[3], row[4], row[5], distance))
    return hits


def _candidates_for(top_k: int) -> int:
    # Room for dead versions and chunks of removed jobs among the nearest neighbours.
    return 2 * top_k + 10


def _exact(
    session: Session | Connection, statement: Statement, strategy: Strategy, ef: int | None
) -> SearchOutcome:
    _use_exact(session)
    return SearchOutcome(_run(session, statement), strategy, ef)


def search_chunks(
    session: Session | Connection,
    query_literal: str,
    *,
    metric: Metric,
    top_k: int,
    chunk_filter: ChunkFilter,
    ef_search: int,
) -> SearchOutcome:
    """The ``min(top_k, matching)`` live chunks nearest to the query, best first. Must run
    inside a transaction (``SET LOCAL``)."""
    exact = exact_statement(query_literal, metric, top_k, chunk_filter)

    if not chunk_filter.active:
        candidates = _candidates_for(top_k)
        ef = min(EF_SEARCH_MAX, max(ef_search, candidates))
        use_index(session, ef)
        hits = _run(
            session, index_statement(query_literal, metric, top_k, candidates, chunk_filter)
        )
        if len(hits) == top_k:
            return SearchOutcome(hits, "index", ef)
        return _exact(session, exact, "index_then_exact", ef)

    counted = matching_statement(chunk_filter, EXACT_SCAN_MAX_ROWS + 1)
    matching, total_estimate = session.execute(text(counted.sql), counted.params).one()
    if matching <= EXACT_SCAN_MAX_ROWS or total_estimate <= 0:
        return SearchOutcome(_run(session, exact), "exact", None)

    if pgvector_version(session) >= (0, 8):
        candidates = _candidates_for(top_k)
        ef = min(EF_SEARCH_MAX, max(ef_search, candidates))
        set_locals(
            session,
            {
                **index_settings(ef),
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.max_scan_tuples": ITERATIVE_MAX_SCAN_TUPLES,
            },
        )
        statement = index_statement(
            query_literal, metric, top_k, candidates, chunk_filter, filter_inside=True
        )
        hits = _run(session, statement)
        if len(hits) == top_k:
            return SearchOutcome(hits, "iterative_index", ef)
        return _exact(session, exact, "index_then_exact", ef)

    # The count stopped at its cap; the planner's statistics say how far beyond it goes.
    matching = max(float(matching), estimated_matching(session, chunk_filter))
    selectivity = min(1.0, matching / max(float(total_estimate), matching))
    candidates = math.ceil(top_k / selectivity * OVERFETCH_FACTOR) + top_k
    if candidates > EF_SEARCH_MAX:
        return SearchOutcome(_run(session, exact), "exact", None)
    ef = max(ef_search, candidates)
    use_index(session, ef)
    hits = _run(session, index_statement(query_literal, metric, top_k, candidates, chunk_filter))
    if len(hits) == top_k:
        return SearchOutcome(hits, "index", ef)
    return _exact(session, exact, "index_then_exact", ef)


def keyword_statement(
    query_text: str,
    query_literal: str,
    metric: Metric,
    limit: int,
    chunk_filter: ChunkFilter,
    *,
    match_all: bool,
    min_similarity: float | None,
) -> Statement:
    """The ``limit`` live, matching chunks that contain the query's words (all of them, or any
    with ``match_all`` false), best text rank first, each with its vector distance by the
    requested operator. ``min_similarity`` drops, before the limit, chunks whose cosine
    similarity to the query is lower. At most ``KEYWORD_RANK_MAX_ROWS`` matches are ranked."""
    operator = OPERATORS[metric]
    similar = (
        "AND 1 - (jc.embedding <=> CAST(:query AS vector)) >= :min_similarity"
        if min_similarity is not None
        else ""
    )
    # An immutable function of bound values: the planner folds it into a constant tsquery,
    # so the GIN index answers the @@.
    sql = f"""
WITH matched AS MATERIALIZED (
    SELECT jc.id, ts_rank_cd(jc.search_vector, q.terms) AS rank
    FROM job_chunks AS jc
    JOIN jobs AS j ON j.id = jc.job_id
    CROSS JOIN (SELECT job_chunk_search_query(:query_text, :match_all) AS terms) AS q
    WHERE jc.search_vector @@ q.terms AND j.deleted_at IS NULL AND {chunk_filter.sql()}
        {similar}
    LIMIT :rank_max_rows
),
best AS (
    SELECT id, rank FROM matched ORDER BY rank DESC, id LIMIT :limit
)
SELECT jc.id, jc.job_id, j.company_id, j.title, jc.chunk_index, jc.chunk_text,
       jc.embedding {operator} CAST(:query AS vector) AS distance, b.rank
FROM best AS b
JOIN job_chunks AS jc ON jc.id = b.id
JOIN jobs AS j ON j.id = jc.job_id
ORDER BY b.rank DESC, jc.id"""
    params: dict[str, Any] = {
        "query_text": query_text,
        "query": query_literal,
        "match_all": match_all,
        "limit": limit,
        "rank_max_rows": KEYWORD_RANK_MAX_ROWS,
        **chunk_filter.params(),
    }
    if min_similarity is not None:
        params["min_similarity"] = min_similarity
    return Statement(sql, params)


def keyword_chunks(
    session: Session | Connection,
    query_text: str,
    query_literal: str,
    *,
    metric: Metric,
    limit: int,
    chunk_filter: ChunkFilter,
    match_all: bool,
    min_similarity: float | None = None,
) -> list[tuple[ChunkHit, float]]:
    """Chunks containing the query's words with their text rank, best first (see
    :func:`keyword_statement`). Empty when the query has no searchable word."""
    statement = keyword_statement(
        query_text,
        query_literal,
        metric,
        limit,
        chunk_filter,
        match_all=match_all,
        min_similarity=min_similarity,
    )
    rows = session.execute(text(statement.sql), statement.params).all()
    return [
        (ChunkHit(row[0], row[1], row[2], row[3], row[4], row[5], float(row[6])), float(row[7]))
        for row in rows
        if math.isfinite(float(row[6]))
    ]


def find_job(session: Session | Connection, job_id: int) -> JobRecord | None:
    """A job still in search, with its chunk count; None when unknown or removed."""
    row = session.execute(
        text(
            """
SELECT j.id, j.company_id, j.title, j.description,
       (SELECT count(*) FROM job_chunks AS jc WHERE jc.job_id = j.id) AS chunk_count,
       j.created_at, j.updated_at
FROM jobs AS j
WHERE j.id = :job_id AND j.deleted_at IS NULL"""
        ),
        {"job_id": job_id},
    ).first()
    if row is None:
        return None
    return JobRecord(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6])
