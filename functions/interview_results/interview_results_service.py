"""Interview sessions, their results and question templates: the domain rules and data access.

Knows nothing of HTTP: takes validated requests and an open SQLAlchemy session (one
transaction), returns ORM rows, raises :mod:`flex_shared.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, func, literal_column, null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from flex_shared.errors import Conflict, InvalidInput, NotFound
from flex_shared.models import InterviewResult, InterviewSession, InterviewStatus, Job, Question
from flex_shared.schemas.interviews import (
    INT32_MAX,
    CreateInterviewRequest,
    CreateQuestionRequest,
    ResultRequest,
    UpdateInterviewRequest,
)

_UTC_NOW = func.timezone("utc", func.now())

ALLOWED_TRANSITIONS: dict[InterviewStatus, frozenset[InterviewStatus]] = {
    InterviewStatus.PENDING: frozenset({InterviewStatus.IN_PROGRESS, InterviewStatus.FAILED}),
    InterviewStatus.IN_PROGRESS: frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED}),
    InterviewStatus.COMPLETED: frozenset(),
    InterviewStatus.FAILED: frozenset(),
}
"""The session lifecycle; every other change of status is a conflict."""

_JSONB_RESULT_COLUMNS = ("keywords", "strengths", "weaknesses", "metadata")

_FINISHED = frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED})


def _sql_null_if_none(value: Any) -> Any:
    # A bare None in a JSONB column is stored as JSON 'null'; absent means SQL NULL.
    return null() if value is None else value


def _require_id(resource: str, identifier: int) -> None:
    # An id outside the column's range cannot exist; answer 404 without asking the database
    # (which would reject the parameter as out of range).
    if not 1 <= identifier <= INT32_MAX:
        raise NotFound(resource, identifier)


def _require_live_job(session: Session, job_id: int) -> None:
    """The job exists and is still published. FOR SHARE: a concurrent removal by ingestion
    (an UPDATE of ``deleted_at``) waits for this transaction instead of slipping past it."""
    row = session.execute(
        select(Job.deleted_at).where(Job.id == job_id).with_for_update(read=True)
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


def create_interview(session: Session, request: CreateInterviewRequest) -> InterviewSession:
    _require_live_job(session, request.job_id)
    interview = InterviewSession(
        applicant_id=request.applicant_id,
        job_id=request.job_id,
        status=InterviewStatus.PENDING,
        current_question_index=0,
    )
    session.add(interview)
    session.flush()  # server defaults (id, created_at, updated_at) come back via RETURNING
    return interview


def get_interview(session: Session, interview_id: int) -> InterviewSession:
    _require_id("interview", interview_id)
    interview = session.get(InterviewSession, interview_id)
    if interview is None:
        raise NotFound("interview", interview_id)
    return interview


def update_interview(
    session: Session, interview_id: int, request: UpdateInterviewRequest
) -> InterviewSession:
    """Apply a status transition and/or a new question index atomically.

    The row is locked (FOR NO KEY UPDATE) before the transition is checked, so of two
    concurrent PATCHes from the same state only the first wins; the second sees the new
    state and gets a 409. Results inserts (FOR KEY SHARE through their foreign key) are not
    blocked by the lock.
    """
    _require_id("interview", interview_id)
    current = session.execute(
        select(InterviewSession.status)
        .where(InterviewSession.id == interview_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    if current is None:
        raise NotFound("interview", interview_id)
    status_now: InterviewStatus = current.status

    changes: dict[str, Any] = {}
    if request.status is not None:
        target = request.status
        if target not in ALLOWED_TRANSITIONS[status_now]:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[status_now])) or "none (final state)"
            raise Conflict(
                f"interview {interview_id} cannot go from {status_now} to {target}"
                f" (allowed from {status_now}: {allowed})",
                details=[{"field": "status", "from": str(status_now), "to": str(target)}],
            )
        changes["status"] = target
        if target is InterviewStatus.IN_PROGRESS:
            changes["started_at"] = _UTC_NOW
        elif target is InterviewStatus.COMPLETED:
            changes["completed_at"] = _UTC_NOW
    if request.current_question_index is not None:
        if status_now in _FINISHED:
            raise Conflict(
                f"interview {interview_id} is {status_now}:"
                " current_question_index can no longer change",
                details=[{"field": "current_question_index", "status": str(status_now)}],
            )
        changes["current_question_index"] = request.current_question_index

    return session.scalars(
        update(InterviewSession)
        .where(InterviewSession.id == interview_id)
        .values(**changes)
        .returning(InterviewSession),
        execution_options={"populate_existing": True},
    ).one()


# --- results -----------------------------------------------------------------------------


def save_result(
    session: Session, interview_id: int, request: ResultRequest
) -> tuple[InterviewResult, bool]:
    """Insert or replace the result for ``(interview_id, question_id)``; True when inserted.

    One statement (INSERT ... ON CONFLICT DO UPDATE) so concurrent writers for the same
    question serialise on the unique index: exactly one inserts, the others replace, none
    fails. ``xmax = 0`` holds only for a row version this statement inserted.
    """
    _require_id("interview", interview_id)
    status = session.scalar(
        select(InterviewSession.status).where(InterviewSession.id == interview_id)
    )
    if status is None:
        raise NotFound("interview", interview_id)
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
        "keywords": request.keywords,
        "strengths": request.strengths,
        "weaknesses": request.weaknesses,
        "ai_feedback": request.ai_feedback,
        "metadata": request.metadata,
    }
    for name in _JSONB_RESULT_COLUMNS:
        values[name] = _sql_null_if_none(values[name])
    table = cast(Table, InterviewResult.__table__)
    insert = pg_insert(table).values(
        interview_id=interview_id, question_id=request.question_id, **values
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.interview_id, table.c.question_id],
        set_={name: insert.excluded[name] for name in values},
    ).returning(table.c.id, literal_column("xmax = 0").label("inserted"))
    row = session.execute(upsert).one()
    result = session.get(InterviewResult, row.id, populate_existing=True)
    assert result is not None  # just written in this transaction
    return result, bool(row.inserted)


def list_results(session: Session, interview_id: int) -> Sequence[InterviewResult]:
    """The interview's results in question order (404 if the interview does not exist)."""
    _require_id("interview", interview_id)
    if session.get(InterviewSession, interview_id) is None:
        raise NotFound("interview", interview_id)
    return session.scalars(
        select(InterviewResult)
        .where(InterviewResult.interview_id == interview_id)
        .order_by(InterviewResult.question_id)
    ).all()


# --- question templates ------------------------------------------------------------------


def create_question(session: Session, request: CreateQuestionRequest) -> Question:
    if request.job_id is not None:
        _require_live_job(session, request.job_id)
    question = Question(
        job_id=request.job_id,
        question_type=request.question_type,
        question_text=request.question_text,
        # SQL NULL, not JSON 'null', when absent.
        expected_keywords=_sql_null_if_none(request.expected_keywords),
        evaluation_criteria=_sql_null_if_none(request.evaluation_criteria),
        difficulty_level=request.difficulty_level,
    )
    session.add(question)
    session.flush()
    return question


def get_question(session: Session, question_id: int) -> Question:
    _require_id("question", question_id)
    question = session.get(Question, question_id)
    if question is None:
        raise NotFound("question", question_id)
    return question


def list_questions(
    session: Session,
    *,
    job_id: int | None,
    question_type: str | None,
    limit: int,
    after_id: int,
) -> tuple[Sequence[Question], int | None]:
    """Questions matching the filters in id order, one page; the cursor of the next page."""
    conditions = [Question.id > after_id]
    if job_id is not None:
        conditions.append(Question.job_id == job_id)
    if question_type is not None:
        conditions.append(Question.question_type == question_type)
    rows = session.scalars(
        select(Question).where(and_(*conditions)).order_by(Question.id).limit(limit + 1)
    ).all()
    page = rows[:limit]
    next_after_id = page[-1].id if len(rows) > limit else None
    return page, next_after_id
