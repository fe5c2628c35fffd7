"""API Gateway (REST, proxy) Lambda: interview sessions, their results and question templates.

Handlers are thin: Powertools validates the request against the layer's pydantic models, the
domain module does the work inside one transaction, the answer is the response model as JSON.
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
from interview_results_service import (
    create_interview,
    create_question,
    get_interview,
    get_question,
    list_questions,
    list_results,
    save_result,
    update_interview,
)
from interview_results_summary import summarize
from pydantic import BaseModel

from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.db import connection_transaction
from flex_shared.errors import InvalidInput
from flex_shared.observability import route_layer_logs
from flex_shared.schemas.interviews import (
    INT32_MAX,
    QUESTION_TYPE_MAX_LENGTH,
    CreateInterviewRequest,
    CreateQuestionRequest,
    InterviewOut,
    InterviewResultsOut,
    QuestionListOut,
    QuestionOut,
    ResultOut,
    ResultRequest,
    UpdateInterviewRequest,
)

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
    with connection_transaction() as connection:
        interview = create_interview(connection, body)
        return _json(HTTPStatus.CREATED, InterviewOut.model_validate(interview))


@app.get("/interviews/<interview_id>")
def read_interview(interview_id: int) -> Response[str]:
    with connection_transaction() as connection:
        interview = get_interview(connection, interview_id)
        return _json(HTTPStatus.OK, InterviewOut.model_validate(interview))


@app.patch("/interviews/<interview_id>")
def patch_interview(interview_id: int, body: UpdateInterviewRequest) -> Response[str]:
    with connection_transaction() as connection:
        interview = update_interview(connection, interview_id, body)
        return _json(HTTPStatus.OK, InterviewOut.model_validate(interview))


# --- results -----------------------------------------------------------------------------


@app.post("/interviews/<interview_id>/results")
def post_result(interview_id: int, body: ResultRequest) -> Response[str]:
    with connection_transaction() as connection:
        result, inserted = save_result(connection, interview_id, body)
        answer = ResultOut.model_validate(result)
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
    with connection_transaction() as connection:
        results = [ResultOut.model_validate(row) for row in list_results(connection, interview_id)]
    answer = InterviewResultsOut(
        interview_id=interview_id, results=results, summary=summarize(results)
    )
    return _json(HTTPStatus.OK, answer)


# --- question templates ------------------------------------------------------------------


@app.post("/questions")
def post_question(body: CreateQuestionRequest) -> Response[str]:
    with connection_transaction() as connection:
        return _json(
            HTTPStatus.CREATED, QuestionOut.model_validate(create_question(connection, body))
        )


@app.get("/questions")
def read_questions(
    job_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    question_type: Annotated[
        str | None, Query(min_length=1, max_length=QUESTION_TYPE_MAX_LENGTH)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    after_id: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
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
    with connection_transaction() as connection:
        questions, next_after_id = list_questions(
            connection, job_id=job_id, question_type=question_type, limit=limit, after_id=after_id
        )
        answer = QuestionListOut(
            questions=[QuestionOut.model_validate(question) for question in questions],
            next_after_id=next_after_id,
        )
    return _json(HTTPStatus.OK, answer)


@app.get("/questions/<question_id>")
def read_question(question_id: int) -> Response[str]:
    with connection_transaction() as connection:
        return _json(
            HTTPStatus.OK, QuestionOut.model_validate(get_question(connection, question_id))
        )


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true must not put transcripts in logs.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
