"""API Gateway (REST, proxy) Lambda: interview sessions, their results and question templates.

Handlers are thin: Powertools validates the request against the function's pydantic models,
the service does the work (one transaction per request), the answer is its response model as
JSON.
Transcripts and feedback are personal data: nothing here logs a request or result body.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from flex_interviews import service
from flex_interviews.page_cursor import MAX_TOKEN_LENGTH
from flex_interviews.schemas import (
    QUESTION_TYPE_MAX_LENGTH,
    ApplicantsOut,
    CreateInterviewRequest,
    CreateQuestionRequest,
    InsightsOut,
    InterviewOut,
    InterviewResultsOut,
    QuestionListOut,
    ResultOut,
    ResultRequest,
    UpdateInterviewRequest,
)
from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.errors import InvalidInput
from flex_shared.observability import route_layer_logs
from flex_shared.openapi import Success, route_responses
from flex_shared.postgres import INT4_MAX
from flex_shared.schemas import QuestionOut, Text

logger = Logger()
route_layer_logs(logger)
get_settings()  # a misconfigured deployment fails at start-up, naming the variable
app = create_resolver()

QUESTION_LIST_PARAMETERS = frozenset({"job_id", "question_type", "limit", "after_id"})
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
APPLICANTS_PARAMETERS = frozenset({"limit", "after"})
DEFAULT_APPLICANTS_PAGE = 20
MAX_APPLICANTS_PAGE = 100

INTERVIEWS = "Interviews"
RESULTS = "Interview results"
QUESTIONS = "Questions"

InterviewId = Annotated[int, Path(description="The interview session's id.")]
QuestionId = Annotated[int, Path(description="The question template's id.")]

NO_INTERVIEW = "No interview session with this id (`not_found`)."
UNKNOWN_JOB = (
    "`job_id` names no job in search: it never existed, or was removed (`not_found`,"
    " `details` naming `job_id`)."
)

# What a client can do next with a session it holds: the links of its answers (the contract
# tests' stateful phase follows them too).
SESSION_LINKS = {
    "GetInterview": {"operation_id": "get_interview", "interview_id": "$response.body#/id"},
    "UpdateInterview": {"operation_id": "update_interview", "interview_id": "$response.body#/id"},
    "RecordResult": {"operation_id": "record_result", "interview_id": "$response.body#/id"},
    "ListResults": {"operation_id": "list_results", "interview_id": "$response.body#/id"},
}
RESULT_LINKS = {
    "ListResults": {
        "operation_id": "list_results",
        "interview_id": "$response.body#/interview_id",
    },
}


def _json(status: int, model: BaseModel, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=model.model_dump_json(),
        headers=headers,
    )


def _created(model: BaseModel, resource_id: int) -> Response[str]:
    """201 with the created resource and its URL in ``Location``: the collection's path as the
    client asked for it (with the stage or base path API Gateway saw), plus the id."""
    event = app.current_event
    collection = (event.request_context.path or event.path).rstrip("/")
    return _json(HTTPStatus.CREATED, model, {"Location": f"{collection}/{resource_id}"})


def _reject_unknown_parameters(allowed: frozenset[str]) -> None:
    """A misspelt parameter (?jobid=3, ?limt=5) would otherwise be ignored silently."""
    given = app.current_event.query_string_parameters or {}
    unknown = sorted(set(given) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput(
            f"unknown query parameter(s) {', '.join(unknown)} (allowed: {names})",
            details=[{"field": name, "message": "unknown query parameter"} for name in unknown],
        )


# --- sessions ----------------------------------------------------------------------------


@app.post(
    "/interviews",
    operation_id="create_interview",
    tags=[INTERVIEWS],
    summary="Open an interview session",
    description="Opens a session for an applicant and a job in search: status `pending`,"
    " question 0. Start it with `PATCH` (`status: in_progress`) before posting results.",
    responses=route_responses(
        Success(
            201,
            InterviewOut,
            "The new session.",
            location="The new session's URL.",
            links=SESSION_LINKS,
        ),
        errors={404: UNKNOWN_JOB},
        reads_body=True,
    ),
)
def post_interview(body: CreateInterviewRequest) -> Response[str]:
    created = service.create_interview(body)
    return _created(created, created.id)


@app.get(
    "/interviews/<interview_id>",
    operation_id="get_interview",
    tags=[INTERVIEWS],
    summary="Read an interview session",
    description="The session's status, current question and timestamps.",
    responses=route_responses(
        Success(200, InterviewOut, "The session."), errors={404: NO_INTERVIEW}
    ),
)
def read_interview(interview_id: InterviewId) -> Response[str]:
    return _json(HTTPStatus.OK, service.get_interview(interview_id))


@app.patch(
    "/interviews/<interview_id>",
    operation_id="update_interview",
    tags=[INTERVIEWS],
    summary="Move a session through its states, or to another question",
    description="`pending -> in_progress` sets `started_at`; `in_progress -> completed` sets"
    " `completed_at`; `pending` or `in_progress -> failed`. Any other change of status,"
    " repeating the current one included, is a 409, as is a new `current_question_index`"
    " for a finished session. Concurrent changes are serialised: of two from the same state,"
    " one wins and the other gets a 409.",
    responses=route_responses(
        Success(200, InterviewOut, "The session after the change."),
        errors={
            404: NO_INTERVIEW,
            409: "The transition is not allowed from the current status, or the session is"
            " finished (`conflict`; `details` name the states).",
            422: "`{}` (nothing to change), or a null field (leave it out instead).",
        },
        reads_body=True,
    ),
)
def patch_interview(interview_id: InterviewId, body: UpdateInterviewRequest) -> Response[str]:
    return _json(HTTPStatus.OK, service.update_interview(interview_id, body))


# --- results -----------------------------------------------------------------------------


@app.post(
    "/interviews/<interview_id>/results",
    operation_id="record_result",
    tags=[RESULTS],
    summary="Record the analysis of one answer",
    description="One result per question of a session: the first post for a `question_id` is"
    " a 201, a later one replaces it entirely (fields left out become null) and is a 200."
    " Scores are 0..100 or null; `overall_score` left out is the mean of the component scores"
    " given. A `pending` session refuses results; `in_progress`, `completed` and `failed`"
    " sessions accept them (analysis may finish after the session).",
    responses=route_responses(
        Success(201, ResultOut, "The result, new for this question.", links=RESULT_LINKS),
        Success(200, ResultOut, "The result, replacing the earlier one for this question."),
        errors={
            404: NO_INTERVIEW,
            409: "The session is still `pending`: start it first (`conflict`).",
        },
        reads_body=True,
    ),
)
def post_result(interview_id: InterviewId, body: ResultRequest) -> Response[str]:
    answer, inserted = service.save_result(interview_id, body)
    # Ids only: the result holds a transcript and feedback.
    logger.info(
        "result saved",
        extra={
            "interview_id": interview_id,
            "question_id": body.question_id,
            "replaced": not inserted,
        },
    )
    return _json(HTTPStatus.CREATED if inserted else HTTPStatus.OK, answer)


@app.get(
    "/interviews/<interview_id>/results",
    operation_id="list_results",
    tags=[RESULTS],
    summary="Read a session's results and their summary",
    description="Every result in question order, with a summary: the count, the average of"
    " each score (nulls skipped) and how many results mention each keyword.",
    responses=route_responses(
        Success(200, InterviewResultsOut, "The results and their summary."),
        errors={404: NO_INTERVIEW},
    ),
)
def read_results(interview_id: InterviewId) -> Response[str]:
    return _json(HTTPStatus.OK, service.list_results(interview_id))


# --- question templates ------------------------------------------------------------------


@app.post(
    "/questions",
    operation_id="create_question",
    tags=[QUESTIONS],
    summary="Add a question template",
    description="A question for one job (`job_id`) or for every job (`job_id` null or left"
    " out), with what a good answer mentions (`expected_keywords`) and how to judge it.",
    responses=route_responses(
        Success(
            201,
            QuestionOut,
            "The new question template, its `id` included.",
            location="The new question's URL.",
            links={
                "GetQuestion": {
                    "operation_id": "get_question",
                    "question_id": "$response.body#/id",
                },
            },
        ),
        errors={404: UNKNOWN_JOB},
        reads_body=True,
    ),
)
def post_question(body: CreateQuestionRequest) -> Response[str]:
    created = service.create_question(body)
    return _created(created, created.id)


@app.get(
    "/questions",
    operation_id="list_questions",
    tags=[QUESTIONS],
    summary="List question templates",
    description="In id order, `limit` at a time; pass `next_after_id` as `after_id` for the"
    " next page. `job_id` keeps one job's questions, `question_type` one type. An unknown"
    " query parameter is a 422 (a misspelt filter would otherwise list everything).",
    responses=route_responses(
        Success(200, QuestionListOut, "One page of questions."),
        errors={422: "An unknown query parameter (`invalid_input`)."},
    ),
)
def read_questions(
    job_id: Annotated[
        int | None, Query(ge=1, le=INT4_MAX, description="Only this job's questions.")
    ] = None,
    # Text: the one rule for text input (no NUL), as in every body.
    question_type: Annotated[
        Text | None,
        Query(
            min_length=1,
            max_length=QUESTION_TYPE_MAX_LENGTH,
            description="Only questions of this type.",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description="The page size.")
    ] = DEFAULT_PAGE_SIZE,
    after_id: Annotated[
        int, Query(ge=0, le=INT4_MAX, description="Questions after this id (`next_after_id`).")
    ] = 0,
) -> Response[str]:
    # A misspelt filter (?jobid=3) would otherwise be ignored and list every question.
    _reject_unknown_parameters(QUESTION_LIST_PARAMETERS)
    answer = service.list_questions(
        job_id=job_id, question_type=question_type, limit=limit, after_id=after_id
    )
    return _json(HTTPStatus.OK, answer)


@app.get(
    "/questions/<question_id>",
    operation_id="get_question",
    tags=[QUESTIONS],
    summary="Read a question template",
    responses=route_responses(
        Success(200, QuestionOut, "The question template."),
        errors={404: "No question template with this id (`not_found`)."},
    ),
)
def read_question(question_id: QuestionId) -> Response[str]:
    return _json(HTTPStatus.OK, service.get_question(question_id))


# --- hiring insights ---------------------------------------------------------------------

APPLICANTS = "Hiring insights"
JobId = Annotated[int, Path(description="The job's id (a job taken out of search included).")]
NO_JOB = "No job has ever had this id (`not_found`); a job taken out of search still answers."


@app.get(
    "/jobs/<job_id>/applicants",
    operation_id="list_applicants",
    tags=[APPLICANTS],
    summary="Rank a job's applicants",
    description="The job's applicants by the mean `overall_score` of the results of their"
    " completed sessions for the job, highest first, ties by `applicant_id`; applicants"
    " without one (no completed session, or nothing scored) follow with null averages."
    " `limit` at a time; pass `next` as `after` for the next page (a boundary inside a tie"
    " neither skips nor repeats anyone).",
    responses=route_responses(
        Success(200, ApplicantsOut, "One page of the ranking."),
        errors={
            404: NO_JOB,
            422: "`limit` outside 1..100, an `after` cursor this API did not give for this"
            " job (malformed, modified, or another job's), or an unknown query parameter"
            " (`invalid_input`, `details` naming it).",
        },
    ),
)
def read_applicants(
    job_id: JobId,
    limit: Annotated[
        int, Query(ge=1, le=MAX_APPLICANTS_PAGE, description="The page size.")
    ] = DEFAULT_APPLICANTS_PAGE,
    after: Annotated[
        Text | None,
        Query(
            min_length=1,
            max_length=MAX_TOKEN_LENGTH,
            description="The previous page's `next`, unchanged.",
        ),
    ] = None,
) -> Response[str]:
    _reject_unknown_parameters(APPLICANTS_PARAMETERS)
    return _json(HTTPStatus.OK, service.list_applicants(job_id, limit=limit, after=after))


@app.get(
    "/jobs/<job_id>/insights",
    operation_id="get_insights",
    tags=[APPLICANTS],
    summary="What a job's interviews show",
    description="Over all the job's sessions and their results: sessions by status, the"
    " results, count/mean/quartiles of each score, the 20 most frequent keywords of each"
    " category, and how much of the questions' expected keywords the answers mention. A job"
    " without interviews answers zeros and nulls.",
    responses=route_responses(
        Success(200, InsightsOut, "The job's insights."),
        errors={404: NO_JOB, 422: "An unknown query parameter (`invalid_input`)."},
    ),
)
def read_insights(job_id: JobId) -> Response[str]:
    _reject_unknown_parameters(frozenset())
    return _json(HTTPStatus.OK, service.job_insights(job_id))


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true must not put transcripts in logs.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
