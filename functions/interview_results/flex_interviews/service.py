"""Interview sessions, their results and question templates: the domain rules.

Knows nothing of HTTP: takes validated requests, runs one transaction per call (the handler
never does; ``run_in_transaction`` runs it again on a new connection only when nothing of it
reached the database, so a write is never applied twice), answers with the response models and
raises :mod:`flex_shared.errors`. The SQL is in :mod:`flex_interviews.store`.
"""

from __future__ import annotations

import math

from sqlalchemy.engine import Connection

from flex_interviews import page_cursor, store
from flex_interviews.insights import expected_keyword_coverage, mean, quartiles
from flex_interviews.schemas import (
    ApplicantOut,
    ApplicantsOut,
    AverageScores,
    CreateInterviewRequest,
    CreateQuestionRequest,
    InsightsOut,
    InterviewOut,
    InterviewResultsOut,
    KeywordCount,
    QuestionListOut,
    ResultOut,
    ResultRequest,
    ScoresStatistics,
    ScoreStatistics,
    SessionCounts,
    UpdateInterviewRequest,
)
from flex_interviews.summary import summarize
from flex_shared.db import run_in_transaction
from flex_shared.errors import Conflict, NotFound
from flex_shared.postgres import INT4_MAX
from flex_shared.schemas import QuestionOut
from flex_shared.statuses import InterviewStatus

ALLOWED_TRANSITIONS: dict[InterviewStatus, frozenset[InterviewStatus]] = {
    InterviewStatus.PENDING: frozenset({InterviewStatus.IN_PROGRESS, InterviewStatus.FAILED}),
    InterviewStatus.IN_PROGRESS: frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED}),
    InterviewStatus.COMPLETED: frozenset(),
    InterviewStatus.FAILED: frozenset(),
}
"""The session lifecycle; every other change of status is a conflict."""

_FINISHED = frozenset({InterviewStatus.COMPLETED, InterviewStatus.FAILED})

SCORE_FIELDS = ("logic_score", "relevance_score", "technical_score", "communication_score")
"""The component scores; ``overall_score`` defaults to their mean."""


def _require_id(resource: str, identifier: int) -> None:
    # An id outside the column's range cannot exist; answer 404 without asking the database
    # (which would reject the parameter as out of range).
    if not 1 <= identifier <= INT4_MAX:
        raise NotFound(resource, identifier)


def _require_live_job(connection: Connection, job_id: int) -> None:
    """The job exists and is still published, and stays so until the transaction ends.
    A job the body names that is not in search is a 404, as ``GET /jobs/{job_id}`` answers
    for it (the request is well formed: only the data it points at is missing)."""
    job = store.lock_job(connection, job_id)
    if job is None or job.removed:
        reason = "does not exist" if job is None else "has been removed"
        raise NotFound(
            "job",
            job_id,
            f"job_id: job {job_id} {reason}",
            details=[{"field": "job_id", "message": f"job {job_id} {reason}"}],
        )


# --- sessions ----------------------------------------------------------------------------


def create_interview(request: CreateInterviewRequest) -> InterviewOut:
    def create(connection: Connection) -> InterviewOut:
        _require_live_job(connection, request.job_id)
        row = store.insert_interview(connection, request.applicant_id, request.job_id)
        return InterviewOut.model_validate(row)

    return run_in_transaction(create)


def get_interview(interview_id: int) -> InterviewOut:
    _require_id("interview", interview_id)

    def read(connection: Connection) -> InterviewOut:
        row = store.find_interview(connection, interview_id)
        if row is None:
            raise NotFound("interview", interview_id)
        return InterviewOut.model_validate(row)

    return run_in_transaction(read)


def update_interview(interview_id: int, request: UpdateInterviewRequest) -> InterviewOut:
    """Apply a status transition and/or a new question index atomically.

    The row is locked before the transition is checked, so of two concurrent PATCHes from the
    same state only the first wins; the second sees the new state and gets a 409.
    """
    _require_id("interview", interview_id)

    def update(connection: Connection) -> InterviewOut:
        status_now = store.interview_status(connection, interview_id, lock=True)
        if status_now is None:
            raise NotFound("interview", interview_id)
        target = request.status
        if target is not None and target not in ALLOWED_TRANSITIONS[status_now]:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[status_now])) or "none (final state)"
            raise Conflict(
                f"interview {interview_id} cannot go from {status_now} to {target}"
                f" (allowed from {status_now}: {allowed})",
                details=[{"field": "status", "from": str(status_now), "to": str(target)}],
            )
        if request.current_question_index is not None and status_now in _FINISHED:
            raise Conflict(
                f"interview {interview_id} is {status_now}:"
                " current_question_index can no longer change",
                details=[{"field": "current_question_index", "status": str(status_now)}],
            )
        row = store.update_interview(
            connection,
            interview_id,
            status=target,
            stamp_started=target is InterviewStatus.IN_PROGRESS,
            stamp_completed=target is InterviewStatus.COMPLETED,
            current_question_index=request.current_question_index,
        )
        return InterviewOut.model_validate(row)

    return run_in_transaction(update)


# --- results -----------------------------------------------------------------------------


def overall_score(request: ResultRequest) -> float | None:
    """``overall_score`` as given (even null); when left out, the mean of the component scores
    that were given (the seed's 85.5, 90, 88, 82 -> 86.375), or null if none were."""
    if "overall_score" in request.model_fields_set:
        return request.overall_score
    given = [score for name in SCORE_FIELDS if (score := getattr(request, name)) is not None]
    return math.fsum(given) / len(given) if given else None


def save_result(interview_id: int, request: ResultRequest) -> tuple[ResultOut, bool]:
    """Insert or replace the result for ``(interview_id, question_id)``; True when inserted.
    A replacement overwrites every field (left out means null), it does not merge."""
    _require_id("interview", interview_id)

    def save(connection: Connection) -> tuple[ResultOut, bool]:
        status = store.interview_status(connection, interview_id)
        if status is None:
            raise NotFound("interview", interview_id)
        if status is InterviewStatus.PENDING:
            # No answer can exist before the interview starts. Completed and failed sessions
            # do accept results: analysis runs after the answer and may finish after the
            # session.
            raise Conflict(
                f"interview {interview_id} is pending: start it (status in_progress) before"
                " posting results",
                details=[{"field": "interview_id", "status": str(status)}],
            )
        values = store.ResultValues(
            question_text=request.question_text,
            stt_full_text=request.stt_full_text,
            logic_score=request.logic_score,
            relevance_score=request.relevance_score,
            technical_score=request.technical_score,
            communication_score=request.communication_score,
            overall_score=overall_score(request),
            keywords=request.keywords,
            strengths=request.strengths,
            weaknesses=request.weaknesses,
            ai_feedback=request.ai_feedback,
            metadata=request.metadata,
        )
        row, inserted = store.upsert_result(connection, interview_id, request.question_id, values)
        return ResultOut.model_validate(row), inserted

    return run_in_transaction(save)


def list_results(interview_id: int) -> InterviewResultsOut:
    """The interview's results in question order, with their summary (404 if the interview
    does not exist)."""
    _require_id("interview", interview_id)

    def read(connection: Connection) -> list[ResultOut]:
        if not store.interview_exists(connection, interview_id):
            raise NotFound("interview", interview_id)
        return [
            ResultOut.model_validate(row) for row in store.list_results(connection, interview_id)
        ]

    results = run_in_transaction(read)
    return InterviewResultsOut(
        interview_id=interview_id, results=results, summary=summarize(results)
    )


# --- question templates ------------------------------------------------------------------


def create_question(request: CreateQuestionRequest) -> QuestionOut:
    def create(connection: Connection) -> QuestionOut:
        if request.job_id is not None:
            _require_live_job(connection, request.job_id)
        row = store.insert_question(
            connection,
            job_id=request.job_id,
            question_type=request.question_type,
            question_text=request.question_text,
            expected_keywords=request.expected_keywords,
            evaluation_criteria=request.evaluation_criteria,
            difficulty_level=request.difficulty_level,
        )
        return QuestionOut.model_validate(row)

    return run_in_transaction(create)


def get_question(question_id: int) -> QuestionOut:
    _require_id("question", question_id)

    def read(connection: Connection) -> QuestionOut:
        row = store.find_question(connection, question_id)
        if row is None:
            raise NotFound("question", question_id)
        return QuestionOut.model_validate(row)

    return run_in_transaction(read)


def list_questions(
    *, job_id: int | None, question_type: str | None, limit: int, after_id: int
) -> QuestionListOut:
    """Questions matching the filters in id order, one page, and the cursor of the next."""

    def read(connection: Connection) -> QuestionListOut:
        # One more than the page: whether there is a next page, without counting.
        rows = store.list_questions(
            connection,
            job_id=job_id,
            question_type=question_type,
            after_id=after_id,
            limit=limit + 1,
        )
        page = rows[:limit]
        return QuestionListOut(
            questions=[QuestionOut.model_validate(row) for row in page],
            next_after_id=page[-1]["id"] if len(rows) > limit else None,
        )

    return run_in_transaction(read)


# --- hiring insights ---------------------------------------------------------------------

TOP_KEYWORDS_PER_CATEGORY = 20


def list_applicants(job_id: int, *, limit: int, after: str | None) -> ApplicantsOut:
    """One page of the job's applicants in ranking order, and the cursor of the next. 404 for
    a job that never existed; a job taken out of search keeps its applicants."""
    _require_id("job", job_id)
    boundary = page_cursor.decode(after, job_id) if after is not None else None
    # One more than the page: whether there is a next page, without counting.
    rows = run_in_transaction(
        lambda connection: store.applicants_page(
            connection,
            job_id,
            after=(boundary.ranking_key, boundary.applicant_id) if boundary else None,
            limit=limit + 1,
        )
    )
    if rows is None:
        raise NotFound("job", job_id)
    first_rank = boundary.rank + 1 if boundary else 1
    page = rows[:limit]
    applicants = [
        ApplicantOut(
            rank=first_rank + offset,
            applicant_id=row.applicant_id,
            sessions=row.sessions,
            completed_sessions=row.completed_sessions,
            results=row.results,
            average_overall_score=row.average_overall_score,
            average_scores=AverageScores(
                logic=row.average_logic_score,
                relevance=row.average_relevance_score,
                technical=row.average_technical_score,
                communication=row.average_communication_score,
            ),
            last_completed_at=row.last_completed_at,
        )
        for offset, row in enumerate(page)
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = page_cursor.encode(
            page_cursor.PageCursor(
                job_id=job_id,
                ranking_key=last.ranking_key,
                applicant_id=last.applicant_id,
                rank=first_rank + limit - 1,
            )
        )
    return ApplicantsOut(job_id=job_id, applicants=applicants, next=next_cursor)


def _score_statistics(total: store.ScoreTotal, values: dict[int, float]) -> ScoreStatistics:
    cuts = quartiles(total.count, values)
    return ScoreStatistics(
        count=total.count,
        mean=mean(total.total, total.count),
        p25=cuts.p25,
        median=cuts.median,
        p75=cuts.p75,
    )


def job_insights(job_id: int) -> InsightsOut:
    """What the job's interviews show (all of its sessions and their results), read from the
    job's aggregates in one statement. 404 for a job that never existed; a job taken out of
    search keeps its insights."""
    _require_id("job", job_id)
    insights = run_in_transaction(
        lambda connection: store.job_insights(connection, job_id, TOP_KEYWORDS_PER_CATEGORY)
    )
    if insights is None:
        raise NotFound("job", job_id)
    scores = {
        score: _score_statistics(total, insights.order_statistics[score])
        for score, total in insights.scores.items()
    }
    return InsightsOut(
        job_id=job_id,
        sessions=SessionCounts(
            pending=insights.pending,
            in_progress=insights.in_progress,
            completed=insights.completed,
            failed=insights.failed,
        ),
        results=insights.results,
        scores=ScoresStatistics(**scores),
        top_keywords=[
            KeywordCount(category=k.category, keyword=k.keyword, count=k.results)
            for k in insights.top_keywords
        ],
        expected_keyword_coverage=expected_keyword_coverage(insights.questions),
    )
