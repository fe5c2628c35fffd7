"""Search on a table large enough that PostgreSQL walks the HNSW index: filters still return
``min(top_k, matching)`` rows, and re-uploads' dead row versions do not make results short."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from flex_shared import db
from tests.test_search_support import call, rest_event

CHUNKS_PER_JOB = 10
JOBS = 300  # 3,000 chunks of random 1024-d unit vectors
SELECTIVE_COMPANY = 7  # jobs 1-3: 30 chunks, 1% of the table
BROAD_COMPANY = 1  # jobs 4-153: 1,500 chunks, 50% of the table

_RANDOM_UNIT_VECTOR = """(
    SELECT array_agg(x / norm ORDER BY i)::vector
    FROM unnest(raw.v) WITH ORDINALITY AS u(x, i),
         (SELECT sqrt(sum(y * y)) AS norm FROM unnest(raw.v) AS y) AS n
)"""


HNSW_DDL = (
    "CREATE INDEX idx_job_chunks_embedding_hnsw ON job_chunks"
    " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
)


def _fill(engine: Engine, jobs: int, *, company_of: str) -> None:
    """Bulk insert, with the HNSW index rebuilt afterwards exactly as the migration defines it
    (3,000 incremental index inserts take a minute on a busy machine; a build, two seconds)."""
    with engine.begin() as connection:
        definition = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_job_chunks_embedding_hnsw'"
            )
        ).scalar_one()
        connection.execute(text("DROP INDEX idx_job_chunks_embedding_hnsw"))
        connection.execute(text("SELECT setseed(0.42)"))
        connection.execute(
            text(
                "INSERT INTO jobs (id, company_id, title, description)"
                f" SELECT g, {company_of}, 'Job ' || g, 'Synthetic job ' || g"
                " FROM generate_series(1, :jobs) AS g"
            ),
            {"jobs": jobs},
        )
        connection.execute(
            text(
                f"""
WITH raw AS (
    SELECT c AS n, array_agg(random() - 0.5 ORDER BY d) AS v
    FROM generate_series(1, :chunks) AS c CROSS JOIN generate_series(1, 1024) AS d
    GROUP BY c
)
INSERT INTO job_chunks (job_id, company_id, chunk_text, embedding, chunk_index)
SELECT (raw.n - 1) / {CHUNKS_PER_JOB} + 1, j.company_id, 'chunk ' || raw.n,
       {_RANDOM_UNIT_VECTOR}, mod(raw.n - 1, {CHUNKS_PER_JOB})
FROM raw JOIN jobs AS j ON j.id = (raw.n - 1) / {CHUNKS_PER_JOB} + 1"""
            ),
            {"chunks": jobs * CHUNKS_PER_JOB},
        )
        connection.execute(
            text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), max(id)) FROM jobs")
        )
        connection.execute(text(HNSW_DDL))
        rebuilt = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_job_chunks_embedding_hnsw'"
            )
        ).scalar_one()
        assert rebuilt == definition
        connection.execute(text("ANALYZE jobs"))
        connection.execute(text("ANALYZE job_chunks"))


def _truncate(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE jobs, job_chunks RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def big_table(database_url: str) -> Iterator[Engine]:
    engine = db.get_engine()
    _truncate(engine)
    _fill(
        engine,
        JOBS,
        company_of=(
            f"CASE WHEN g <= 3 THEN {SELECTIVE_COMPANY}"
            f" WHEN g <= 153 THEN {BROAD_COMPANY} ELSE 2 + mod(g, 5) END"
        ),
    )
    yield engine
    _truncate(engine)


@pytest.fixture
def search_module(load_function: Callable[[str], ModuleType]) -> tuple[ModuleType, ModuleType]:
    app = load_function("search")
    return app, sys.modules["search_store"]


def _query_vector(engine: Engine, seed: float = 0.7) -> str:
    """A random unit vector (not in the table) as a pgvector literal."""
    with engine.begin() as connection:
        connection.execute(text("SELECT setseed(:seed)"), {"seed": seed})
        literal = connection.execute(
            text(
                f"""
WITH raw AS (SELECT array_agg(random() - 0.5 ORDER BY d) AS v FROM generate_series(1, 1024) d)
SELECT {_RANDOM_UNIT_VECTOR}::text FROM raw"""
            )
        ).scalar_one()
    return str(literal)


def _explain(engine: Engine, statement: Any, prepare: Callable[[Any], None]) -> str:
    with engine.begin() as connection:
        prepare(connection)
        rows = connection.execute(text("EXPLAIN " + statement.sql), statement.params).all()
    return "\n".join(row[0] for row in rows)


def _search(store: ModuleType, literal: str, **kwargs: Any) -> Any:
    kwargs.setdefault("metric", "cosine")
    kwargs.setdefault("ef_search", 100)
    with Session(db.get_engine()) as session, session.begin():
        return store.search_chunks(session, literal, **kwargs)


def _exact_ids(engine: Engine, literal: str, top_k: int, where: str = "TRUE") -> list[int]:
    # Brute force, no index: the order every answer must reproduce.
    with engine.begin() as connection:
        db.set_local(connection, "enable_indexscan", "off")
        rows = connection.execute(
            text(
                f"SELECT id FROM job_chunks AS jc WHERE {where}"
                " ORDER BY embedding <=> CAST(:q AS vector), id LIMIT :k"
            ),
            {"q": literal, "k": top_k},
        ).all()
    return [row[0] for row in rows]


def test_index_path_uses_the_hnsw_index_and_exact_path_does_not(big_table, search_module):
    _, store = search_module
    literal = _query_vector(big_table)
    no_filter = store.ChunkFilter()
    broad = store.ChunkFilter(company_id=BROAD_COMPANY)

    for chunk_filter in (no_filter, broad):
        statement = store.index_statement(literal, "cosine", 10, 40, chunk_filter)
        plan = _explain(big_table, statement, lambda c: store.use_index(c, 100))
        assert "idx_job_chunks_embedding_hnsw" in plan, plan
    for metric in ("cosine", "l2", "inner_product"):
        statement = store.exact_statement(literal, metric, 10, broad)
        plan = _explain(big_table, statement, lambda c: None)
        assert "idx_job_chunks_embedding_hnsw" not in plan, plan


def test_naive_post_filter_would_come_back_short(big_table, search_module):
    # The problem being solved: the index hands over ef_search rows, then the filter runs.
    literal = _query_vector(big_table)
    with big_table.begin() as connection:
        db.set_local(connection, "hnsw.ef_search", 40)
        plan = connection.execute(
            text(
                "EXPLAIN SELECT id FROM job_chunks WHERE company_id = :c"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT 20"
            ),
            {"c": SELECTIVE_COMPANY, "q": literal},
        ).all()
        naive = connection.execute(
            text(
                "SELECT id FROM (SELECT id, company_id FROM job_chunks"
                " ORDER BY embedding <=> CAST(:q AS vector) LIMIT 20) AS c"
                " WHERE company_id = :c"
            ),
            {"c": SELECTIVE_COMPANY, "q": literal},
        ).all()
    assert plan  # the planner may pick either plan for the inline filter; ours decides
    assert len(naive) < 20


@pytest.mark.parametrize("top_k", [1, 20, 30, 100])
def test_selective_company_filter_returns_min_top_k_matching_exactly(
    big_table, search_module, top_k
):
    # Given 30 of 3,000 chunks belong to the company
    _, store = search_module
    literal = _query_vector(big_table, seed=0.11 * top_k % 1)

    # When searching within it
    outcome = _search(
        store, literal, top_k=top_k, chunk_filter=store.ChunkFilter(company_id=SELECTIVE_COMPANY)
    )

    # Then min(top_k, 30) results, the exact nearest ones, all of that company
    expected = _exact_ids(big_table, literal, top_k, f"company_id = {SELECTIVE_COMPANY}")
    assert len(expected) == min(top_k, 30)
    assert [hit.chunk_id for hit in outcome.hits] == expected
    assert {hit.company_id for hit in outcome.hits} == {SELECTIVE_COMPANY}
    assert outcome.strategy == "exact"


def test_selective_filter_through_the_api_returns_top_k(big_table, search_module):
    app, _ = search_module
    status, body = call(
        app,
        rest_event(
            "POST",
            "/search",
            body={"query": "any words at all", "top_k": 25, "company_id": SELECTIVE_COMPANY},
        ),
    )
    assert status == 200
    assert len(body["results"]) == 25
    assert {result["company_id"] for result in body["results"]} == {SELECTIVE_COMPANY}


def test_broad_filter_over_fetches_through_the_index(big_table, search_module, monkeypatch):
    # Given a filter keeping half the table, above the exact-scan threshold
    _, store = search_module
    monkeypatch.setattr(store, "EXACT_SCAN_MAX_ROWS", 100)
    literal = _query_vector(big_table, seed=0.3)

    outcome = _search(
        store, literal, top_k=50, chunk_filter=store.ChunkFilter(company_id=BROAD_COMPANY)
    )

    # Then the index answers, with ef_search raised for the over-fetch, and top_k results
    assert outcome.strategy == "index"
    assert outcome.ef_search >= 50 / 0.5 * store.OVERFETCH_FACTOR
    assert len(outcome.hits) == 50
    assert {hit.company_id for hit in outcome.hits} == {BROAD_COMPANY}
    distances = [hit.distance for hit in outcome.hits]
    assert distances == sorted(distances)
    exact = set(_exact_ids(big_table, literal, 50, f"company_id = {BROAD_COMPANY}"))
    assert len(exact & {hit.chunk_id for hit in outcome.hits}) >= 40  # approximate, not random


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_unfiltered_index_ranking_equals_exact_ranking(big_table, search_module, metric):
    # Unit vectors: the cosine index ranks like every metric. Against brute force by the
    # requested operator, the index's top 10 must agree (high ef: recall is not under test).
    _, store = search_module
    literal = _query_vector(big_table, seed=0.5)
    operator = store.OPERATORS[metric]
    with big_table.begin() as connection:
        db.set_local(connection, "enable_indexscan", "off")
        exact = [
            row[0]
            for row in connection.execute(
                text(
                    f"SELECT id FROM job_chunks ORDER BY embedding {operator}"
                    " CAST(:q AS vector), id LIMIT 10"
                ),
                {"q": literal},
            )
        ]
    outcome = _search(
        store, literal, top_k=10, metric=metric, chunk_filter=store.ChunkFilter(), ef_search=1000
    )
    assert outcome.strategy == "index"
    assert [hit.chunk_id for hit in outcome.hits] == exact


def test_unfiltered_search_returns_top_k_at_the_maximum(big_table, search_module):
    app, _ = search_module
    status, body = call(app, rest_event("POST", "/search", body={"query": "backend", "top_k": 100}))
    assert status == 200
    assert len(body["results"]) == 100
    assert len({result["chunk_id"] for result in body["results"]}) == 100
