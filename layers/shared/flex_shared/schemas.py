"""What the API functions' request and response models share: the request base model, database
ids, the one rule for text the database can store, and UTC timestamps. Imports pydantic and
nothing of the layer but its constants: a schema never pulls in the database, SQLAlchemy or the
resolver (an import contract checks it).

Timestamps: the database stores UTC in ``timestamp without time zone`` columns, so values come
back naive. Every API answers them as ``2024-05-01T12:34:56.123456Z`` (microseconds always
present, ``Z`` suffix) so clients can compare them as strings and parse them with any ISO 8601
reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    StrictInt,
    StrictStr,
)

from .postgres import INT4_MAX

DatabaseId = Annotated[StrictInt, Field(ge=1, le=INT4_MAX)]
"""A row id (``SERIAL``): 1 .. ``INT4_MAX``; ``"3"`` and ``true`` are not ids."""


_T = TypeVar("_T")

NUL_REFUSED = "must not contain the NUL character (\\u0000): the database cannot store it"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def storable(value: _T) -> _T:
    """``value`` itself, if PostgreSQL can store every string in it (``text`` and ``jsonb``
    cannot hold U+0000): the one rule for text input, so a NUL is the caller's 422 naming the
    field, never a driver error or a 500."""
    if _holds_nul(value):
        raise ValueError(NUL_REFUSED)
    return value


Text = Annotated[StrictStr, AfterValidator(storable)]
"""Every text input of the APIs, body field or query parameter, is ``Text`` or built on it."""

StorableJson = Annotated[JsonValue, AfterValidator(storable)]
"""A free-form JSON input (stored as ``jsonb``): no string in it, key or value, holds NUL."""


class ApiModel(BaseModel):
    """Base of request bodies: unknown fields are rejected rather than silently lost, and
    NaN/Infinity are rejected (they are not JSON and cannot be answered back). A validation
    error's message leaves the input out: bodies hold personal data (transcripts), and a
    message can end up in a log."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)


class ResponseModel(BaseModel):
    """Base of response models read from stored rows. Should a row ever fail validation (a
    bug), the error's message, which is logged, names the field and never holds the value."""

    model_config = ConfigDict(from_attributes=True, hide_input_in_errors=True)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. a validation error's "type"

    field: str | None = None
    message: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None
    request_id: str | None = None
    """On a 5xx: the API Gateway request id, which finds the function's log lines."""


class ErrorResponse(BaseModel):
    """Every error answer of the APIs: ``{"error": {"code", "message", "details"?}}``."""

    error: ErrorBody


def utc_isoformat(value: datetime) -> str:
    """``value`` as ISO 8601 UTC; a naive value is taken to be UTC already (as stored)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


UtcDatetime = Annotated[datetime, PlainSerializer(utc_isoformat, return_type=str, when_used="json")]
"""A response field holding a stored timestamp; serialised by :func:`utc_isoformat`."""
