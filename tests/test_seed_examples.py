"""The seed guide's own usage examples, run against the migrated database."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from flex_shared.db import sqlstate
from flex_shared.models import InterviewResult, InterviewSession, InterviewStatus, Job, JobChunk


def unit_vector(seed: int) -> list[float]:
    raw = [math.sin(seed * 7.0 + i * 0.37) for i in range(1024)]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


def add_job(session: Session) -> Job:
    job = Job(company_id=1, title="Backend Engineer", description="Full job description...")
    session.add(job)
    session.commit()
    return job


def test_job_and_chunk_round_trip_with_a_1024_d_embedding(db_session: Session) -> None:
    # Given the seed's example job and one chunk with a 1024-d embedding
    job = add_job(db_session)
    embedding = unit_vector(1)
    db_session.add(
        JobChunk(
            job_id=job.id,
            chunk_text="We are looking for a backend engineer with Python experience...",
            embedding=embedding,
            chunk_index=0,
        )
    )
    db_session.add(
        JobChunk(job_id=job.id, chunk_text="Other", embedding=unit_vector(2), chunk_index=1)
    )
    db_session.commit()

    # When the seed's cosine top-5 query runs
    rows = db_session.execute(
        select(JobChunk.id, JobChunk.chunk_text, JobChunk.job_id)
        # pgvector-python has no module-level cosine_distance (the seed's import); the
        # comparator method is the same operator, <=>.
        .order_by(JobChunk.embedding.cosine_distance(embedding))
        .limit(5)
    ).all()

    # Then the identical chunk ranks first and the vector reads back intact
    assert rows[0].chunk_text.startswith("We are looking for a backend engineer")
    assert rows[0].job_id == job.id
    stored = db_session.scalars(select(JobChunk.embedding).where(JobChunk.chunk_index == 0)).one()
    assert len(stored) == 1024
    assert max(abs(a - b) for a, b in zip(stored, embedding, strict=True)) < 1e-6
    assert job.created_at is not None
    assert job.updated_at is not None


def test_raw_sql_similarity_is_one_minus_cosine_distance(db_session: Session) -> None:
    job = add_job(db_session)
    db_session.add(JobChunk(job_id=job.id, chunk_text="x", embedding=unit_vector(3), chunk_index=0))
    db_session.commit()
    literal = "[" + ",".join(str(v) for v in unit_vector(3)) + "]"
    similarity = db_session.execute(
        text(
            "SELECT 1 - (jc.embedding <=> CAST(:q AS vector)) AS similarity FROM job_chunks jc"
            " ORDER BY jc.embedding <=> CAST(:q AS vector) LIMIT 10"
        ),
        {"q": literal},
    ).scalar_one()
    assert similarity == pytest.approx(1.0, abs=1e-5)


def test_interview_session_and_result_round_trip_with_jsonb(db_session: Session) -> None:
    # Given the seed's interview session and its example result
    job = add_job(db_session)
    session = InterviewSession(applicant_id=123, job_id=job.id, status=InterviewStatus.IN_PROGRESS)
    db_session.add(session)
    db_session.commit()
    keywords = {
        "technical": ["Python", "Django", "REST API"],
        "soft_skills": ["teamwork", "communication"],
        "domain": ["web development", "microservices"],
    }
    result = InterviewResult(
        interview_id=session.id,
        question_id=1,
        question_text="Tell me about your experience with Python",
        stt_full_text="I have been working with Python for 5 years...",
        logic_score=85.5,
        relevance_score=90.0,
        technical_score=88.0,
        communication_score=82.0,
        overall_score=86.375,
        keywords=keywords,
        strengths=["Strong Python expertise", "Good understanding of microservices architecture"],
        weaknesses=[
            "Limited experience with async programming",
            "Could provide more specific examples",
        ],
        ai_feedback="The candidate demonstrated solid technical knowledge...",
        result_metadata={"model": "analysis-v1", "duration_seconds": 93},
    )
    db_session.add(result)
    db_session.commit()
    db_session.expunge_all()

    # When the seed's read-back query runs
    results = db_session.scalars(
        select(InterviewResult).filter(InterviewResult.interview_id == session.id)
    ).all()

    # Then everything reads back as written, and the enum and metadata are stored as the seed says
    assert len(results) == 1
    assert results[0].keywords == keywords
    assert results[0].strengths == [
        "Strong Python expertise",
        "Good understanding of microservices architecture",
    ]
    assert results[0].overall_score == 86.375
    raw = db_session.execute(
        text(
            "SELECT s.status::text, r.metadata ->> 'model' FROM interview_sessions s"
            " JOIN interview_results r ON r.interview_id = s.id"
        )
    ).one()
    assert tuple(raw) == ("in_progress", "analysis-v1")


def test_new_session_defaults_to_pending_at_question_zero(db_session: Session) -> None:
    job = add_job(db_session)
    session = InterviewSession(applicant_id=7, job_id=job.id)
    db_session.add(session)
    db_session.commit()
    db_session.refresh(session)
    assert session.status is InterviewStatus.PENDING
    assert session.current_question_index == 0


def test_updated_at_follows_raw_sql_updates(db_session: Session) -> None:
    job = add_job(db_session)
    before = job.updated_at
    db_session.execute(text("SELECT pg_sleep(0.01)"))
    db_session.execute(update(Job).where(Job.id == job.id).values(title="Senior Backend Engineer"))
    db_session.commit()
    db_session.refresh(job)
    assert job.updated_at > before
    assert job.created_at == before


@pytest.mark.parametrize("score", [-0.5, 100.5])
def test_database_rejects_scores_outside_0_to_100(db_session: Session, score: float) -> None:
    job = add_job(db_session)
    session = InterviewSession(applicant_id=1, job_id=job.id)
    db_session.add(session)
    db_session.commit()
    db_session.add(InterviewResult(interview_id=session.id, question_id=1, logic_score=score))
    with pytest.raises(DBAPIError) as raised:
        db_session.commit()
    assert sqlstate(raised.value) == "23514"  # check_violation
