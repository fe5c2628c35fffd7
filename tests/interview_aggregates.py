"""The per-job interview aggregates (migration 0004) against their definitions, the
``*_computed`` views over the interview tables: shared by the tests of insights and of
erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

AGGREGATES = {
    "job_applicant_stats": "job_id, applicant_id",
    "job_score_counts": "job_id, score, value",
    "job_score_buckets": "job_id, score, bucket",
    "job_keyword_counts": "job_id, category, keyword",
    "job_question_counts": "job_id, question_id",
    "job_question_keyword_counts": "job_id, question_id, keyword",
}


def _rows(connection: Connection, relation: str, key: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(
        connection.execute(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = :view ORDER BY ordinal_position"
            ),
            {"view": relation if relation.endswith("_computed") else f"{relation}_computed"},
        ).scalars()
    )
    rows = connection.execute(text(f"SELECT {columns} FROM {relation} ORDER BY {key}"))
    return [tuple(row) for row in rows]


def assert_aggregates_match_their_definitions(engine: Engine) -> None:
    with engine.connect() as connection:
        for table, key in AGGREGATES.items():
            kept = _rows(connection, table, key)
            computed = _rows(connection, f"{table}_computed", key)
            assert kept == computed, table


def aggregate_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in AGGREGATES
        }
