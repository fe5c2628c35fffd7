"""What the two API functions share: the resolver with validation and one JSON error shape.

Every error body is ``{"error": {"code", "message", "details"?}}``. Caller mistakes are 4xx
(malformed JSON 400, schema violations 422, missing rows 404, state conflicts 409);
dependency failures are 503 naming the dependency; nothing else leaks a stack trace.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .db import sqlstate
from .errors import Conflict, DependencyUnavailable, InvalidInput, NotFound

logger = Logger(child=True)


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
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
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


_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class JsonApiResolver(APIGatewayRestResolver):
    """The APIs speak JSON only. A body sent as a form (``curl -d`` does so by default) is read
    as JSON too, so a caller gets the JSON answer or a clear 400, not a field list of the form."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        headers = event.get("headers") or {}
        if any(
            name.lower() == "content-type" and str(value).lower().startswith(_FORM_CONTENT_TYPE)
            for name, value in headers.items()
        ):
            event = {
                **event,
                "headers": {
                    name: value for name, value in headers.items() if name.lower() != "content-type"
                },
                "multiValueHeaders": {
                    name: value
                    for name, value in (event.get("multiValueHeaders") or {}).items()
                    if name.lower() != "content-type"
                },
            }
        return super().resolve(event, context)


def create_resolver() -> APIGatewayRestResolver:
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
        content_type = app.current_event.headers.get("content-type", "")
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
        return error_response(HTTPStatus.NOT_FOUND, exc.code, exc.message)

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

    @app.exception_handler(DependencyUnavailable)
    def _dependency(exc: DependencyUnavailable) -> Response[Any]:
        logger.exception("dependency unavailable", extra={"dependency": exc.dependency})
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, exc.code, exc.message)

    @app.exception_handler(OperationalError)
    # pg8000 reports a refused or timed-out connection as an InterfaceError.
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    # A socket timeout (DB_SOCKET_TIMEOUT) or reset reaches us as the bare OSError pg8000 lets
    # through; in these functions only the database driver talks to a socket unwrapped (the
    # embedder wraps its own failures as DependencyUnavailable).
    @app.exception_handler(TimeoutError)
    @app.exception_handler(ConnectionError)
    def _database_down(exc: Exception) -> Response[Any]:
        logger.exception("database unavailable")
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable"
        )

    @app.exception_handler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response[Any]:
        code = sqlstate(exc) or ""
        if code.startswith("23"):
            # An integrity violation the domain did not foresee (e.g. a row removed by a
            # concurrent request): the request conflicts with the data, it is not an outage.
            logger.warning("integrity violation", extra={"sqlstate": code})
            return error_response(
                HTTPStatus.CONFLICT, "conflict", "the request conflicts with the current data"
            )
        if exc.connection_invalidated:
            logger.exception("database connection lost")
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable",
            )
        logger.exception("database error")
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "the request could not be completed"
        )

    return app
