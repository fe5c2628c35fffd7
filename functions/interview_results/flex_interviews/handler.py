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
from aws_lambda_powertools.event_handler.openapi.params import Query
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
    ResultRequest,
    UpdateInterviewRequest,
)
from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.errors import InvalidInput
from flex_shared.postgres import INT4_MAX

logger = Logger()
get_settings()  # a misconfigured deployment fails at start-up, naming the variable
app = create_resolver()

QUESTION_LIST_PARAMETERS = frozenset({"job_id", "question_type", "limit", "after_id"})
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
APPLICANTS_PARAMETERS = frozenset({"limit", "after"})
DEFAULT_APPLICANTS_PAGE = 20
MAX_APPLICANTS_PAGE = 100


def _json(status: int, model: BaseModel) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=model.model_dump_json()
    )


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


@app.post("/interviews")
def post_interview(body: CreateInterviewRequest) -> Response[str]:
    return _json(HTTPStatus.CREATED, service.create_interview(body))


@app.get("/interviews/<interview_id>")
def read_interview(interview_id: int) -> Response[str]:
    return _json(HTTPStatus.OK, service.get_interview(interview_id))


@app.patch("/interviews/<interview_id>")
def patch_interview(interview_id: int, body: UpdateInterviewRequest) -> Response[str]:
    return _json(HTTPStatus.OK, service.update_interview(interview_id, body))


# --- results -----------------------------------------------------------------------------


@app.post("/interviews/<interview_id>/results")
def post_result(interview_id: int, body: ResultRequest) -> Response[str]:
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


@app.get("/interviews/<interview_id>/results")
def read_results(interview_id: int) -> Response[str]:
    return _json(HTTPStatus.OK, service.list_results(interview_id))


# --- question templates ------------------------------------------------------------------


@app.post("/questions")
def post_question(body: CreateQuestionRequest) -> Response[str]:
    return _json(HTTPStatus.CREATED, service.create_question(body))


@app.get("/questions")
def read_questions(
    job_id: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None,
    question_type: Annotated[
        str | None, Query(min_length=1, max_length=QUESTION_TYPE_MAX_LENGTH)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after_id: Annotated[int, Query(ge=0, le=INT4_MAX)] = 0,
) -> Response[str]:
    # A misspelt filter (?jobid=3) would otherwise be ignored and list every question.
    given = app.current_event.query_string_parameters or {}
    unknown = sorted(set(given) - QUESTION_LIST_PARAMETERS)
    if unknown:
        allowed = ", ".join(sorted(QUESTION_LIST_PARAMETERS))
        raise InvalidInput(
            f"unknown query parameter(s) {', '.join(unknown)} (allowed: {allowed})",
            details=[{"field": name, "message": "unknown query parameter"} for name in unknown],
        )
    if question_type is not None and "\x00" in question_type:
        # PostgreSQL text cannot hold NUL: no question has it, and the driver would fail.
        raise InvalidInput(
            "question_type must not contain the NUL character (%00)",
            details=[{"field": "question_type", "message": "must not contain NUL"}],
        )
    answer = service.list_questions(
        job_id=job_id, question_type=question_type, limit=limit, after_id=after_id
    )
    return _json(HTTPStatus.OK, answer)


@app.get("/questions/<question_id>")
def read_question(question_id: int) -> Response[str]:
    return _json(HTTPStatus.OK, service.get_question(question_id))


# --- hiring insights ---------------------------------------------------------------------


@app.get("/jobs/<job_id>/applicants")
def read_applicants(
    job_id: int,
    limit: Annotated[int, Query(ge=1, le=MAX_APPLICANTS_PAGE)] = DEFAULT_APPLICANTS_PAGE,
    after: Annotated[str | None, Query(min_length=1, max_length=MAX_TOKEN_LENGTH)] = None,
) -> ApplicantsOut:
    _reject_unknown_parameters(APPLICANTS_PARAMETERS)
    return service.list_applicants(job_id, limit=limit, after=after)


@app.get("/jobs/<job_id>/insights")
def read_insights(job_id: int) -> InsightsOut:
    _reject_unknown_parameters(frozenset())
    return service.job_insights(job_id)


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true must not put transcripts in logs.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
