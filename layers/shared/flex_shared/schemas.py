"""What the API functions' request and response models share: the request base model, database
ids, UTC timestamps, and the question template as both APIs answer it. Imports pydantic and
nothing of the layer but its constants: a schema never pulls in the database, SQLAlchemy or the
resolver (an import contract checks it).

Timestamps: the database stores UTC in ``timestamp without time zone`` columns, so values come
back naive. Every API answers them as ``2024-05-01T12:34:56.123456Z`` (microseconds always
present, ``Z`` suffix) so clients can compare them as strings and parse them with any ISO 8601
reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictInt

from .postgres import INT4_MAX

DatabaseId = Annotated[StrictInt, Field(ge=1, le=INT4_MAX)]
"""A row id (``SERIAL``): 1 .. ``INT4_MAX``; ``"3"`` and ``true`` are not ids."""


class ApiModel(BaseModel):
    """Base of request bodies: unknown fields are rejected rather than silently lost, and
    NaN/Infinity are rejected (they are not JSON and cannot be answered back)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def utc_isoformat(value: datetime) -> str:
    """``value`` as ISO 8601 UTC; a naive value is taken to be UTC already (as stored)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


UtcDatetime = Annotated[datetime, PlainSerializer(utc_isoformat, return_type=str, when_used="json")]
"""A response field holding a stored timestamp; serialised by :func:`utc_isoformat`."""


class QuestionOut(BaseModel):
    """A question template, as ``GET /questions/{id}`` answers it and as
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
