"""Request and response models of the interview API (sessions, results, question templates).

Request models are strict: a string is not a number, ``true`` is not a score, unknown fields and
NaN/Infinity are rejected (see :class:`flex_shared.schemas.ApiModel`). Integers are bounded to the
columns' ``INTEGER`` range and strings may not hold NUL, which PostgreSQL cannot store: a bad
value is the caller's 422, never the database's 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from flex_shared.postgres import INT4_MAX
from flex_shared.schemas import (
    NUL_FREE,
    WHOLE_FLOAT_AS_INT,
    ApiModel,
    DatabaseId,
    JsonData,
    NonBlankText,
    QuestionOut,
    ResponseModel,
    StorableJson,
    Text,
    UtcDatetime,
    optional_not_null,
    storable,
)
from flex_shared.statuses import InterviewStatus

QUESTION_TYPE_MAX_LENGTH = 50  # questions.question_type is VARCHAR(50)


QuestionType = Annotated[NonBlankText, Field(max_length=QUESTION_TYPE_MAX_LENGTH)]
JsonObject = Annotated[dict[str, JsonData], AfterValidator(storable), NUL_FREE]
Score = Annotated[float, Field(ge=0, le=100)]
QuestionIndex = Annotated[int, Field(ge=0, le=INT4_MAX), WHOLE_FLOAT_AS_INT]
Keyword = Annotated[Text, Field(min_length=1)]
Keywords = Annotated[
    dict[Annotated[str, Field(min_length=1)], list[Keyword]], AfterValidator(storable), NUL_FREE
]


class _Request(ApiModel):
    # Strict: "5" is not a number and true is not a score. The enum stays lax so that its JSON
    # string form is accepted (strict enums want the Python member).
    model_config = ConfigDict(strict=True)


def _reject_explicit_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null (leave the field out instead)")
    return value


# --- sessions ----------------------------------------------------------------------------


class CreateInterviewRequest(_Request):
    applicant_id: DatabaseId
    """The applicant, as the caller's system knows them."""
    job_id: DatabaseId
    """The job interviewed for: a job in search."""


class UpdateInterviewRequest(_Request):
    """Give at least one field: a status transition, a new question index, or both (applied
    together, atomically)."""

    # Neither field may be null (leave it out instead): the schema shows them non-nullable,
    # and requires at least one of them.
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: Annotated[InterviewStatus, Strict(False)] | None = optional_not_null()
    """``pending -> in_progress`` (sets ``started_at``), ``in_progress -> completed`` (sets
    ``completed_at``), ``pending``/``in_progress -> failed``; anything else is a 409."""
    current_question_index: QuestionIndex | None = optional_not_null()
    """The question the applicant is on, from 0; frozen once the session is finished."""

    _no_null = field_validator("status", "current_question_index", mode="before")(
        _reject_explicit_null
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateInterviewRequest:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give status and/or current_question_index")
        return self


class InterviewOut(ResponseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    applicant_id: int
    job_id: int
    status: InterviewStatus
    current_question_index: int
    started_at: UtcDatetime | None
    """When the session went ``in_progress``; null before."""
    completed_at: UtcDatetime | None
    """When the session went ``completed``; null otherwise."""
    created_at: UtcDatetime
    updated_at: UtcDatetime


# --- results -----------------------------------------------------------------------------


class ResultRequest(_Request):
    """One analysed answer. A second post for the same ``question_id`` replaces the first
    entirely (fields left out become null), it does not merge."""

    # An omitted overall_score is the mean of the given component scores: a domain rule, in
    # flex_interviews.service.overall_score.
    question_id: Annotated[int, Field(ge=0, le=INT4_MAX), WHOLE_FLOAT_AS_INT]
    """The question answered: the caller's number for it (a question template's id, or
    another); one result per question and interview."""
    question_text: Text | None = None
    stt_full_text: Text | None = None
    logic_score: Score | None = None
    relevance_score: Score | None = None
    technical_score: Score | None = None
    communication_score: Score | None = None
    overall_score: Score | None = None
    """Left out: the mean of the component scores given (null if none). An explicit null
    stays null."""
    keywords: Keywords | None = None
    """Keywords by category, e.g. ``{"technical": ["Python"], "soft_skills": ["teamwork"]}``."""
    strengths: list[Text] | None = None
    weaknesses: list[Text] | None = None
    ai_feedback: Text | None = None
    metadata: JsonObject | None = None
    """Anything else about the analysis (models used, timings): any JSON object."""


class ResultOut(ResponseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    interview_id: int
    question_id: int
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
    # The API and the column say ``metadata`` (a row read by SQL has that key); the ORM
    # attribute is ``result_metadata`` (``metadata`` is reserved there), tried first because an
    # ORM object's ``metadata`` is the tables' MetaData.
    metadata: dict[str, Any] | None = Field(
        validation_alias=AliasChoices("result_metadata", "metadata")
    )
    created_at: UtcDatetime
    updated_at: UtcDatetime


class KeywordFrequencies(ResponseModel):
    """How many results mention each keyword (a keyword repeated within one result counts
    once), most frequent first, ties by keyword."""

    overall: dict[str, int]
    """Across all categories: a result mentioning ``Python`` under two categories counts once."""
    by_category: dict[str, dict[str, int]]


class ResultsSummary(ResponseModel):
    """Averages skip null scores; null when no result has that score."""

    count: int
    average_overall_score: float | None
    average_logic_score: float | None
    average_relevance_score: float | None
    average_technical_score: float | None
    average_communication_score: float | None
    keyword_frequencies: KeywordFrequencies


class InterviewResultsOut(ResponseModel):
    interview_id: int
    results: list[ResultOut]
    """In question order."""
    summary: ResultsSummary


# --- question templates ------------------------------------------------------------------


class CreateQuestionRequest(_Request):
    job_id: DatabaseId | None = None
    question_type: QuestionType
    question_text: NonBlankText
    expected_keywords: StorableJson = None
    evaluation_criteria: StorableJson = None
    difficulty_level: Annotated[int, Field(ge=1, le=5), WHOLE_FLOAT_AS_INT] | None = None


class QuestionListOut(ResponseModel):
    questions: list[QuestionOut]
    next_after_id: int | None
    """Pass as ``after_id`` to read the next page; null on the last page."""


# --- hiring insights ---------------------------------------------------------------------


class AverageScores(ResponseModel):
    """Averages of the component scores over the same results as ``average_overall_score``
    (nulls skipped; null when no result has that score)."""

    logic: float | None
    relevance: float | None
    technical: float | None
    communication: float | None


class ApplicantOut(ResponseModel):
    rank: int
    """Position in the job's ranking, from 1: by ``average_overall_score`` (highest first,
    applicants without one last), ties by ``applicant_id``."""
    applicant_id: int
    sessions: int
    """The applicant's sessions for the job, whatever their status."""
    completed_sessions: int
    results: int
    """Results of the completed sessions: the ones the averages are over."""
    average_overall_score: float | None
    """Mean ``overall_score`` of the results of the applicant's completed sessions for the job;
    null when there is none (no completed session, or no overall score in one)."""
    average_scores: AverageScores
    last_completed_at: UtcDatetime | None


class ApplicantsOut(ResponseModel):
    job_id: int
    applicants: list[ApplicantOut]
    next: str | None
    """Pass as ``after`` to read the next page; null on the last page."""


class SessionCounts(ResponseModel):
    pending: int
    in_progress: int
    completed: int
    failed: int


class ScoreStatistics(ResponseModel):
    """One score over the job's results that have it (nulls skipped). ``p25``/``p75`` are
    Python's ``statistics.quantiles(method="inclusive")`` quartiles (linear interpolation
    between order statistics, R's type 7), ``median`` is ``statistics.median``; with a single
    result all three are that score. Null statistics when ``count`` is 0."""

    count: int
    mean: float | None
    p25: float | None
    median: float | None
    p75: float | None


class ScoresStatistics(ResponseModel):
    overall: ScoreStatistics
    logic: ScoreStatistics
    relevance: ScoreStatistics
    technical: ScoreStatistics
    communication: ScoreStatistics


class KeywordCount(ResponseModel):
    category: str
    keyword: str
    """In lower case: keywords (and categories) are counted case-insensitively."""
    count: int
    """Results mentioning the keyword in that category (once per result)."""


class InsightsOut(ResponseModel):
    """What a job's interviews show: every session of the job and every result of them
    (whatever the session's status; failed sessions' answers are analysed answers too)."""

    job_id: int
    sessions: SessionCounts
    results: int
    scores: ScoresStatistics
    top_keywords: list[KeywordCount]
    """Per category (in category order), its 20 most frequent keywords, most frequent first,
    ties by keyword."""
    expected_keyword_coverage: float | None
    """Over the results whose ``question_id`` is a question with ``expected_keywords`` (every
    string in it): the share of those keywords found, case-insensitively, among the result's
    ``keywords``, averaged. Null when no result answers such a question."""
