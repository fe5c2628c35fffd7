"""What each API route declares in the OpenAPI document: its success responses (status, model,
headers, links) and every error status it can answer, all with the one error body
(:class:`flex_shared.schemas.ErrorResponse`).

The handlers answer JSON serialised once by pydantic (``Response[str]``: the fast path, see
``bench/bench_api_serialisation.py``), so Powertools cannot read their response models from the
return type; each route passes ``responses=route_responses(...)`` instead, which also replaces
Powertools' default 422 (FastAPI's ``HTTPValidationError``, which these APIs never answer).

Every route can answer 422 (a path, query or body value of the wrong type or range), 500 (a bug:
``internal_error`` with the request id) and 503 (``database_unavailable``), and, in AWS, API
Gateway's own 403 and 429; a route that reads a body adds 400 and 415. A route names the rest
(404, 409, search's embedding 503) with what they mean there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel

from .schemas import ErrorResponse, GatewayError

JSON = "application/json"

ERRORS: dict[int, str] = {
    400: "Malformed JSON (`validation_error`): not JSON, `NaN`/`Infinity`, a number out of"
    " range, an unpaired surrogate escape, or a body that is not valid base64/UTF-8.",
    415: "The body is neither `application/json` nor a form-encoded JSON text"
    " (`unsupported_media_type`).",
    422: "A value of the wrong type, out of range, an unknown field or NUL in a text"
    " (`validation_error`, `invalid_input`); `details` names each field.",
    500: "A bug (`internal_error`): nothing was changed; `request_id` finds it in the logs.",
    503: "The database is unavailable (`database_unavailable`); nothing was changed; retry later.",
}
"""What each error status means on every route that can answer it; a route may say more."""

GATEWAY_ERRORS: dict[int, str] = {
    403: 'Answered by API Gateway (body `{"message"}`): the request is not signed with'
    " SigV4, its signature or credentials are refused, the caller may not invoke the route,"
    " or the route does not exist (`Missing Authentication Token`). Not checked by the local"
    " API, which answers 403 only for unknown routes.",
    429: 'Answered by API Gateway (body `{"message"}`): the stage\'s throttling limit is'
    " reached; retry with backoff.",
}
"""Statuses API Gateway answers itself, before the function runs."""


@dataclass(frozen=True)
class Success:
    """One success answer of a route."""

    status: int
    model: type[BaseModel] | None
    """The JSON body's model; None for an answer without a body (204)."""
    description: str
    location: str | None = None
    """What the ``Location`` header names (the created resource), when the answer has one."""
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """OpenAPI links: ``{name: {operation_id: ..., parameter: "$response.body#/id"}}``, written
    as ``{name: {"operationId": ..., "parameters": {parameter: expression}}}``; clients and the
    contract tests (stateful phase) follow them from this answer to the next call."""


def _link(spec: Mapping[str, str]) -> dict[str, Any]:
    operation = spec["operation_id"]
    parameters = {name: value for name, value in spec.items() if name != "operation_id"}
    return {"operationId": operation, "parameters": parameters}


def _success(success: Success) -> OpenAPIResponse:
    answer: OpenAPIResponse = {"description": success.description}
    if success.model is not None:
        answer["content"] = {JSON: {"model": success.model}}
    if success.location is not None:
        location = {
            "description": success.location,
            "required": True,
            "schema": {"type": "string", "format": "uri-reference"},
        }
        answer["headers"] = {"Location": cast(OpenAPIResponseHeader, location)}
    if success.links:
        answer["links"] = {name: _link(spec) for name, spec in success.links.items()}
    return answer


def _error(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {JSON: {"model": model}}}


def route_responses(
    *successes: Success, errors: Mapping[int, str] | None = None, reads_body: bool = False
) -> dict[int, OpenAPIResponse]:
    """The ``responses=`` of a route: its successes, the errors every route can answer (plus
    400 and 415 when it ``reads_body``), and its own ``errors`` (status -> what it means on
    this route; a status of :data:`ERRORS` given here is described with the route's words
    first)."""
    documented: dict[int, OpenAPIResponse] = {s.status: _success(s) for s in successes}
    statuses = {422, 500, 503} | ({400, 415} if reads_body else set()) | set(errors or {})
    own = errors or {}
    for status in sorted(statuses):
        generic = ERRORS.get(status)
        description = " ".join(text for text in (own.get(status), generic) if text)
        if not description:
            raise ValueError(f"status {status} needs a description")
        documented[status] = _error(description, ErrorResponse)
    for status, description in GATEWAY_ERRORS.items():
        documented[status] = _error(description, GatewayError)
    return dict(sorted(documented.items()))
