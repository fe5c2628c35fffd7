"""Search API (SPEC.md, "Search API"): ``POST /search``, ``GET /jobs/{job_id}`` and
``GET /jobs/{job_id}/questions/suggested``.

API Gateway REST proxy events in, JSON out. Validation (422 naming the field, 400 for malformed
JSON) and the error shape come from the layer's resolver; the work is in ``flex_search.service``.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from flex_search import service
from flex_search.schemas import (
    JobResponse,
    SearchRequest,
    SearchResponse,
    SuggestedQuestionsResponse,
)
from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.embeddings import deadline_from_context
from flex_shared.observability import embedding_usage_metrics, function_metrics, route_layer_logs
from flex_shared.openapi import Success, route_responses
from flex_shared.postgres import INT4_MAX

get_settings()  # a misconfigured deployment fails at start-up, naming the variable
logger = Logger()
route_layer_logs(logger)
metrics = function_metrics("search")
app = create_resolver()

QUERY_EMBEDDING_RESERVE_SECONDS = 3.0
"""Lambda time kept back from the query embedding's retries for the database and the answer:
under a Bedrock throttling storm the caller gets a JSON 503 naming the embedding service
instead of a timed-out Lambda (API Gateway's bare 502, and no reason in the logs)."""


DEFAULT_SUGGESTED_QUESTIONS = 5


def _json(body: str) -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=body)


@app.post(
    "/search",
    operation_id="search",
    tags=["Search"],
    summary="Find the job-description passages that match a query",
    description="Embeds `query` and answers the `top_k` best chunks of the job descriptions in"
    " search, best first. `mode`: `vector` (nearest by meaning, the default), `keyword` (chunks"
    " containing every word of the query: English stemmed, Korean whatever particle follows)"
    " or `hybrid` (both lists fused by reciprocal rank). `job_id` and `company_id` filter in"
    " every mode; `min_similarity` drops results whose cosine similarity is lower. Every"
    " result has the `metric`'s `distance`, its cosine `similarity` and the `score` the list"
    " is ordered by. The answer holds `min(top_k, matching chunks)` results.",
    responses=route_responses(
        Success(200, SearchResponse, "The matching chunks, best first (possibly none)."),
        errors={
            422: "`query` is empty, blank or over 50,000 characters, or a field is out of range.",
            503: "The embedding service is unavailable or throttled past the request's time"
            " (`embedding_unavailable`).",
        },
        reads_body=True,
    ),
)
def post_search(request: SearchRequest) -> Response[str]:
    deadline = deadline_from_context(
        app.lambda_context, reserve_seconds=QUERY_EMBEDDING_RESERVE_SECONDS
    )
    return _json(service.search(request, deadline=deadline).model_dump_json())


@app.get(
    "/jobs/<job_id>",
    operation_id="get_job",
    tags=["Jobs"],
    summary="Read a job description in search",
    description="The job ingested from S3, with its full description and how many chunks it"
    " was split into. A job whose object was removed from the bucket is out of search: 404.",
    responses=route_responses(
        Success(200, JobResponse, "The job."),
        errors={404: "No job with this id is in search (`not_found`)."},
    ),
)
def get_job(
    job_id: Annotated[int, Path(ge=1, le=INT4_MAX, description="The job's id.")],
) -> Response[str]:
    return _json(service.read_job(job_id).model_dump_json())


@app.get(
    "/jobs/<job_id>/questions/suggested",
    operation_id="suggest_questions",
    tags=["Jobs"],
    summary="Question templates that fit a job",
    description="The job's own and the general question templates (`job_id` null), ranked by"
    " the cosine similarity of each question to the job description's nearest chunk (that"
    " chunk's `chunk_index` is given), most similar first. A question is embedded once and"
    " kept until its text changes.",
    responses=route_responses(
        Success(200, SuggestedQuestionsResponse, "The `top_k` best questions (possibly none)."),
        errors={
            404: "No job with this id is in search (`not_found`): it never existed, or was"
            " taken out of search (its interviews keep their applicants and insights).",
            409: "The job's description was embedded by another model than the current one"
            " (`conflict`): it is compared again once ingested again.",
            503: "The embedding service is unavailable or throttled past the request's time"
            " (`embedding_unavailable`).",
        },
    ),
)
def get_suggested_questions(
    job_id: Annotated[int, Path(ge=1, le=INT4_MAX, description="The job's id.")],
    top_k: Annotated[
        int, Query(ge=1, le=50, description="How many questions to answer.")
    ] = DEFAULT_SUGGESTED_QUESTIONS,
) -> Response[str]:
    deadline = deadline_from_context(
        app.lambda_context, reserve_seconds=QUERY_EMBEDDING_RESERVE_SECONDS
    )
    return _json(service.suggest_questions(job_id, top_k, deadline=deadline).model_dump_json())


# The API Gateway request id on every log line: the access log's requestId finds them.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with embedding_usage_metrics(metrics):
        return app.resolve(event, context)
