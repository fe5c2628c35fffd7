"""Interview sessions, their results and question templates: the domain rules and data access.

Knows nothing of HTTP: takes validated requests and an open Core connection (one transaction),
returns rows as mappings keyed by column name, raises :mod:`flex_shared.errors`. SQL text only:
the ORM (``sqlalchemy.orm``, a tenth of a second of every cold start) is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from flex_interviews.schemas import (
    CreateInterviewRequest,
    CreateQuestionRequest,
    ResultRequest,
    UpdateInterviewRequest,
)
from flex_shared.errors import Conflict, InvalidInput, NotFound
from flex_shared.schemas import INT4_MAX
from flex_shared.statuses import InterviewStatus

ALLOWED_TRANSITIONS: dict[InterviewStatus, frozenset[InterviewStatus]] = {
    InterviewStatus.PENDING: frozenset({InterviewStatus.IN_PROGRESS, InterviewStatus.FAILED}),
    InterviewStatus.IN_PROGRESS: frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED}),
    InterviewStatus.COMPLETED: frozenset(),
    InterviewStatus.FAILED: frozenset(),
}
"""The session lifecycle; every other change of status is a conflict."""

_FINISHED = frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED})

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

# The columns an upsert writes (all but the key): a replacement overwrites every one of them.
_RESULT_VALUE_COLUMNS = (
    "question_text",
    "stt_full_text",
    "logic_score",
    "relevance_score",
    "technical_score",
    "communication_score",
    "overall_score",
    "keywords",
    "strengths",
    "weaknesses",
    "ai_feedback",
    "metadata",
)
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


def _require_id(resource: str, identifier: int) -> None:
    # An id outside the column's range cannot exist; answer 404 without asking the database
    # (which would reject the parameter as out of range).
    if not 1 <= identifier <= INT4_MAX:
        raise NotFound(resource, identifier)


def _require_live_job(connection: Connection, job_id: int) -> None:
    """The job exists and is still published. FOR SHARE: a concurrent removal by ingestion
    (an UPDATE of ``deleted_at``) waits for this transaction instead of slipping past it."""
    row = connection.execute(
        text("SELECT deleted_at FROM jobs WHERE id = :job_id FOR SHARE"), {"job_id": job_id}
    ).one_or_none()
    if row is None:
        raise InvalidInput(
            f"job_id: job {job_id} does not exist",
            details=[{"field": "job_id", "message": f"job {job_id} does not exist"}],
        )
    if row.deleted_at is not None:
        raise InvalidInput(
            f"job_id: job {job_id} has been removed",
            details=[{"field": "job_id", "message": f"job {job_id} has been removed"}],
        )


# --- sessions ----------------------------------------------------------------------------


def create_interview(connection: Connection, request: CreateInterviewRequest) -> RowMapping:
    _require_live_job(connection, request.job_id)
    return (
        connection.execute(
            text(
                "INSERT INTO interview_sessions (applicant_id, job_id, status,"
                " current_question_index)"
                " VALUES (:applicant_id, :job_id, CAST(:status AS interview_status), 0)"
                f" RETURNING {_INTERVIEW_COLUMNS}"
            ),
            {
                "applicant_id": request.applicant_id,
                "job_id": request.job_id,
                "status": InterviewStatus.PENDING.value,
            },
        )
        .mappings()
        .one()
    )


def get_interview(connection: Connection, interview_id: int) -> RowMapping:
    _require_id("interview", interview_id)
    interview = (
        connection.execute(
            text(f"SELECT {_INTERVIEW_COLUMNS} FROM interview_sessions WHERE id = :id"),
            {"id": interview_id},
        )
        .mappings()
        .one_or_none()
    )
    if interview is None:
        raise NotFound("interview", interview_id)
    return interview


def update_interview(
    connection: Connection, interview_id: int, request: UpdateInterviewRequest
) -> RowMapping:
    """Apply a status transition and/or a new question index atomically.

    The row is locked (FOR NO KEY UPDATE) before the transition is checked, so of two
    concurrent PATCHes from the same state only the first wins; the second sees the new
    state and gets a 409. Results inserts (FOR KEY SHARE through their foreign key) are not
    blocked by the lock.
    """
    _require_id("interview", interview_id)
    current = connection.execute(
        text("SELECT status FROM interview_sessions WHERE id = :id FOR NO KEY UPDATE"),
        {"id": interview_id},
    ).one_or_none()
    if current is None:
        raise NotFound("interview", interview_id)
    status_now = InterviewStatus(current.status)

    # Fixed SQL fragments only; the values are bound parameters.
    assignments: list[str] = []
    params: dict[str, Any] = {"id": interview_id}
    if request.status is not None:
        target = request.status
        if target not in ALLOWED_TRANSITIONS[status_now]:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[status_now])) or "none (final state)"
            raise Conflict(
                f"interview {interview_id} cannot go from {status_now} to {target}"
                f" (allowed from {status_now}: {allowed})",
                details=[{"field": "status", "from": str(status_now), "to": str(target)}],
            )
        assignments.append("status = CAST(:status AS interview_status)")
        params["status"] = target.value
        if target is InterviewStatus.IN_PROGRESS:
            assignments.append(f"started_at = {_UTC_NOW}")
        elif target is InterviewStatus.COMPLETED:
            assignments.append(f"completed_at = {_UTC_NOW}")
    if request.current_question_index is not None:
        if status_now in _FINISHED:
            raise Conflict(
                f"interview {interview_id} is {status_now}:"
                " current_question_index can no longer change",
                details=[{"field": "current_question_index", "status": str(status_now)}],
            )
        assignments.append("current_question_index = :current_question_index")
        params["current_question_index"] = request.current_question_index

    # RETURNING gives the row as stored, updated_at as the trigger set it.
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


def save_result(
    connection: Connection, interview_id: int, request: ResultRequest
) -> tuple[RowMapping, bool]:
    """Insert or replace the result for ``(interview_id, question_id)``; True when inserted.

    One statement (INSERT ... ON CONFLICT DO UPDATE) so concurrent writers for the same
    question serialise on the unique index: exactly one inserts, the others replace, none
    fails. ``xmax = 0`` holds only for a row version this statement inserted. RETURNING
    reads the stored row back (``updated_at`` as the trigger set it) in the same statement.
    """
    _require_id("interview", interview_id)
    stored_status = connection.execute(
        text("SELECT status FROM interview_sessions WHERE id = :id"), {"id": interview_id}
    ).scalar_one_or_none()
    if stored_status is None:
        raise NotFound("interview", interview_id)
    status = InterviewStatus(stored_status)
    if status is InterviewStatus.PENDING:
        # No answer can exist before the interview starts. Completed and failed sessions do
        # accept results: analysis runs after the answer and may finish after the session.
        raise Conflict(
            f"interview {interview_id} is pending: start it (status in_progress) before"
            " posting results",
            details=[{"field": "interview_id", "status": str(status)}],
        )

    values: dict[str, Any] = {
        "question_text": request.question_text,
        "stt_full_text": request.stt_full_text,
        "logic_score": request.logic_score,
        "relevance_score": request.relevance_score,
        "technical_score": request.technical_score,
        "communication_score": request.communication_score,
        "overall_score": request.effective_overall_score(),
        "keywords": _jsonb(request.keywords),
        "strengths": _jsonb(request.strengths),
        "weaknesses": _jsonb(request.weaknesses),
        "ai_feedback": request.ai_feedback,
        "metadata": _jsonb(request.metadata),
    }
    row = (
        connection.execute(
            text(_UPSERT_RESULT),
            {"interview_id": interview_id, "question_id": request.question_id, **values},
        )
        .mappings()
        .one()
    )
    return row, bool(row["inserted"])


def list_results(connection: Connection, interview_id: int) -> Sequence[RowMapping]:
    """The interview's results in question order (404 if the interview does not exist)."""
    _require_id("interview", interview_id)
    exists = connection.execute(
        text("SELECT 1 FROM interview_sessions WHERE id = :id"), {"id": interview_id}
    ).first()
    if exists is None:
        raise NotFound("interview", interview_id)
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


def create_question(connection: Connection, request: CreateQuestionRequest) -> RowMapping:
    if request.job_id is not None:
        _require_live_job(connection, request.job_id)
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
                "job_id": request.job_id,
                "question_type": request.question_type,
                "question_text": request.question_text,
                "expected_keywords": _jsonb(request.expected_keywords),
                "evaluation_criteria": _jsonb(request.evaluation_criteria),
                "difficulty_level": request.difficulty_level,
            },
        )
        .mappings()
        .one()
    )


def get_question(connection: Connection, question_id: int) -> RowMapping:
    _require_id("question", question_id)
    question = (
        connection.execute(
            text(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = :id"), {"id": question_id}
        )
        .mappings()
        .one_or_none()
    )
    if question is None:
        raise NotFound("question", question_id)
    return question


def list_questions(
    connection: Connection,
    *,
    job_id: int | None,
    question_type: str | None,
    limit: int,
    after_id: int,
) -> tuple[Sequence[RowMapping], int | None]:
    """Questions matching the filters in id order, one page; the cursor of the next page."""
    conditions = ["id > :after_id"]
    params: dict[str, Any] = {"after_id": after_id, "limit": limit + 1}
    if job_id is not None:
        conditions.append("job_id = :job_id")
        params["job_id"] = job_id
    if question_type is not None:
        conditions.append("question_type = :question_type")
        params["question_type"] = question_type
    rows = (
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
    page = rows[:limit]
    next_after_id = page[-1]["id"] if len(rows) > limit else None
    return page, next_after_id
