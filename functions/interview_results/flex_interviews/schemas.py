"""Request and response models of the interview API (sessions, results, question templates).

Request models are strict: a string is not a number, ``true`` is not a score, unknown fields and
NaN/Infinity are rejected (see :class:`flex_shared.schemas.ApiModel`). Integers are bounded to the
columns' ``INTEGER`` range and strings may not hold NUL, which PostgreSQL cannot store: a bad
value is the caller's 422, never the database's 500.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from flex_shared.postgres import INT4_MAX
from flex_shared.schemas import ApiModel, DatabaseId, QuestionOut, UtcDatetime
from flex_shared.statuses import InterviewStatus

QUESTION_TYPE_MAX_LENGTH = 50  # questions.question_type is VARCHAR(50)


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


_T = TypeVar("_T")


def _no_nul(value: _T) -> _T:
    # PostgreSQL text and jsonb cannot hold U+0000; say so instead of failing in the database.
    if _contains_nul(value):
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
NonBlankText = Annotated[
    str, Field(min_length=1), AfterValidator(_not_blank), AfterValidator(_no_nul)
]
QuestionType = Annotated[
    str,
    Field(min_length=1, max_length=QUESTION_TYPE_MAX_LENGTH),
    AfterValidator(_not_blank),
    AfterValidator(_no_nul),
]
Json = Annotated[JsonValue, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_no_nul)]
Score = Annotated[float, Field(ge=0, le=100)]
Keyword = Annotated[str, Field(min_length=1), AfterValidator(_no_nul)]


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
    job_id: DatabaseId


class UpdateInterviewRequest(_Request):
    status: InterviewStatus | None = Field(default=None, strict=False)
    current_question_index: Annotated[int, Field(ge=0, le=INT4_MAX)] | None = None

    _no_null = field_validator("status", "current_question_index", mode="before")(
        _reject_explicit_null
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateInterviewRequest:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give status and/or current_question_index")
        return self


class InterviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    applicant_id: int
    job_id: int
    status: InterviewStatus
    current_question_index: int
    started_at: UtcDatetime | None
    completed_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


# --- results -----------------------------------------------------------------------------


class ResultRequest(_Request):
    """One analysed answer. A second post for the same ``question_id`` replaces the first
    entirely (fields left out become null), it does not merge."""

    # An omitted overall_score is the mean of the given component scores: a domain rule, in
    # flex_interviews.service.overall_score.
    question_id: Annotated[int, Field(ge=0, le=INT4_MAX)]
    question_text: Text | None = None
    stt_full_text: Text | None = None
    logic_score: Score | None = None
    relevance_score: Score | None = None
    technical_score: Score | None = None
    communication_score: Score | None = None
    overall_score: Score | None = None
    keywords: dict[Keyword, list[Keyword]] | None = None
    strengths: list[Text] | None = None
    weaknesses: list[Text] | None = None
    ai_feedback: Text | None = None
    metadata: JsonObject | None = None


class ResultOut(BaseModel):
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


class KeywordFrequencies(BaseModel):
    """How many results mention each keyword (a keyword repeated within one result counts
    once), most frequent first, ties by keyword."""

    overall: dict[str, int]
    """Across all categories: a result mentioning ``Python`` under two categories counts once."""
    by_category: dict[str, dict[str, int]]


class ResultsSummary(BaseModel):
    count: int
    average_overall_score: float | None
    average_logic_score: float | None
    average_relevance_score: float | None
    average_technical_score: float | None
    average_communication_score: float | None
    keyword_frequencies: KeywordFrequencies


class InterviewResultsOut(BaseModel):
    interview_id: int
    results: list[ResultOut]
    summary: ResultsSummary


# --- question templates ------------------------------------------------------------------


class CreateQuestionRequest(_Request):
    job_id: DatabaseId | None = None
    question_type: QuestionType
    question_text: NonBlankText
    expected_keywords: Json = None
    evaluation_criteria: Json = None
    difficulty_level: Annotated[int, Field(ge=1, le=5)] | None = None


class QuestionListOut(BaseModel):
    questions: list[QuestionOut]
    next_after_id: int | None
    """Pass as ``after_id`` to read the next page; null on the last page."""


# --- hiring insights ---------------------------------------------------------------------


class AverageScores(BaseModel):
    """Averages of the component scores over the same results as ``average_overall_score``
    (nulls skipped; null when no result has that score)."""

    logic: float | None
    relevance: float | None
    technical: float | None
    communication: float | None


class ApplicantOut(BaseModel):
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


class ApplicantsOut(BaseModel):
    job_id: int
    applicants: list[ApplicantOut]
    next: str | None
    """Pass as ``after`` to read the next page; null on the last page."""


class SessionCounts(BaseModel):
    pending: int
    in_progress: int
    completed: int
    failed: int


class ScoreStatistics(BaseModel):
    """One score over the job's results that have it (nulls skipped). ``p25``/``p75`` are
    Python's ``statistics.quantiles(method="inclusive")`` quartiles (linear interpolation
    between order statistics, R's type 7), ``median`` is ``statistics.median``; with a single
    result all three are that score. Null statistics when ``count`` is 0."""

    count: int
    mean: float | None
    p25: float | None
    median: float | None
    p75: float | None


class ScoresStatistics(BaseModel):
    overall: ScoreStatistics
    logic: ScoreStatistics
    relevance: ScoreStatistics
    technical: ScoreStatistics
    communication: ScoreStatistics


class KeywordCount(BaseModel):
    category: str
    keyword: str
    """In lower case: keywords (and categories) are counted case-insensitively."""
    count: int
    """Results mentioning the keyword in that category (once per result)."""


class InsightsOut(BaseModel):
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
