"""Vector search and job reads in PostgreSQL + pgvector >= 0.8 (data access; no HTTP here).

How a query is answered (the response must hold ``min(top_k, matching chunks)`` rows):

* The stored vectors are unit-length (Titan ``normalize=true``; the local embedders too), so
  cosine distance, L2 distance and negative inner product rank them identically:
  ``l2 = sqrt(2 * cosine)`` and ``inner = cosine - 1``. Every metric therefore walks the seed's
  cosine HNSW index and reports the requested operator's own value, re-sorted by it.
* Settings are per transaction (``SET LOCAL``), never per session: ``hnsw.ef_search``, and
  pgvector 0.8's iterative index scans (``hnsw.iterative_scan = relaxed_order``, bounded by
  ``hnsw.max_scan_tuples``). An iterative scan keeps walking the graph until the LIMIT is met
  by rows that pass the filter and are visible, so neither a selective filter nor the dead
  versions that re-uploads leave behind (until VACUUM) can make the answer short, up to the
  bound. ``relaxed_order`` may emit rows slightly out of order; the CTE is materialised and
  re-sorted outside, by the requested operator.
* With a filter, one statement decides and answers: it counts the matching chunks (B-tree on
  ``job_chunks.company_id`` / ``job_id``, counting stops at the threshold, see
  :func:`filtered_statement`); few -> an exact scan of just those rows (a one-time filter skips
  the index branch), many -> the iterative index scan with the filter inside (and the exact
  branch is skipped).
* Only when the index answer still comes back short (the scan bound was reached) is the
  query redone exactly: a second round trip on a rare path.
* Jobs taken out of search (``jobs.deleted_at``) never appear: their chunks are deleted, and
  the join re-checks.

Keyword search (``keyword_chunks``) matches ``job_chunks.search_vector`` (a generated
``tsvector``, GIN-indexed; migration 0003) against ``job_chunk_search_query``, which tokenises
the query exactly as the column tokenises chunks, and ranks by ``ts_rank_cd``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import Connection

from flex_search.distance import Metric
from flex_shared.db import set_local

if TYPE_CHECKING:
    # The handler passes a Core Connection (sqlalchemy.orm is not imported on a cold start);
    # tests and benchmarks may pass a Session: both execute the same SQL text.
    from sqlalchemy.orm import Session

Strategy = Literal["index", "exact", "index_then_exact"]

OPERATORS: dict[Metric, str] = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}

# When is the exact scan cheaper than the filtered iterative index scan? Measured on pgvector
# 0.8.5 / PostgreSQL 18 at 100k chunks (bench/bench_search.py, "each branch forced", medians):
#
#     filter keeps        exact scan      iterative index scan (ef_search 150)
#     30% (30,000 rows)   390-640 ms      32-36 ms
#      1%  (1,000 rows)   20-36 ms        178 ms (top_k 10) / 630 ms (top_k 100)
#    0.1%    (100 rows)   11-15 ms        490-610 ms, recall 0.54-0.66 at the scan bound
#
# The exact scan costs ~17 us per matching row (each 4 KB vector is TOASTed); the index scan
# ~45 us per tuple it visits, and it visits about candidates / selectivity tuples. They cost the
# same at M* = sqrt(cost ratio x candidates x table rows) matching rows: ~3,000 at 100k rows for
# top_k 10, ~8,000 for top_k 100, ~9,500 at 1M rows for top_k 10. Below it, exact is cheaper
# (and exact); above it, the index. The threshold is computed in the statement from the
# planner's row count (pg_class.reltuples), so it follows the table as it grows.
EXACT_SCAN_COST_RATIO = 3.0
"""Index cost per visited tuple over exact cost per row (measured 2.65; rounded up, which
keeps a little more on the exact side: same speed there, and exact)."""
EXACT_SCAN_MIN_ROWS = 1_000
"""Below this many matching chunks the exact scan answers whatever the table's size (about
20 ms), e.g. on a table never analysed (``reltuples`` unknown)."""

MAX_SCAN_TUPLES = 20_000
"""``hnsw.max_scan_tuples`` (pgvector's default): how far one iterative index scan may walk
before giving up, about 1 s at the measured cost, after which the exact scan answers. Above the
threshold a scan is expected to visit about sqrt(candidates x rows / 3) tuples: 1,000-8,000
up to a million rows."""

KEYWORD_RANK_MAX_ROWS = 300
"""Keyword matches ranked per query: the first 300 found. Every match contains all the query's
words; ranking reads each one's tsvector from its heap page, and a query of common words
("경험", "engineer") matches a good part of a large table. In bench/bench_search.py at 100k
chunks the evaluation queries match 750 chunks (median; up to 9,923): ranking 1,000 of them cost
2.5x what 300 cost at p95, 100 no less than 300 (finding the matches is the floor)."""


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


def _candidates_for(top_k: int) -> int:
    """Rows the (relaxed-order) index scan returns before the re-sort: a little more than
    ``top_k``, so a neighbour emitted slightly late still makes the cut."""
    return 2 * top_k + 10


def _scored(operator: str, where: str) -> str:
    """Chunks of jobs still in search matching ``where``, with the operator's distance. The
    job is checked inside the scan, so removed jobs' chunks (normally deleted with the job)
    can never take the places of live ones before a LIMIT."""
    return f"""
    SELECT jc.id, jc.embedding {operator} CAST(:query AS vector) AS distance
    FROM job_chunks AS jc
    JOIN jobs AS j ON j.id = jc.job_id
    WHERE j.deleted_at IS NULL AND {where}"""


def _index_branch(operator: str, where: str) -> str:
    """The nearest ``:candidates`` chunks by the cosine HNSW index, ``where`` inside the scan."""
    return f"""{_scored(operator, where)}
    ORDER BY jc.embedding <=> CAST(:query AS vector)
    LIMIT :candidates"""


def _answer(candidates: str) -> str:
    """The live chunks among ``candidates`` (a relation of ``id, distance``), best first.
    ``distance + 0``: the planner takes an index scan's output as sorted by distance, but in
    ``relaxed_order`` it is only nearly so; the expression forces a real sort of every
    candidate (and with it, reading all of them) instead of a merge that trusts the order."""
    return f"""
SELECT {_HIT_COLUMNS}
FROM {candidates} AS c
JOIN job_chunks AS jc ON jc.id = c.id
JOIN jobs AS j ON j.id = jc.job_id
WHERE j.deleted_at IS NULL
ORDER BY c.distance + 0, jc.id
LIMIT :top_k"""


def index_statement(query_literal: str, metric: Metric, top_k: int) -> Statement:
    """Unfiltered: the nearest chunks by the iterative HNSW index scan, re-sorted by the
    requested operator."""
    sql = f"""
WITH c AS MATERIALIZED ({_index_branch(OPERATORS[metric], "TRUE")}
){_answer("c")}"""
    return Statement(
        sql, {"query": query_literal, "candidates": _candidates_for(top_k), "top_k": top_k}
    )


def filtered_statement(
    query_literal: str,
    metric: Metric,
    top_k: int,
    chunk_filter: ChunkFilter,
    exact_below: int | None = None,
) -> Statement:
    """Filtered, in one round trip: count the matching chunks, stopping at the threshold
    (``exact_below``, or computed from the table's size: see the measurements above); fewer ->
    exact scan of those rows, else the iterative index scan with the filter inside. Each branch
    is gated by a one-time filter on the count, so only one of them runs. Every row carries the
    count and the threshold, and so does a row of NULLs when nothing matched, so the caller
    knows which branch answered."""
    operator = OPERATORS[metric]
    where = chunk_filter.sql()
    few = "(SELECT matching < exact_below FROM counted)"
    threshold = (
        "SELECT CAST(:exact_below AS integer) AS exact_below"
        if exact_below is not None
        else """SELECT greatest(CAST(:exact_min AS integer), ceil(sqrt(
        CAST(:cost_ratio AS real) * CAST(:candidates AS integer) * greatest(reltuples, 0)
    )))::integer AS exact_below
    FROM pg_class WHERE oid = 'job_chunks'::regclass"""
    )
    sql = f"""
WITH threshold AS MATERIALIZED (
    {threshold}
),
counted AS MATERIALIZED (
    SELECT count(*) AS matching, (SELECT exact_below FROM threshold) AS exact_below
    FROM (
        SELECT 1 FROM job_chunks AS jc WHERE {where}
        LIMIT (SELECT exact_below FROM threshold)
    ) AS m
),
exact AS MATERIALIZED ({_scored(operator, f"{where} AND {few}")}
),
nearest AS MATERIALIZED ({_index_branch(operator, f"{where} AND NOT {few}")}
),
c AS (
    (SELECT id, distance FROM exact ORDER BY distance, id LIMIT :top_k)
    UNION ALL
    (SELECT id, distance FROM nearest)
),
hits AS ({_answer("c")}
)
SELECT counted.matching, counted.exact_below, hits.*
FROM counted LEFT JOIN hits ON TRUE
ORDER BY hits.distance, hits.id"""
    params: dict[str, Any] = {
        "query": query_literal,
        "candidates": _candidates_for(top_k),
        "top_k": top_k,
        **chunk_filter.params(),
    }
    if exact_below is not None:
        params["exact_below"] = exact_below
    else:
        params.update(exact_min=EXACT_SCAN_MIN_ROWS, cost_ratio=EXACT_SCAN_COST_RATIO)
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


def index_settings(ef_search: int) -> dict[str, str | int]:
    """This transaction's settings for an HNSW scan: ``ef_search``, pgvector 0.8's iterative
    scan and its bound, and neither a sequential scan nor a sort where the index can give the
    order. The strategy was chosen on purpose (the count decides it); left to itself, the
    planner, which underestimates reading TOASTed 4 KB vectors, sorts every matching row (found
    by a B-tree, or by a full scan on small tables) instead of walking the HNSW graph. Where
    no plan avoids a sort (the exact branch, the final order) it still sorts."""
    return {
        "hnsw.ef_search": ef_search,
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.max_scan_tuples": MAX_SCAN_TUPLES,
        "enable_seqscan": "off",
        "enable_sort": "off",
    }


def _hit(row: Any) -> ChunkHit | None:
    distance = float(row.distance)
    if not math.isfinite(distance):
        return None  # a zero vector has no direction: NaN is not comparable, nor JSON
    return ChunkHit(
        row.id, row.job_id, row.company_id, row.title, row.chunk_index, row.chunk_text, distance
    )


def _hits(rows: Any) -> list[ChunkHit]:
    return [hit for hit in map(_hit, rows) if hit is not None]


def _exact(
    session: Session | Connection,
    query_literal: str,
    metric: Metric,
    top_k: int,
    chunk_filter: ChunkFilter,
) -> list[ChunkHit]:
    set_local(session, {"enable_seqscan": "on", "enable_sort": "on"})
    statement = exact_statement(query_literal, metric, top_k, chunk_filter)
    return _hits(session.execute(text(statement.sql), statement.params))


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
    inside a transaction (``SET LOCAL``). Two round trips (settings, query); a third only when
    the index scan reached its bound."""
    set_local(session, index_settings(ef_search))
    if not chunk_filter.active:
        statement = index_statement(query_literal, metric, top_k)
        hits = _hits(session.execute(text(statement.sql), statement.params))
        if len(hits) == top_k:
            return SearchOutcome(hits, "index", ef_search)
        return SearchOutcome(
            _exact(session, query_literal, metric, top_k, chunk_filter),
            "index_then_exact",
            ef_search,
        )

    statement = filtered_statement(query_literal, metric, top_k, chunk_filter)
    rows = session.execute(text(statement.sql), statement.params).all()
    hits = _hits(row for row in rows if row.id is not None)
    if rows[0].matching < rows[0].exact_below:
        return SearchOutcome(hits, "exact", None)
    if len(hits) == top_k:
        return SearchOutcome(hits, "index", ef_search)
    return SearchOutcome(
        _exact(session, query_literal, metric, top_k, chunk_filter), "index_then_exact", ef_search
    )


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
    similarity to the query is lower. At most ``KEYWORD_RANK_MAX_ROWS`` matches are ranked.
    Removed jobs (their chunks are deleted with them) are re-checked on the answer only."""
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
    CROSS JOIN (SELECT job_chunk_search_query(:query_text, :match_all) AS terms) AS q
    WHERE jc.search_vector @@ q.terms AND {chunk_filter.sql()}
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
WHERE j.deleted_at IS NULL
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


# --- suggested questions ------------------------------------------------------------------
# A question template's embedding is kept in question_embeddings (migration 0004) with the
# model that made it and the SHA-256 of its text, computed here in SQL from the stored text
# (UTF-8), so "is it current" has one definition: same model, same text hash.

_TEXT_SHA256 = "encode(sha256(convert_to(q.question_text, 'UTF8')), 'hex')"
_CANDIDATES = "(q.job_id = :job_id OR q.job_id IS NULL)"
"""The questions a job may be asked: its own and the general ones."""


def live_job_chunks(session: Session | Connection, job_id: int, model: str) -> int | None:
    """How many of the job's chunks ``model`` embedded; None when the job is not in search
    (unknown or removed)."""
    row = session.execute(
        text(
            "SELECT (SELECT count(*) FROM job_chunks AS jc"
            "        WHERE jc.job_id = j.id AND jc.embedding_model = :model)"
            " FROM jobs AS j WHERE j.id = :job_id AND j.deleted_at IS NULL"
        ),
        {"job_id": job_id, "model": model},
    ).first()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class QuestionText:
    id: int
    text: str
    text_sha256: str


def questions_to_embed(
    session: Session | Connection, job_id: int, model: str
) -> list[QuestionText]:
    """The job's candidate questions without a current embedding by ``model`` (none yet,
    another model's, or of an older text), in id order."""
    rows = session.execute(
        text(
            f"""
SELECT q.id, q.question_text, {_TEXT_SHA256} AS text_sha256
FROM questions AS q
LEFT JOIN question_embeddings AS e ON e.question_id = q.id
WHERE {_CANDIDATES}
  AND (e.question_id IS NULL OR e.embedding_model <> :model
       OR e.text_sha256 <> {_TEXT_SHA256})
ORDER BY q.id"""
        ),
        {"job_id": job_id, "model": model},
    ).all()
    return [QuestionText(int(row[0]), row[1], row[2]) for row in rows]


@dataclass(frozen=True)
class QuestionEmbedding:
    question_id: int
    text_sha256: str
    vector_literal: str


def save_question_embeddings(
    session: Session | Connection, model: str, embeddings: list[QuestionEmbedding]
) -> None:
    """Store (or replace) each question's embedding, in question order (concurrent writers
    lock rows in one order); a question deleted meanwhile is skipped."""
    ordered = sorted(embeddings, key=lambda embedding: embedding.question_id)
    session.execute(
        text(
            """
INSERT INTO question_embeddings (question_id, embedding, embedding_model, text_sha256)
SELECT t.question_id, CAST(t.vector AS vector), :model, t.text_sha256
FROM unnest(CAST(:ids AS integer[]), CAST(:vectors AS text[]), CAST(:hashes AS text[]))
     WITH ORDINALITY AS t(question_id, vector, text_sha256, position)
WHERE EXISTS (SELECT 1 FROM questions AS q WHERE q.id = t.question_id)
ORDER BY t.position
ON CONFLICT (question_id) DO UPDATE SET
    embedding = EXCLUDED.embedding,
    embedding_model = EXCLUDED.embedding_model,
    text_sha256 = EXCLUDED.text_sha256,
    embedded_at = timezone('utc', now())"""
        ),
        {
            "model": model,
            "ids": [embedding.question_id for embedding in ordered],
            "vectors": [embedding.vector_literal for embedding in ordered],
            "hashes": [embedding.text_sha256 for embedding in ordered],
        },
    )


@dataclass(frozen=True)
class SuggestedQuestionRow:
    question: dict[str, Any]
    """The question's columns, as ``questions`` stores them."""
    similarity: float
    chunk_index: int


def suggested_questions(
    session: Session | Connection, job_id: int, model: str, top_k: int
) -> list[SuggestedQuestionRow]:
    """The ``top_k`` candidate questions closest in meaning to the job's description: each
    question's cosine similarity to its nearest chunk of the job (``model``'s vectors on both
    sides; a question without a current embedding is left out), best first, ties by id. Exact:
    the job's few chunks are read once and compared with every candidate."""
    rows = (
        session.execute(
            text(
                f"""
WITH chunks AS MATERIALIZED (
    SELECT jc.chunk_index, jc.embedding FROM job_chunks AS jc
    WHERE jc.job_id = :job_id AND jc.embedding_model = :model
),
nearest AS (
    SELECT q.id, n.chunk_index, n.distance
    FROM questions AS q
    JOIN question_embeddings AS e
      ON e.question_id = q.id AND e.embedding_model = :model AND e.text_sha256 = {_TEXT_SHA256}
    CROSS JOIN LATERAL (
        SELECT c.chunk_index, c.embedding <=> e.embedding AS distance
        FROM chunks AS c
        ORDER BY 2, 1
        LIMIT 1
    ) AS n
    WHERE {_CANDIDATES} AND n.distance <> 'NaN'
    ORDER BY n.distance, q.id
    LIMIT :top_k
)
SELECT q.id, q.job_id, q.question_type, q.question_text, q.expected_keywords,
       q.evaluation_criteria, q.difficulty_level, q.created_at,
       1 - n.distance AS similarity, n.chunk_index
FROM nearest AS n
JOIN questions AS q ON q.id = n.id
ORDER BY n.distance, q.id"""
            ),
            {"job_id": job_id, "model": model, "top_k": top_k},
        )
        .mappings()
        .all()
    )
    return [
        SuggestedQuestionRow(
            question={key: row[key] for key in row if key not in ("similarity", "chunk_index")},
            similarity=float(row["similarity"]),
            chunk_index=int(row["chunk_index"]),
        )
        for row in rows
    ]
