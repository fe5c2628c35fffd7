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
