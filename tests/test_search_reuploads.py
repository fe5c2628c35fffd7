"""Re-uploads leave dead row versions in the HNSW graph until VACUUM, and removed jobs keep
their chunks: near-identical copies crowd the index's candidate list. Results must still hold
``top_k`` live rows."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import ModuleType

import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from flex_shared import db
from flex_shared.embeddings import get_embedder
from flex_shared.models import Job, JobChunk
from tests.test_search_support import JOBS, call, insert_jobs, rest_event

PARAGRAPHS = tuple(
    f"Platform team, part {n}: operate Kubernetes clusters, Terraform modules and on-call"
    f" rotations for the payments platform; incident reviews and capacity planning {n}."
    for n in range(10)
)
QUERY = "operate Kubernetes clusters and Terraform for the payments platform"


@pytest.fixture
def no_autovacuum(db_engine: Engine) -> Iterator[Engine]:
    # Keep the dead versions in place, as on a busy table between autovacuum runs.
    with db_engine.begin() as connection:
        connection.execute(text("ALTER TABLE job_chunks SET (autovacuum_enabled = false)"))
    yield db_engine
    with db_engine.begin() as connection:
        connection.execute(text("ALTER TABLE job_chunks RESET (autovacuum_enabled)"))


@pytest.fixture
def search_module(load_function: Callable[[str], ModuleType]) -> tuple[ModuleType, ModuleType]:
    app = load_function("search")
    return app, sys.modules["flex_search.store"]


def _chunks(paragraphs: tuple[str, ...], company_id: int) -> list[JobChunk]:
    vectors = get_embedder().embed_documents(list(paragraphs))
    return [
        JobChunk(chunk_text=p, embedding=v, chunk_index=i, company_id=company_id)
        for i, (p, v) in enumerate(zip(paragraphs, vectors, strict=True))
    ]


def _live_exact_ids(session: Session, literal: str, top_k: int) -> list[int]:
    with session.begin():
        db.set_local(session, {"enable_indexscan": "off"})
        rows = session.execute(
            text(
                "SELECT jc.id FROM job_chunks AS jc JOIN jobs AS j ON j.id = jc.job_id"
                " WHERE j.deleted_at IS NULL"
                " ORDER BY jc.embedding <=> CAST(:q AS vector), jc.id LIMIT :k"
            ),
            {"q": literal, "k": top_k},
        ).all()
    return [row[0] for row in rows]


def test_many_reuploads_still_return_top_k(no_autovacuum, db_session, search_module):
    # Given other jobs, and a platform job uploaded 30 times with small edits each time
    app, store = search_module
    insert_jobs(db_session, JOBS)
    job = Job(company_id=5, title="Platform Engineer", description="\n\n".join(PARAGRAPHS))
    job.chunks = _chunks(PARAGRAPHS, 5)
    db_session.add(job)
    db_session.commit()
    for version in range(1, 31):
        db_session.execute(delete(JobChunk).where(JobChunk.job_id == job.id))
        edited = tuple(f"{p} Revision {version}." for p in PARAGRAPHS)
        db_session.add_all([JobChunk(job_id=job.id, **_fields(c)) for c in _chunks(edited, 5)])
        db_session.commit()

    # When searching without a filter for ten chunks like the platform job's
    cache = sys.modules["flex_search.query_embedding"].QUERY_CACHE
    literal = cache.put(QUERY, get_embedder().embed_query(QUERY))
    with Session(db.get_engine()) as session, session.begin():
        outcome = store.search_chunks(
            session,
            literal,
            metric="cosine",
            top_k=10,
            chunk_filter=store.ChunkFilter(),
            ef_search=40,
        )
    status, body = call(app, rest_event("POST", "/search", body={"query": QUERY, "top_k": 10}))

    # Then ten live chunks, the exact nearest ones: the iterative index scan walked past the
    # 300 dead versions (ef_search 40 alone would have come back short) without a fallback
    expected = _live_exact_ids(db_session, literal, 10)
    assert len(expected) == 10
    assert outcome.strategy == "index"
    assert [hit.chunk_id for hit in outcome.hits] == expected
    assert status == 200
    assert [result["chunk_id"] for result in body["results"]] == expected
    assert all("Revision 30." in result["chunk_text"] for result in body["results"])


def _fields(chunk: JobChunk) -> dict[str, object]:
    return {
        "chunk_text": chunk.chunk_text,
        "embedding": chunk.embedding,
        "chunk_index": chunk.chunk_index,
        "company_id": chunk.company_id,
    }


def test_removed_copies_do_not_crowd_out_live_jobs(no_autovacuum, db_session, search_module):
    # Given 20 removed copies of the platform job and one live one, all in the index
    app, _ = search_module
    for copy in range(21):
        job = Job(
            company_id=5,
            title=f"Platform Engineer #{copy}",
            description="\n\n".join(PARAGRAPHS),
            deleted_at=None if copy == 20 else datetime.now(UTC),
        )
        job.chunks = _chunks(PARAGRAPHS, 5)
        db_session.add(job)
    db_session.commit()

    # When searching for five chunks, with and without the company filter
    for extra in ({}, {"company_id": 5}):
        status, body = call(
            app, rest_event("POST", "/search", body={"query": QUERY, "top_k": 5, **extra})
        )
        # Then five results, all of the live copy
        assert status == 200
        assert len(body["results"]) == 5
        assert {result["job_title"] for result in body["results"]} == {"Platform Engineer #20"}
