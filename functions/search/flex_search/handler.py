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
from flex_search.schemas import SearchRequest, SuggestedQuestionsResponse
from flex_shared.api import create_resolver
from flex_shared.config import get_settings
from flex_shared.embeddings import deadline_from_context
from flex_shared.postgres import INT4_MAX

get_settings()  # a misconfigured deployment fails at start-up, naming the variable
logger = Logger()
app = create_resolver()

QUERY_EMBEDDING_RESERVE_SECONDS = 3.0
"""Lambda time kept back from the query embedding's retries for the database and the answer:
under a Bedrock throttling storm the caller gets a JSON 503 naming the embedding service
instead of a timed-out Lambda (API Gateway's bare 502, and no reason in the logs)."""


def _json(body: str) -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=body)


@app.post("/search")
def post_search(request: SearchRequest) -> Response[Any]:
    deadline = deadline_from_context(
        app.lambda_context, reserve_seconds=QUERY_EMBEDDING_RESERVE_SECONDS
    )
    return _json(service.search(request, deadline=deadline).model_dump_json())


@app.get("/jobs/<job_id>")
def get_job(job_id: Annotated[int, Path(ge=1, le=INT4_MAX)]) -> Response[Any]:
    return _json(service.read_job(job_id).model_dump_json())


@app.get("/jobs/<job_id>/questions/suggested")
def get_suggested_questions(
    job_id: Annotated[int, Path(ge=1, le=INT4_MAX)],
    top_k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SuggestedQuestionsResponse:
    deadline = deadline_from_context(
        app.lambda_context, reserve_seconds=QUERY_EMBEDDING_RESERVE_SECONDS
    )
    return service.suggest_questions(job_id, top_k, deadline=deadline)


# The API Gateway request id on every log line: the access log's requestId finds them.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
