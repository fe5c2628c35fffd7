"""The migrated schema is the seed's: read back from the catalog, not from the models."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

# The seed's columns and PostgreSQL types (seed/database-setup-guide.md).
SEED_COLUMNS: dict[str, dict[str, str]] = {
    "jobs": {
        "id": "integer",
        "company_id": "integer",
        "title": "character varying(500)",
        "description": "text",
        "created_at": "timestamp without time zone",
        "updated_at": "timestamp without time zone",
    },
    "job_chunks": {
        "id": "integer",
        "job_id": "integer",
        "chunk_text": "text",
        "embedding": "vector(1024)",
        "chunk_index": "integer",
        "created_at": "timestamp without time zone",
    },
    "interview_sessions": {
        "id": "integer",
        "applicant_id": "integer",
        "job_id": "integer",
        "status": "interview_status",
        "current_question_index": "integer",
        "started_at": "timestamp without time zone",
        "completed_at": "timestamp without time zone",
        "created_at": "timestamp without time zone",
    },
    "interview_results": {
        "id": "integer",
        "interview_id": "integer",
        "question_id": "integer",
        "question_text": "text",
        "stt_full_text": "text",
        "logic_score": "double precision",
        "relevance_score": "double precision",
        "technical_score": "double precision",
        "communication_score": "double precision",
        "overall_score": "double precision",
        "keywords": "jsonb",
        "strengths": "jsonb",
        "weaknesses": "jsonb",
        "ai_feedback": "text",
        "metadata": "jsonb",
        "created_at": "timestamp without time zone",
        "updated_at": "timestamp without time zone",
    },
    "questions": {
        "id": "integer",
        "job_id": "integer",
        "question_type": "character varying(50)",
        "question_text": "text",
        "expected_keywords": "jsonb",
        "evaluation_criteria": "jsonb",
        "difficulty_level": "integer",
        "created_at": "timestamp without time zone",
    },
}


def column_types(engine: Engine, table: str) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
                " FROM pg_attribute a WHERE a.attrelid = CAST(:table AS regclass)"
                " AND a.attnum > 0 AND NOT a.attisdropped"
            ),
            {"table": table},
        )
        return {name: type_ for name, type_ in rows}


def test_every_seed_column_exists_with_the_seed_type(db_engine: Engine) -> None:
    for table, seed_columns in SEED_COLUMNS.items():
        actual = column_types(db_engine, table)
        for column, seed_type in seed_columns.items():
            assert actual.get(column) == seed_type, f"{table}.{column}"


def test_status_enum_stores_the_seed_lowercase_values(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        labels = connection.execute(
            text(
                "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                " WHERE t.typname = 'interview_status' ORDER BY e.enumsortorder"
            )
        ).scalars()
        assert list(labels) == ["pending", "in_progress", "completed", "failed"]


def test_hnsw_index_is_the_seed_definition(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        definition = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_job_chunks_embedding_hnsw'"
            )
        ).scalar_one()
    assert definition == (
        "CREATE INDEX idx_job_chunks_embedding_hnsw ON public.job_chunks"
        " USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')"
    )


def test_foreign_keys_are_the_seeds(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT cl.relname, a.attname, ref.relname"
                " FROM pg_constraint c"
                " JOIN pg_class cl ON cl.oid = c.conrelid"
                " JOIN pg_class ref ON ref.oid = c.confrelid"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
                " WHERE c.contype = 'f'"
            )
        ).all()
    assert {tuple(row) for row in rows} == {
        ("job_chunks", "job_id", "jobs"),
        ("interview_sessions", "job_id", "jobs"),
        ("interview_results", "interview_id", "interview_sessions"),
        ("questions", "job_id", "jobs"),
        ("question_embeddings", "question_id", "questions"),  # 0004: goes with its question
    }


def test_nullability_follows_the_seed_meaning(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        nullable: dict[str, str] = dict(
            connection.execute(
                text(
                    "SELECT table_name || '.' || column_name, is_nullable"
                    " FROM information_schema.columns WHERE table_schema = 'public'"
                )
            ).all()
        )
    # questions.job_id is the seed's only nullable foreign key.
    assert nullable["questions.job_id"] == "YES"
    for required in ("job_chunks.embedding", "job_chunks.job_id", "interview_sessions.job_id"):
        assert nullable[required] == "NO", required
