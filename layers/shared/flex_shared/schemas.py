"""What the API functions' request and response models share: the request and response base
models, integers and database ids, the one rule for text the database can store, UTC
timestamps, the one error body every route answers with, and the question template as both
APIs answer it. Imports pydantic and nothing of
the layer but its constants: a schema never pulls in the database, SQLAlchemy or the resolver
(an import contract checks it).

Timestamps: the database stores UTC in ``timestamp without time zone`` columns, so values come
back naive. Every API answers them as ``2024-05-01T12:34:56.123456Z`` (microseconds always
present, ``Z`` suffix) so clients can compare them as strings and parse them with any ISO 8601
reader.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    JsonValue,
    PlainSerializer,
    Strict,
    StrictStr,
)
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from .postgres import INT4_MAX


def _integral_float_to_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE_FLOAT_AS_INT = BeforeValidator(_integral_float_to_int)
"""JSON Schema (so OpenAPI 3.1) counts ``92.0`` as an integer, and a generated client may send
it so: an integer field reads it as ``92`` (``92.5``, ``"92"`` and ``true`` stay refused).
Write ``Annotated[int, Strict(), Field(bounds...), WHOLE_FLOAT_AS_INT]``: the bounds before it,
so the document shows them as ``minimum``/``maximum``."""

DatabaseId = Annotated[int, Strict(), Field(ge=1, le=INT4_MAX), WHOLE_FLOAT_AS_INT]
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


_WHITESPACE = (
    "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029"
    "\\u202f\\u205f\\u3000\\ufeff"
)
"""Whitespace, spelt out so that Python and ECMA regular expressions (the document's) read
the same class: Python's ``str.isspace`` and ECMA's ``\\s`` differ at the edges."""

NO_NUL_PATTERN = "^[^\\u0000]*$"
"""A text the database can store, as the document says it."""

NON_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_WHITESPACE}][^\\u0000]*$"
"""A storable text with something else than whitespace in it."""

_NOT_WHITESPACE = re.compile(f"[^{_WHITESPACE}]")


def not_blank(value: str) -> str:
    if _NOT_WHITESPACE.search(value) is None:
        raise ValueError("must not be blank")
    return value


class Pattern:
    """Shows in the OpenAPI document a rule a validator enforces (with a message naming the
    rule, which a regular expression would not): a text gets ``pattern``, an object's keys get
    it as ``propertyNames`` (annotate the ``dict``: pydantic turns a key type's pattern into
    ``patternProperties``, which would let other keys through)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if schema.get("type") == "string":
            schema["pattern"] = self.pattern
        elif schema.get("type") == "object":
            schema.setdefault("propertyNames", {})["pattern"] = self.pattern
        return schema


NUL_FREE = Pattern(NO_NUL_PATTERN)

Text = Annotated[StrictStr, AfterValidator(storable), NUL_FREE]
"""Every text input of the APIs, body field or query parameter, is ``Text`` or built on it."""

NonBlankText = Annotated[Text, AfterValidator(not_blank), Pattern(NON_BLANK_PATTERN)]
"""A text that must say something: empty or whitespace only is refused."""

_JSON_DATA_REF = {"$ref": "#/components/schemas/JsonData"}

JsonData = TypeAliasType(
    "JsonData",
    Annotated[
        JsonValue,
        WithJsonSchema(
            {
                "description": "Any JSON value; no string in it, key or value, holds NUL.",
                # No "type" and no anyOf: each keyword applies to its own kind of value (a
                # pattern to strings, items to arrays...), which says the same and is what
                # client generators read (a union holding itself is beyond openapi-python-client).
                "pattern": NO_NUL_PATTERN,
                "items": _JSON_DATA_REF,
                "additionalProperties": _JSON_DATA_REF,
                "propertyNames": {"pattern": NO_NUL_PATTERN},
            }
        ),
    ],
)
"""Any JSON value (pydantic's ``JsonValue``), documented as the OpenAPI component
``JsonData`` without NUL; pair it with :func:`storable`, which refuses NUL."""

StorableJson = Annotated[JsonData, AfterValidator(storable)]
"""A free-form JSON input (stored as ``jsonb``): no string in it, key or value, holds NUL."""


class ApiModel(BaseModel):
    """Base of request bodies: unknown fields are rejected rather than silently lost, and
    NaN/Infinity are rejected (they are not JSON and cannot be answered back). A field's
    docstring is its description in the OpenAPI document."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class ResponseModel(BaseModel):
    """Base of response bodies: a field's docstring is its description in the OpenAPI
    document; NaN/Infinity cannot be answered (they are not JSON). Clients must ignore fields
    they do not know: the API may add some."""

    model_config = ConfigDict(allow_inf_nan=False, use_attribute_docstrings=True)


def utc_isoformat(value: datetime) -> str:
    """``value`` as ISO 8601 UTC; a naive value is taken to be UTC already (as stored)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(utc_isoformat, return_type=str, when_used="json"),
    # What the serializer writes is an RFC 3339 date-time: say so (clients parse it).
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A response field holding a stored timestamp; serialised by :func:`utc_isoformat`."""


class QuestionOut(ResponseModel):
    """A question template, as ``GET /questions/{question_id}`` answers it and as
    ``GET /jobs/{job_id}/questions/suggested`` lists it (two functions, one shape)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int | None
    question_type: str
    question_text: str
    expected_keywords: Any
    evaluation_criteria: Any
    difficulty_level: int | None
    created_at: UtcDatetime


# --- errors ----------------------------------------------------------------------------------


def _left_out_not_null(schema: dict[str, Any]) -> None:
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    schema.pop("default", None)


def optional_not_null(**field: Any) -> Any:
    """A field that may be left out but is never null: validated as ``X | None`` (left out is
    None; a validator refuses an explicit null where it matters), documented as ``X``, not
    required, without a default."""
    return Field(default=None, json_schema_extra=_left_out_not_null, **field)


class ErrorItem(BaseModel):
    """One thing wrong with the request (400, 422) or the state it conflicts with (409)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    field: str = Field(
        description="The body field (dotted path), query or path parameter; `body` for the body."
    )
    message: str | None = optional_not_null(description="What is wrong with it.")
    type: str | None = optional_not_null(
        description="The validation rule it broke (`int_type`, `less_than_equal`, `missing`, ...)."
    )


class ErrorDetail(BaseModel):
    code: str = Field(
        description="What went wrong, for programs: `validation_error`, `invalid_input`,"
        " `unsupported_media_type`, `not_found`, `route_not_found`, `conflict`,"
        " `database_unavailable`, `embedding_unavailable`, `internal_error`. Codes may be"
        " added: read an unknown one by its HTTP status."
    )
    message: str = Field(description="What went wrong, for people; never echoes submitted text.")
    details: list[ErrorItem] | None = optional_not_null(
        description="Each field at fault (400, 422), or the states in conflict (409)."
    )
    request_id: str | None = optional_not_null(
        description="On a 5xx: API Gateway's request id, which finds the request in the logs."
    )


class ErrorResponse(BaseModel):
    """The body of every error a function answers, 4xx and 5xx alike."""

    error: ErrorDetail


class GatewayError(BaseModel):
    """The body of an answer API Gateway gives itself, before any function runs: 403 for an
    unsigned or unauthorised request or an unknown route (`Missing Authentication Token`),
    429 when throttled."""

    message: str
