"""Interview sessions, their results and question templates in PostgreSQL: SQL only, on the
caller's connection and transaction (the service owns them). Rows come back as mappings keyed
by column name. SQL text on a Core connection: the ORM (``sqlalchemy.orm``, a tenth of a second
of every cold start) is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from flex_shared.statuses import InterviewStatus

_UTC_NOW = "timezone('utc', now())"

_INTERVIEW_COLUMNS = (
    "id, applicant_id, job_id, status, current_question_index, started_at, completed_at,"
    " created_at, updated_at"
)
_RESULT_COLUMNS = (
    "id, interview_id, question_id, question_text, stt_full_text, logic_score, relevance_score,"
    " technical_score, communication_score, overall_score, keywords, strengths, weaknesses,"
    " ai_feedback, metadata, created_at, updated_at"
)
_QUESTION_COLUMNS = (
    "id, job_id, question_type, question_text, expected_keywords, evaluation_criteria,"
    " difficulty_level, created_at"
)


@dataclass(frozen=True)
class ResultValues:
    """Every column a result upsert writes (all but the key): a replacement overwrites each."""

    question_text: str | None
    stt_full_text: str | None
    logic_score: float | None
    relevance_score: float | None
    technical_score: float | None
    communication_score: float | None
    overall_score: float | None
    keywords: dict[str, list[str]] | None
    strengths: list[str] | None
    weaknesses: list[str] | None
    ai_feedback: str | None
    metadata: dict[str, Any] | None


_RESULT_VALUE_COLUMNS = tuple(field.name for field in fields(ResultValues))
_JSONB_RESULT_COLUMNS = frozenset({"keywords", "strengths", "weaknesses", "metadata"})


def _value_sql(column: str) -> str:
    return f"CAST(:{column} AS JSONB)" if column in _JSONB_RESULT_COLUMNS else f":{column}"


_UPSERT_RESULT = f"""
INSERT INTO interview_results (interview_id, question_id, {", ".join(_RESULT_VALUE_COLUMNS)})
VALUES (:interview_id, :question_id, {", ".join(map(_value_sql, _RESULT_VALUE_COLUMNS))})
ON CONFLICT (interview_id, question_id) DO UPDATE SET
    {", ".join(f"{column} = EXCLUDED.{column}" for column in _RESULT_VALUE_COLUMNS)}
RETURNING {_RESULT_COLUMNS}, xmax = 0 AS inserted"""


def _jsonb(value: Any) -> str | None:
    # Bound as text and CAST to JSONB: absent (None) stays SQL NULL, never JSON 'null'.
    return None if value is None else json.dumps(value)


# --- jobs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    removed: bool
    """Taken out of search (``jobs.deleted_at`` set)."""


def lock_job(connection: Connection, job_id: int) -> JobRow | None:
    """The job, its row locked FOR SHARE: a concurrent removal by ingestion (an UPDATE of
    ``deleted_at``) waits for this transaction instead of slipping past it. None: no such job."""
    row = connection.execute(
        text("SELECT deleted_at FROM jobs WHERE id = :job_id FOR SHARE"), {"job_id": job_id}
    ).one_or_none()
    return None if row is None else JobRow(removed=row.deleted_at is not None)


# --- sessions ----------------------------------------------------------------------------


def insert_interview(connection: Connection, applicant_id: int, job_id: int) -> RowMapping:
    """A new session in ``pending``, at question 0."""
    return (
        connection.execute(
            text(
                "INSERT INTO interview_sessions (applicant_id, job_id, status,"
                " current_question_index)"
                " VALUES (:applicant_id, :job_id, CAST(:status AS interview_status), 0)"
                f" RETURNING {_INTERVIEW_COLUMNS}"
            ),
            {
                "applicant_id": applicant_id,
                "job_id": job_id,
                "status": InterviewStatus.PENDING.value,
            },
        )
        .mappings()
        .one()
    )


def find_interview(connection: Connection, interview_id: int) -> RowMapping | None:
    return (
        connection.execute(
            text(f"SELECT {_INTERVIEW_COLUMNS} FROM interview_sessions WHERE id = :id"),
            {"id": interview_id},
        )
        .mappings()
        .one_or_none()
    )


def interview_status(
    connection: Connection, interview_id: int, *, lock: bool = False
) -> InterviewStatus | None:
    """The session's status; ``lock``: its row locked FOR NO KEY UPDATE until the transaction
    ends (result inserts, FOR KEY SHARE through their foreign key, are not blocked)."""
    sql = "SELECT status FROM interview_sessions WHERE id = :id" + (
        " FOR NO KEY UPDATE" if lock else ""
    )
    status = connection.execute(text(sql), {"id": interview_id}).scalar_one_or_none()
    return None if status is None else InterviewStatus(status)


def update_interview(
    connection: Connection,
    interview_id: int,
    *,
    status: InterviewStatus | None = None,
    stamp_started: bool = False,
    stamp_completed: bool = False,
    current_question_index: int | None = None,
) -> RowMapping:
    """Write the given fields (``stamp_*``: that timestamp set to now); the row as stored,
    ``updated_at`` as the trigger set it."""
    # Fixed SQL fragments only; the values are bound parameters.
    assignments: list[str] = []
    params: dict[str, Any] = {"id": interview_id}
    if status is not None:
        assignments.append("status = CAST(:status AS interview_status)")
        params["status"] = status.value
    if stamp_started:
        assignments.append(f"started_at = {_UTC_NOW}")
    if stamp_completed:
        assignments.append(f"completed_at = {_UTC_NOW}")
    if current_question_index is not None:
        assignments.append("current_question_index = :current_question_index")
        params["current_question_index"] = current_question_index
    return (
        connection.execute(
            text(
                f"UPDATE interview_sessions SET {', '.join(assignments)} WHERE id = :id"
                f" RETURNING {_INTERVIEW_COLUMNS}"
            ),
            params,
        )
        .mappings()
        .one()
    )


# --- results -----------------------------------------------------------------------------


def upsert_result(
    connection: Connection, interview_id: int, question_id: int, values: ResultValues
) -> tuple[RowMapping, bool]:
    """Insert or replace the result for ``(interview_id, question_id)``; True when inserted.

    One statement (INSERT ... ON CONFLICT DO UPDATE) so concurrent writers for the same
    question serialise on the unique index: exactly one inserts, the others replace, none
    fails. ``xmax = 0`` holds only for a row version this statement inserted. RETURNING
    reads the stored row back (``updated_at`` as the trigger set it) in the same statement.
    """
    params = {
        column: _jsonb(value) if column in _JSONB_RESULT_COLUMNS else value
        for column, value in asdict(values).items()
    }
    row = (
        connection.execute(
            text(_UPSERT_RESULT),
            {"interview_id": interview_id, "question_id": question_id, **params},
        )
        .mappings()
        .one()
    )
    return row, bool(row["inserted"])


def interview_exists(connection: Connection, interview_id: int) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM interview_sessions WHERE id = :id"), {"id": interview_id}
        ).first()
        is not None
    )


def list_results(connection: Connection, interview_id: int) -> Sequence[RowMapping]:
    """The interview's results in question order."""
    return (
        connection.execute(
            text(
                f"SELECT {_RESULT_COLUMNS} FROM interview_results"
                " WHERE interview_id = :interview_id ORDER BY question_id"
            ),
            {"interview_id": interview_id},
        )
        .mappings()
        .all()
    )


# --- question templates ------------------------------------------------------------------


def insert_question(
    connection: Connection,
    *,
    job_id: int | None,
    question_type: str,
    question_text: str,
    expected_keywords: Any,
    evaluation_criteria: Any,
    difficulty_level: int | None,
) -> RowMapping:
    return (
        connection.execute(
            text(
                "INSERT INTO questions (job_id, question_type, question_text, expected_keywords,"
                " evaluation_criteria, difficulty_level)"
                " VALUES (:job_id, :question_type, :question_text,"
                " CAST(:expected_keywords AS JSONB), CAST(:evaluation_criteria AS JSONB),"
                f" :difficulty_level) RETURNING {_QUESTION_COLUMNS}"
            ),
            {
                "job_id": job_id,
                "question_type": question_type,
                "question_text": question_text,
                "expected_keywords": _jsonb(expected_keywords),
                "evaluation_criteria": _jsonb(evaluation_criteria),
                "difficulty_level": difficulty_level,
            },
        )
        .mappings()
        .one()
    )


def find_question(connection: Connection, question_id: int) -> RowMapping | None:
    return (
        connection.execute(
            text(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = :id"), {"id": question_id}
        )
        .mappings()
        .one_or_none()
    )


def list_questions(
    connection: Connection,
    *,
    job_id: int | None,
    question_type: str | None,
    after_id: int,
    limit: int,
) -> Sequence[RowMapping]:
    """Up to ``limit`` questions matching the filters with an id above ``after_id``, in id
    order."""
    conditions = ["id > :after_id"]
    params: dict[str, Any] = {"after_id": after_id, "limit": limit}
    if job_id is not None:
        conditions.append("job_id = :job_id")
        params["job_id"] = job_id
    if question_type is not None:
        conditions.append("question_type = :question_type")
        params["question_type"] = question_type
    return (
        connection.execute(
            text(
                f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE {' AND '.join(conditions)}"
                " ORDER BY id LIMIT :limit"
            ),
            params,
        )
        .mappings()
        .all()
    )
