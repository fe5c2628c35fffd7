"""API Gateway (REST, proxy) Lambda: interview sessions, their results and question templates.

Handlers are thin: Powertools validates the request against the function's pydantic models,
the service does the work (one transaction per request), the answer is its response model as
JSON.
Transcripts and feedback are personal data: nothing here logs a request or result body.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from flex_interviews import service
from flex_interviews.schemas import (
    QUESTION_TYPE_MAX_LENGTH,
    CreateInterviewRequest,
    CreateQuestionRequest,
    ResultRequest,
    UpdateInterviewRequest,
)
from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.errors import InvalidInput
from flex_shared.observability import route_layer_logs
from flex_shared.postgres import INT4_MAX
from flex_shared.schemas import ErrorResponse, Text

logger = Logger()
route_layer_logs(logger)
get_settings()  # a misconfigured deployment fails at start-up, naming the variable
app = create_resolver()

QUESTION_LIST_PARAMETERS = frozenset({"job_id", "question_type", "limit", "after_id"})
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def _json(status: int, model: BaseModel) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=model.model_dump_json()
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


# --- applicants --------------------------------------------------------------------------

# The audit line of an erasure is kept whatever LogLevel the deployment runs with: a logger of
# its own, below the function's (same handler, same JSON keys), that always lets INFO through.
audit_logger = logging.getLogger(f"{logger.name}.audit")
audit_logger.setLevel(logging.INFO)

_ERROR_RESPONSE: dict[str, Any] = {"application/json": {"model": ErrorResponse}}


@app.delete(
    "/applicants/<applicant_id>",
    summary="Erase an applicant's interviews (personal data erasure)",
    description=(
        "Deletes every interview session of the applicant and all their results (transcripts,"
        " scores, feedback), in one transaction. Idempotent: 204 again when nothing is left."
        " Question templates and jobs are company data and stay. The erasure is logged as an"
        " audit line with the applicant id and the counts deleted, never the content."
    ),
    responses={
        204: {"description": "Erased (or nothing to erase)", "content": {}},
        422: {
            "description": "applicant_id is not an id (1..2147483647)",
            "content": _ERROR_RESPONSE,
        },
        503: {"description": "database_unavailable", "content": _ERROR_RESPONSE},
        500: {"description": "internal_error", "content": _ERROR_RESPONSE},
    },
)
def erase_applicant(
    applicant_id: Annotated[int, Path(ge=1, le=INT4_MAX)],
) -> Response[None]:
    erased = service.erase_applicant(applicant_id)
    identity = app.current_event.request_context.identity
    audit_logger.info(
        "applicant erased",
        extra={
            "audit": "applicant_erasure",
            "applicant_id": applicant_id,
            "sessions_deleted": erased.sessions,
            "results_deleted": erased.results,
            # Who asked: the IAM principal that signed the request (API Gateway checked it).
            "requested_by": identity.user_arn,
        },
    )
    return Response(status_code=HTTPStatus.NO_CONTENT)


# --- question templates ------------------------------------------------------------------


@app.post("/questions")
def post_question(body: CreateQuestionRequest) -> Response[str]:
    return _json(HTTPStatus.CREATED, service.create_question(body))


@app.get("/questions")
def read_questions(
    job_id: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None,
    # Text: the one rule for text input (no NUL), as in every body.
    question_type: Annotated[
        Text | None, Query(min_length=1, max_length=QUESTION_TYPE_MAX_LENGTH)
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
    answer = service.list_questions(
        job_id=job_id, question_type=question_type, limit=limit, after_id=after_id
    )
    return _json(HTTPStatus.OK, answer)


@app.get("/questions/<question_id>")
def read_question(question_id: int) -> Response[str]:
    return _json(HTTPStatus.OK, service.get_question(question_id))


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true must not put transcripts in logs.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
