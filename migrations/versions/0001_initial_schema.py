"""Initial schema: the seed's five tables, the HNSW index, updated_at triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.server_requirements import require_supported_server

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TABLES_WITH_UPDATED_AT = ("jobs", "interview_sessions", "interview_results")


def upgrade() -> None:
    # Before anything is created: PostgreSQL >= 15, and the vector extension (>= 0.8) installed,
    # since the vector type must exist before the first table that uses it.
    require_supported_server(op.get_bind())
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.Column("source_bucket", sa.String(length=255), nullable=True),
        sa.Column("source_key", sa.String(length=1024), nullable=True),
        sa.Column("source_version_id", sa.String(length=1024), nullable=True),
        sa.Column("source_sequencer", sa.String(length=64), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("source_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("deleted_at", sa.TIMESTAMP(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint(
            "source_bucket", "source_key", name=op.f("uq_jobs_source_bucket_source_key")
        ),
    )
    op.create_index(op.f("ix_jobs_company_id"), "jobs", ["company_id"], unique=False)
    op.create_table(
        "interview_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "in_progress", "completed", "failed", name="interview_status"),
            server_default="pending",
            nullable=False,
        ),
        sa.Column(
            "current_question_index", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("started_at", sa.TIMESTAMP(), nullable=True),
        sa.Column("completed_at", sa.TIMESTAMP(), nullable=True),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "current_question_index >= 0",
            name=op.f("ck_interview_sessions_current_question_index_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_interview_sessions_job_id_jobs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interview_sessions")),
    )
    op.create_index(
        op.f("ix_interview_sessions_applicant_id"),
        "interview_sessions",
        ["applicant_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_interview_sessions_job_id"), "interview_sessions", ["job_id"], unique=False
    )
    op.create_table(
        "job_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("chunk_text", sa.Text(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=1024), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("embedding_model", sa.String(length=128), nullable=True),
        sa.Column("embedding_dimensions", sa.Integer(), nullable=True),
        sa.CheckConstraint("chunk_index >= 0", name=op.f("ck_job_chunks_chunk_index_non_negative")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_chunks_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_chunks")),
        sa.UniqueConstraint("job_id", "chunk_index", name=op.f("uq_job_chunks_job_id_chunk_index")),
    )
    op.create_index(
        "idx_job_chunks_embedding_hnsw",
        "job_chunks",
        ["embedding"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index(op.f("ix_job_chunks_company_id"), "job_chunks", ["company_id"], unique=False)
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("question_type", sa.String(length=50), nullable=False),
        sa.Column("question_text", sa.Text(), nullable=False),
        sa.Column("expected_keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("evaluation_criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("difficulty_level", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "difficulty_level >= 1 AND difficulty_level <= 5",
            name=op.f("ck_questions_difficulty_level_range"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_questions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
    )
    op.create_index(
        "ix_questions_job_id_question_type", "questions", ["job_id", "question_type"], unique=False
    )
    op.create_table(
        "interview_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interview_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("question_text", sa.Text(), nullable=True),
        sa.Column("stt_full_text", sa.Text(), nullable=True),
        sa.Column("logic_score", sa.Float(), nullable=True),
        sa.Column("relevance_score", sa.Float(), nullable=True),
        sa.Column("technical_score", sa.Float(), nullable=True),
        sa.Column("communication_score", sa.Float(), nullable=True),
        sa.Column("overall_score", sa.Float(), nullable=True),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("strengths", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("weaknesses", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ai_feedback", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "communication_score >= 0 AND communication_score <= 100",
            name=op.f("ck_interview_results_communication_score_range"),
        ),
        sa.CheckConstraint(
            "logic_score >= 0 AND logic_score <= 100",
            name=op.f("ck_interview_results_logic_score_range"),
        ),
        sa.CheckConstraint(
            "overall_score >= 0 AND overall_score <= 100",
            name=op.f("ck_interview_results_overall_score_range"),
        ),
        sa.CheckConstraint(
            "relevance_score >= 0 AND relevance_score <= 100",
            name=op.f("ck_interview_results_relevance_score_range"),
        ),
        sa.CheckConstraint(
            "technical_score >= 0 AND technical_score <= 100",
            name=op.f("ck_interview_results_technical_score_range"),
        ),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interview_sessions.id"],
            name=op.f("fk_interview_results_interview_id_interview_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interview_results")),
        sa.UniqueConstraint(
            "interview_id",
            "question_id",
            name=op.f("uq_interview_results_interview_id_question_id"),
        ),
    )
    op.create_index(
        "ix_interview_results_keywords",
        "interview_results",
        ["keywords"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"keywords": "jsonb_path_ops"},
    )

    # updated_at follows every UPDATE, from the ORM or from raw SQL alike.
    op.execute(
        """
        CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := timezone('utc', now());
            RETURN NEW;
        END;
        $$
        """
    )
    for table in TABLES_WITH_UPDATED_AT:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
        )


def downgrade() -> None:
    for table in TABLES_WITH_UPDATED_AT:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
    op.execute("DROP FUNCTION IF EXISTS set_updated_at()")
    op.drop_index(
        "ix_interview_results_keywords",
        table_name="interview_results",
        postgresql_using="gin",
        postgresql_ops={"keywords": "jsonb_path_ops"},
    )
    op.drop_table("interview_results")
    op.drop_index("ix_questions_job_id_question_type", table_name="questions")
    op.drop_table("questions")
    op.drop_index(op.f("ix_job_chunks_company_id"), table_name="job_chunks")
    op.drop_index(
        "idx_job_chunks_embedding_hnsw",
        table_name="job_chunks",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.drop_table("job_chunks")
    op.drop_index(op.f("ix_interview_sessions_job_id"), table_name="interview_sessions")
    op.drop_index(op.f("ix_interview_sessions_applicant_id"), table_name="interview_sessions")
    op.drop_table("interview_sessions")
    op.drop_index(op.f("ix_jobs_company_id"), table_name="jobs")
    op.drop_table("jobs")
    sa.Enum(name="interview_status").drop(op.get_bind(), checkfirst=True)
    # The vector extension stays: other database objects may use it, and dropping it
    # needs more privileges than the migration role may have.
