"""SQLAlchemy models of the seed's five tables (names and types exactly as the seed).

Timestamps are the seed's ``TIMESTAMP`` (without time zone) and hold UTC, set by the database;
``updated_at`` is kept current by a trigger (see the initial migration), so raw SQL updates
maintain it too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    TIMESTAMP,
    CheckConstraint,
    Computed,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .config import SCHEMA_EMBEDDING_DIMENSIONS
from .statuses import InterviewStatus as InterviewStatus

UTC_NOW = text("timezone('utc', now())")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(TIMESTAMP(), nullable=False, server_default=UTC_NOW)


def _updated_at() -> Mapped[datetime]:
    return mapped_column(TIMESTAMP(), nullable=False, server_default=UTC_NOW)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    # Extras: where the job came from (a job is identified by its S3 location) and its state.
    source_bucket: Mapped[str | None] = mapped_column(String(255))
    source_key: Mapped[str | None] = mapped_column(String(1024))
    source_version_id: Mapped[str | None] = mapped_column(String(1024))
    source_sequencer: Mapped[str | None] = mapped_column(String(64))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    source_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMP())

    chunks: Mapped[list[JobChunk]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="JobChunk.chunk_index",
    )
    interview_sessions: Mapped[list[InterviewSession]] = relationship(back_populates="job")
    questions: Mapped[list[Question]] = relationship(back_populates="job", passive_deletes=True)

    __table_args__ = (UniqueConstraint("source_bucket", "source_key"),)


class JobChunk(Base):
    __tablename__ = "job_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    )
    chunk_text: Mapped[str] = mapped_column(Text, nullable=False)
    embedding: Mapped[Any] = mapped_column(VECTOR(SCHEMA_EMBEDDING_DIMENSIONS), nullable=False)
    chunk_index: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _created_at()

    # Extras: the job's company (denormalised so filtered search reads one table) and
    # which model produced the embedding.
    company_id: Mapped[int | None] = mapped_column(Integer, index=True)
    embedding_model: Mapped[str | None] = mapped_column(String(128))
    embedding_dimensions: Mapped[int | None] = mapped_column(Integer)
    # Keyword search (migration 0003): computed by PostgreSQL from chunk_text, never written.
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("job_chunk_search_vector(chunk_text)", persisted=True), nullable=False
    )

    job: Mapped[Job] = relationship(back_populates="chunks")

    __table_args__ = (
        UniqueConstraint("job_id", "chunk_index"),
        CheckConstraint("chunk_index >= 0", name="chunk_index_non_negative"),
        Index(
            "idx_job_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_job_chunks_search_vector", "search_vector", postgresql_using="gin"),
    )


class InterviewSession(Base):
    __tablename__ = "interview_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applicant_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    job_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("jobs.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    status: Mapped[InterviewStatus] = mapped_column(
        Enum(
            InterviewStatus,
            name="interview_status",
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        ),
        nullable=False,
        server_default=InterviewStatus.PENDING.value,
    )
    current_question_index: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0")
    )
    started_at: Mapped[datetime | None] = mapped_column(TIMESTAMP())
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP())
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    job: Mapped[Job] = relationship(back_populates="interview_sessions")
    results: Mapped[list[InterviewResult]] = relationship(
        back_populates="interview",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="InterviewResult.question_id",
    )

    __table_args__ = (
        CheckConstraint("current_question_index >= 0", name="current_question_index_non_negative"),
        # The (job, applicant) aggregates are recomputed from that pair's sessions (0004).
        Index("ix_interview_sessions_job_id_applicant_id", "job_id", "applicant_id"),
    )


_SCORE_COLUMNS = (
    "logic_score",
    "relevance_score",
    "technical_score",
    "communication_score",
    "overall_score",
)


class InterviewResult(Base):
    __tablename__ = "interview_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interview_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("interview_sessions.id", ondelete="CASCADE"), nullable=False
    )
    question_id: Mapped[int] = mapped_column(Integer, nullable=False)
    question_text: Mapped[str | None] = mapped_column(Text)
    stt_full_text: Mapped[str | None] = mapped_column(Text)
    logic_score: Mapped[float | None] = mapped_column(Float)
    relevance_score: Mapped[float | None] = mapped_column(Float)
    technical_score: Mapped[float | None] = mapped_column(Float)
    communication_score: Mapped[float | None] = mapped_column(Float)
    overall_score: Mapped[float | None] = mapped_column(Float)
    keywords: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    strengths: Mapped[list[str] | None] = mapped_column(JSONB)
    weaknesses: Mapped[list[str] | None] = mapped_column(JSONB)
    ai_feedback: Mapped[str | None] = mapped_column(Text)
    # ``metadata`` is reserved on declarative classes; the column keeps the seed's name.
    result_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    # Extra: the session's job, copied by a trigger on insert (0004), so a result deleted with
    # its session still knows which job's aggregates to decrement.
    job_id: Mapped[int] = mapped_column(Integer, nullable=False)

    interview: Mapped[InterviewSession] = relationship(back_populates="results")

    __table_args__ = (
        UniqueConstraint("interview_id", "question_id"),
        *(
            CheckConstraint(f"{column} >= 0 AND {column} <= 100", name=f"{column}_range")
            for column in _SCORE_COLUMNS
        ),
        Index(
            "ix_interview_results_keywords",
            "keywords",
            postgresql_using="gin",
            postgresql_ops={"keywords": "jsonb_path_ops"},
        ),
    )


class Question(Base):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True
    )
    question_type: Mapped[str] = mapped_column(String(50), nullable=False)
    question_text: Mapped[str] = mapped_column(Text, nullable=False)
    expected_keywords: Mapped[Any | None] = mapped_column(JSONB)
    evaluation_criteria: Mapped[Any | None] = mapped_column(JSONB)
    difficulty_level: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()

    job: Mapped[Job | None] = relationship(back_populates="questions")

    __table_args__ = (
        CheckConstraint(
            "difficulty_level >= 1 AND difficulty_level <= 5", name="difficulty_level_range"
        ),
        Index("ix_questions_job_id_question_type", "job_id", "question_type"),
    )


# --- hiring insights (migration 0004) ------------------------------------------------------
# Per-job aggregates of the interviews, kept equal to their ``*_computed`` views by triggers in
# the writing transaction; the applicants and insights routes read only these.


def _job_id_key() -> Mapped[int]:
    # No foreign key: the row exists only while the job has interviews, which keep the job
    # (interview_sessions.job_id is RESTRICT), and a check per new row would cost every write.
    return mapped_column(Integer, primary_key=True, autoincrement=False)


def _results_count() -> Mapped[int]:
    return mapped_column(Integer, nullable=False)


class JobApplicantStats(Base):
    """One row per (job, applicant) with a session: sessions by status, result counts, sums and
    counts of each score over the results of completed sessions, the last completion."""

    __tablename__ = "job_applicant_stats"

    job_id: Mapped[int] = _job_id_key()
    applicant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pending_sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    in_progress_sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completed_sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed_sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    results: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completed_results: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    overall_sum: Mapped[Decimal | None] = mapped_column(Numeric)
    overall_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    logic_sum: Mapped[Decimal | None] = mapped_column(Numeric)
    logic_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    relevance_sum: Mapped[Decimal | None] = mapped_column(Numeric)
    relevance_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    technical_sum: Mapped[Decimal | None] = mapped_column(Numeric)
    technical_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    communication_sum: Mapped[Decimal | None] = mapped_column(Numeric)
    communication_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP())
    # Minus the average overall score, +Infinity without one: the ranking, ascending.
    ranking_key: Mapped[float] = mapped_column(
        Float,
        Computed(
            "coalesce(-(overall_sum / nullif(overall_count, 0))::double precision, 'Infinity')",
            persisted=True,
        ),
        nullable=False,
    )

    __table_args__ = (
        Index("ix_job_applicant_stats_ranking", "job_id", "ranking_key", "applicant_id"),
    )


class JobScoreCount(Base):
    """How many of the job's results have ``value`` as their ``score`` (``overall``, ...)."""

    __tablename__ = "job_score_counts"

    job_id: Mapped[int] = _job_id_key()
    score: Mapped[str] = mapped_column(String(16, collation="C"), primary_key=True)
    value: Mapped[float] = mapped_column(Float, primary_key=True)
    results: Mapped[int] = _results_count()


class JobScoreBucket(Base):
    """How many of the job's results have a ``score`` in ``[bucket, bucket + 1)``, and the
    exact sum of those scores."""

    __tablename__ = "job_score_buckets"

    job_id: Mapped[int] = _job_id_key()
    score: Mapped[str] = mapped_column(String(16, collation="C"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    results: Mapped[int] = _results_count()
    total: Mapped[Decimal] = mapped_column(Numeric, nullable=False)


class JobKeywordCount(Base):
    """How many of the job's results mention ``keyword`` under ``category`` (lower case)."""

    __tablename__ = "job_keyword_counts"

    job_id: Mapped[int] = _job_id_key()
    category: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    keyword: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    results: Mapped[int] = _results_count()

    __table_args__ = (
        Index(
            "ix_job_keyword_counts_top",
            "job_id",
            "category",
            text("results DESC"),
            "keyword",
        ),
    )


class JobQuestionCount(Base):
    """How many of the job's results answer ``question_id``."""

    __tablename__ = "job_question_counts"

    job_id: Mapped[int] = _job_id_key()
    question_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    results: Mapped[int] = _results_count()


class JobQuestionKeywordCount(Base):
    """How many of the job's results answering ``question_id`` mention ``keyword`` (under any
    category)."""

    __tablename__ = "job_question_keyword_counts"

    job_id: Mapped[int] = _job_id_key()
    question_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    keyword: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    results: Mapped[int] = _results_count()


class QuestionEmbedding(Base):
    """A question template's embedding, the model that made it and the SHA-256 of the text it
    was made from (search embeds a question again only when either differs)."""

    __tablename__ = "question_embeddings"

    question_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True
    )
    embedding: Mapped[Any] = mapped_column(VECTOR(SCHEMA_EMBEDDING_DIMENSIONS), nullable=False)
    embedding_model: Mapped[str] = mapped_column(String(128), nullable=False)
    text_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    embedded_at: Mapped[datetime] = _created_at()


TABLES_WITH_UPDATED_AT = ("jobs", "interview_sessions", "interview_results")
