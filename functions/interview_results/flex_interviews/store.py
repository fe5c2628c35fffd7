"""Interview sessions, their results and question templates in PostgreSQL: SQL only, on the
caller's connection and transaction (the service owns them). Rows come back as mappings keyed
by column name. SQL text on a Core connection: the ORM (``sqlalchemy.orm``, a tenth of a second
of every cold start) is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
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


# --- hiring insights ---------------------------------------------------------------------
# Read from the per-job aggregates that migration 0004's triggers keep (job_applicant_stats,
# job_score_counts, job_keyword_counts, job_question_counts, job_question_keyword_counts):
# never the job's sessions or results themselves. Each route is one or two statements.

INSIGHT_SCORES = ("overall", "logic", "relevance", "technical", "communication")


@dataclass(frozen=True)
class ApplicantStanding:
    applicant_id: int
    sessions: int
    completed_sessions: int
    results: int
    """Results of the completed sessions."""
    average_overall_score: float | None
    average_logic_score: float | None
    average_relevance_score: float | None
    average_technical_score: float | None
    average_communication_score: float | None
    last_completed_at: datetime | None
    ranking_key: float
    """Minus the average overall score, ``inf`` without one: the ranking's ascending order."""


def _average(score: str) -> str:
    return f"({score}_sum / nullif({score}_count, 0))::double precision"


_STANDING_COLUMNS = f"""applicant_id,
        pending_sessions + in_progress_sessions + completed_sessions + failed_sessions
            AS sessions,
        completed_sessions, completed_results,
        CASE WHEN overall_count > 0 THEN -ranking_key END AS average_overall_score,
        {_average("logic")} AS average_logic, {_average("relevance")} AS average_relevance,
        {_average("technical")} AS average_technical,
        {_average("communication")} AS average_communication,
        last_completed_at, ranking_key"""


def applicants_page(
    connection: Connection, job_id: int, *, after: tuple[float, int] | None, limit: int
) -> list[ApplicantStanding] | None:
    """Up to ``limit`` of the job's applicants in ranking order (``ranking_key``, then
    ``applicant_id``), strictly after the ``(ranking_key, applicant_id)`` boundary when given:
    one range scan of ``ix_job_applicant_stats_ranking``. None when the job never existed (a job
    taken out of search still has its applicants)."""
    boundary = "AND (ranking_key, applicant_id) > (:after_key, :after_applicant)" if after else ""
    params: dict[str, Any] = {"job_id": job_id, "limit": limit}
    if after is not None:
        params.update(after_key=after[0], after_applicant=after[1])
    rows = connection.execute(
        text(
            f"""
SELECT a.* FROM jobs AS j
LEFT JOIN LATERAL (
    SELECT {_STANDING_COLUMNS}
    FROM job_applicant_stats
    WHERE job_id = j.id {boundary}
    ORDER BY ranking_key, applicant_id
    LIMIT :limit
) AS a ON TRUE
WHERE j.id = :job_id
ORDER BY a.ranking_key, a.applicant_id"""
        ),
        params,
    ).all()
    if not rows:
        return None
    return [ApplicantStanding(*row) for row in rows if row[0] is not None]


@dataclass(frozen=True)
class ScoreTotal:
    count: int
    """Results with this score (not null)."""
    total: Decimal
    """Their sum, exact."""


@dataclass(frozen=True)
class KeywordFrequency:
    category: str
    keyword: str
    results: int


@dataclass(frozen=True)
class QuestionKeywordCounts:
    question_id: int
    results: int
    """The job's results answering the question."""
    expected: int
    """Distinct expected keywords of the question."""
    found: int
    """Over those results, how many (result, expected keyword) pairs match."""


@dataclass(frozen=True)
class JobInsights:
    pending: int
    in_progress: int
    completed: int
    failed: int
    results: int
    scores: dict[str, ScoreTotal]
    """Per score name, over all the job's results."""
    order_statistics: dict[str, dict[int, float]]
    """Per score, its values at the 0-based positions of the sorted values that
    :func:`flex_interviews.insights.quartiles` reads (``quartile_positions``)."""
    top_keywords: list[KeywordFrequency]
    """Each category's most frequent keywords, most frequent first, ties by keyword (code
    point order); categories in code point order."""
    questions: list[QuestionKeywordCounts]
    """Every question the job's results answer that has expected keywords (as
    ``question_expected_keywords`` reads them, compared as ``interview_keyword_key``s)."""


# One statement (one round trip, one snapshot): the job; its sessions by status and results
# from its applicants' rows; each score's count and exact sum from its whole-point buckets; the
# order statistics: a position's bucket is found from the buckets' running counts, then only
# that bucket's distinct values are read (in order, with their running count); the top
# keywords, read per category from the top of ix_job_keyword_counts_top (the categories by a
# skip scan); the coverage counts. The positions are
# flex_interviews.insights.quartile_positions(n), written here in SQL.
_JOB_INSIGHTS = """
WITH RECURSIVE sessions AS (
    SELECT coalesce(sum(pending_sessions), 0) AS pending,
           coalesce(sum(in_progress_sessions), 0) AS in_progress,
           coalesce(sum(completed_sessions), 0) AS completed,
           coalesce(sum(failed_sessions), 0) AS failed,
           coalesce(sum(results), 0) AS results
    FROM job_applicant_stats WHERE job_id = :job_id
),
buckets AS (
    SELECT score, bucket, results, total,
           sum(results) OVER (PARTITION BY score ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS up_to
    FROM job_score_buckets WHERE job_id = :job_id
),
score_totals AS (
    SELECT score, sum(results) AS n, sum(total) AS total FROM buckets GROUP BY score
),
wanted AS (
    SELECT DISTINCT t.score, p.position
    FROM score_totals AS t
    CROSS JOIN LATERAL unnest(ARRAY[
        (t.n - 1) / 2, t.n / 2,
        (t.n - 1) / 4, least((t.n - 1) / 4 + 1, t.n - 1),
        3 * (t.n - 1) / 4, least(3 * (t.n - 1) / 4 + 1, t.n - 1)]) AS p(position)
),
located AS (
    SELECT w.score, w.position, b.bucket, w.position - (b.up_to - b.results) AS inside
    FROM wanted AS w
    JOIN buckets AS b
      ON b.score = w.score AND w.position >= b.up_to - b.results AND w.position < b.up_to
),
order_statistics AS (
    SELECT l.score, l.position, v.value
    FROM located AS l
    CROSS JOIN LATERAL (
        SELECT x.value FROM (
            SELECT c.value, c.results,
                   sum(c.results) OVER (ORDER BY c.value ROWS UNBOUNDED PRECEDING) AS up_to
            FROM job_score_counts AS c
            WHERE c.job_id = :job_id AND c.score = l.score
              AND c.value >= l.bucket AND c.value < l.bucket + 1
        ) AS x
        WHERE l.inside >= x.up_to - x.results AND l.inside < x.up_to
    ) AS v
),
categories AS (
    (SELECT category FROM job_keyword_counts WHERE job_id = :job_id ORDER BY category LIMIT 1)
    UNION ALL
    SELECT (SELECT k.category FROM job_keyword_counts AS k
            WHERE k.job_id = :job_id AND k.category > c.category
            ORDER BY k.category LIMIT 1)
    FROM categories AS c
    WHERE c.category IS NOT NULL
),
top_keywords AS (
    SELECT c.category, t.keyword, t.results
    FROM categories AS c
    CROSS JOIN LATERAL (
        SELECT k.keyword, k.results FROM job_keyword_counts AS k
        WHERE k.job_id = :job_id AND k.category = c.category
        ORDER BY k.results DESC, k.keyword
        LIMIT :per_category
    ) AS t
    WHERE c.category IS NOT NULL
),
answered AS MATERIALIZED (
    SELECT qc.question_id, qc.results, question_expected_keywords(q.expected_keywords) AS expected
    FROM job_question_counts AS qc
    JOIN questions AS q ON q.id = qc.question_id
    WHERE qc.job_id = :job_id AND q.expected_keywords IS NOT NULL
),
coverage AS (
    SELECT a.question_id, a.results, cardinality(a.expected) AS expected,
           coalesce((SELECT sum(k.results) FROM job_question_keyword_counts AS k
                     WHERE k.job_id = :job_id AND k.question_id = a.question_id
                       AND k.keyword = ANY (a.expected)), 0) AS found
    FROM answered AS a
    WHERE cardinality(a.expected) > 0
)
SELECT sessions.*,
       (SELECT json_agg(json_build_array(score, n, total::text)) FROM score_totals)
           AS score_totals,
       (SELECT json_agg(json_build_array(score, position, value)) FROM order_statistics)
           AS order_statistics,
       (SELECT json_agg(json_build_array(category, keyword, results)
                        ORDER BY category, results DESC, keyword) FROM top_keywords)
           AS top_keywords,
       (SELECT json_agg(json_build_array(question_id, results, expected, found)
                        ORDER BY question_id) FROM coverage) AS questions
FROM jobs CROSS JOIN sessions
WHERE jobs.id = :job_id"""


def job_insights(
    connection: Connection, job_id: int, keywords_per_category: int
) -> JobInsights | None:
    """Everything the insights route answers, in one statement; None when the job never
    existed (a job taken out of search keeps its insights)."""
    row = (
        connection.execute(
            text(_JOB_INSIGHTS), {"job_id": job_id, "per_category": keywords_per_category}
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    scores = {score: ScoreTotal(0, Decimal(0)) for score in INSIGHT_SCORES}
    for score, count, total in row["score_totals"] or []:
        scores[score] = ScoreTotal(int(count), Decimal(total))
    order_statistics: dict[str, dict[int, float]] = {score: {} for score in INSIGHT_SCORES}
    for score, position, value in row["order_statistics"] or []:
        order_statistics[score][int(position)] = float(value)
    return JobInsights(
        pending=int(row["pending"]),
        in_progress=int(row["in_progress"]),
        completed=int(row["completed"]),
        failed=int(row["failed"]),
        results=int(row["results"]),
        scores=scores,
        order_statistics=order_statistics,
        top_keywords=[KeywordFrequency(c, k, int(n)) for c, k, n in row["top_keywords"] or []],
        questions=[QuestionKeywordCounts(*map(int, q)) for q in row["questions"] or []],
    )
