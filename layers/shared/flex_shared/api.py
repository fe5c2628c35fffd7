"""What the two API functions share: the resolver with validation and one JSON error shape.

Every error body is ``{"error": {"code", "message", "details"?}}``. Caller mistakes are 4xx
(malformed JSON 400, another media type 415, schema violations 422, missing rows 404, state
conflicts 409). Only a dependency's failure is a 503, its code naming the dependency
(``database_unavailable``: the driver, the network, the server's own distress;
``embedding_unavailable``: the embedding service). Anything else is a bug: a 500
``internal_error``, logged with its stack trace, the body holding nothing of it but the request
id that finds the log lines. 5xx bodies carry ``request_id``.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .db import constraint_name, sqlstate
from .errors import Conflict, DependencyUnavailable, InvalidInput, NotFound

logger = logging.getLogger(__name__)


class _NotStrictJson(ValueError):
    pass


def _reject_non_finite(token: str) -> float:
    raise _NotStrictJson(f"{token} is not valid JSON")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise _NotStrictJson(f"number {token[:40]} is out of range")
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""After decoding, a paired escape (``"\\ud83d\\ude00"``) is one code point: any surrogate
left is unpaired."""


def _holds_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(
            _holds_lone_surrogate(key) or _holds_lone_surrogate(item) for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False


def parse_json_strict(raw: str) -> Any:
    """``json.loads`` without Python's NaN/Infinity extension, without numbers that overflow
    to infinity and without unpaired surrogate escapes (``"\\ud800"``: not text, UTF-8 cannot
    encode it, PostgreSQL refuses it). Every rejection is a ``json.JSONDecodeError``, so
    Powertools' validation answers it as malformed JSON (400) instead of failing with a 500
    (its parser catches only that class; over-long integers and deep nesting raise others)."""
    try:
        parsed = json.loads(raw, parse_constant=_reject_non_finite, parse_float=_finite_float)
        if _holds_lone_surrogate(parsed):
            raise _NotStrictJson("a string holds an unpaired surrogate (\\ud800-\\udfff)")
        return parsed
    except json.JSONDecodeError:
        raise
    except _NotStrictJson as exc:
        raise json.JSONDecodeError(str(exc), raw, 0) from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit limit
        raise json.JSONDecodeError(str(exc).split(":")[0], raw, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", raw, 0) from None


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    request_id: str | None = None,
) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    if request_id:
        error["request_id"] = request_id
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"error": error}, ensure_ascii=False, allow_nan=False),
    )


def _field(location: Any) -> str:
    parts = [str(part) for part in location if part != "body"] if location else []
    return ".".join(parts) or "body"


def _describe_validation(errors: Any) -> tuple[int, str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    for error in errors:
        if error.get("type") == "json_invalid":
            status = HTTPStatus.BAD_REQUEST
            reason = (error.get("ctx") or {}).get("error") or "malformed JSON"
            details.append({"field": "body", "message": f"malformed JSON: {reason}"})
            continue
        location = error.get("loc") or ()
        field = (
            "body"
            if location and location[-1] == "body" and len(location) <= 2
            else _field(
                location[1:] if location and location[0] in ("body", "query", "path") else location
            )
        )
        details.append(
            {
                "field": field,
                "message": str(error.get("msg", "invalid")),
                "type": str(error.get("type", "invalid")),
            }
        )
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
    return status, summary, details


DATABASE_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""Server errors that are the database's distress, not the request's fault nor a bug:
connection exception, transaction rollback (serialization failure, deadlock), insufficient
resources, operator intervention (shutdown, statement cancelled), system error (I/O)."""

_JSON_MEDIA_TYPE = "application/json"
_FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_UNSUPPORTED_MEDIA_TYPE = "application/x-flex-unsupported"
"""What the resolver shows Powertools for any other media type: a value it refuses with
``RequestUnsupportedContentType`` (415) on routes that read a body, where it would otherwise
read ``multipart/form-data`` as form fields (or fail with ``ValueError: Missing boundary``) and
take ``application/jsonp`` for JSON (it compares prefixes, case-sensitively)."""


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value: lowercased (RFC 9110 8.3.1: type and subtype
    are case-insensitive), without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def _with_content_type(event: Mapping[str, Any], content_type: str | None) -> dict[str, Any]:
    """``event`` with its Content-Type header replaced (``None``: removed)."""

    def replaced(headers: Mapping[str, Any], value: Any) -> dict[str, Any]:
        kept = {name: item for name, item in headers.items() if name.lower() != "content-type"}
        return kept if content_type is None else {**kept, "Content-Type": value}

    return {
        **event,
        "headers": replaced(event.get("headers") or {}, content_type),
        "multiValueHeaders": replaced(event.get("multiValueHeaders") or {}, [content_type]),
    }


class JsonApiResolver(APIGatewayRestResolver):
    """The APIs speak JSON only, and read media types case-insensitively
    (``Application/JSON; charset=UTF-8`` is JSON). A body sent as a form (``curl -d`` does so by
    default) is read as JSON too, so a caller gets the JSON answer or a clear 400, not a field
    list of the form; any other media type (``multipart/form-data`` with or without a boundary,
    ``text/plain``, ...) is a 415 on every route that reads a body."""

    declared_content_type = ""
    """The request's Content-Type as the client sent it (the 415 answer names it). Per request,
    like Powertools' own ``current_event``: a Lambda container serves one event at a time."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        headers = event.get("headers") or {}
        declared = next(
            (str(value) for name, value in headers.items() if name.lower() == "content-type"), ""
        )
        self.declared_content_type = declared
        if declared.strip():
            kind = media_type(declared)
            if kind == _JSON_MEDIA_TYPE:
                event = _with_content_type(event, _JSON_MEDIA_TYPE)
            elif kind == _FORM_MEDIA_TYPE:
                event = _with_content_type(event, None)
            else:
                event = _with_content_type(event, _UNSUPPORTED_MEDIA_TYPE)
        return super().resolve(event, context)


def create_resolver() -> JsonApiResolver:
    """A JSON ``APIGatewayRestResolver`` with pydantic validation and the shared error mapping."""
    app = JsonApiResolver(
        enable_validation=True,
        # NaN, Infinity and overflowing numbers are malformed JSON (400), never stored or echoed.
        json_body_deserializer=parse_json_strict,
        # Debug mode (POWERTOOLS_DEV) prints every event, bodies included, to the logs: request
        # bodies hold personal data (interview transcripts), so it stays off whatever the env.
        debug=False,
    )

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        status, message, details = _describe_validation(exc.errors())
        return error_response(status, "validation_error", message, details)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_media(exc: RequestUnsupportedContentType) -> Response[Any]:
        content_type = app.declared_content_type
        return error_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"body must be application/json, not {content_type[:100]}",
        )

    # A base64-flagged body that is not base64, or not UTF-8 once decoded: Powertools decodes
    # it before validation and lets these escape (a 500 otherwise).
    @app.exception_handler(binascii.Error)
    @app.exception_handler(UnicodeDecodeError)
    def _undecodable_body(exc: ValueError) -> Response[Any]:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "validation_error",
            "body: not decodable (invalid base64 or not UTF-8)",
            [{"field": "body", "message": "not decodable (invalid base64 or not UTF-8)"}],
        )

    @app.exception_handler(InvalidInput)
    def _invalid_input(exc: InvalidInput) -> Response[Any]:
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, exc.code, exc.message, exc.details)

    @app.exception_handler(NotFound)
    def _not_found(exc: NotFound) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, exc.code, exc.message, exc.details)

    @app.exception_handler(NotFoundError)
    def _no_route(exc: NotFoundError) -> Response[Any]:
        event = app.current_event
        return error_response(
            HTTPStatus.NOT_FOUND,
            "route_not_found",
            f"no route for {event.http_method} {event.path}",
        )

    @app.exception_handler(Conflict)
    def _conflict(exc: Conflict) -> Response[Any]:
        return error_response(HTTPStatus.CONFLICT, exc.code, exc.message, exc.details)

    def request_id() -> str:
        return str(app.current_event.request_context.request_id or "")

    def unavailable(code: str, message: str) -> Response[Any]:
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE, code, message, request_id=request_id()
        )

    def internal_error(exc: Exception) -> Response[Any]:
        # Whatever no handler maps is a bug (a stored row the response model rejects, a
        # KeyError...): never a bare 502, never an outage, nothing of it in the body.
        logger.exception("unhandled error answered 500", extra={"error": type(exc).__name__})
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request could not be completed; the request id finds it in the logs",
            request_id=request_id(),
        )

    app.exception_handler(Exception)(internal_error)

    @app.exception_handler(DependencyUnavailable)
    def _dependency(exc: DependencyUnavailable) -> Response[Any]:
        # The detail (model, attempts, last error) is for the operator, not the caller.
        logger.warning(
            "dependency unavailable",
            extra={"dependency": exc.dependency, "code": exc.code, "detail": exc.message},
        )
        return unavailable(exc.code, f"the {exc.dependency} is unavailable; try again later")

    # The driver or the network failed (the engine wraps bare socket errors as these), or no
    # pooled connection came free in time.
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    def _database_down(exc: Exception) -> Response[Any]:
        logger.warning("database unavailable", exc_info=True)
        return unavailable("database_unavailable", "the database is unavailable; try again later")

    @app.exception_handler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response[Any]:
        code = sqlstate(exc) or ""
        if code.startswith("23"):
            # An integrity violation the domain did not foresee (e.g. a row removed by a
            # concurrent request): the request conflicts with the data, it is not an outage.
            logger.warning(
                "integrity violation answered 409",
                extra={"sqlstate": code, "constraint": constraint_name(exc)},
            )
            return error_response(
                HTTPStatus.CONFLICT, "conflict", "the request conflicts with the current data"
            )
        if exc.connection_invalidated or code[:2] in DATABASE_UNAVAILABLE_SQLSTATE_CLASSES:
            logger.warning("database unavailable", extra={"sqlstate": code}, exc_info=True)
            return unavailable(
                "database_unavailable", "the database is unavailable; try again later"
            )
        return internal_error(exc)  # e.g. a statement the server refuses: our SQL is wrong

    return app
