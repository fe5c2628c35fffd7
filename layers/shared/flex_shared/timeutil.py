"""Timestamps in API responses: ISO 8601, UTC, always the same shape.

The database stores UTC in ``timestamp without time zone`` columns, so values come back naive.
Every API answers them as ``2024-05-01T12:34:56.123456Z`` (microseconds always present, ``Z``
suffix) so clients can compare them as strings and parse them with any ISO 8601 reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def utc_isoformat(value: datetime) -> str:
    """``value`` as ISO 8601 UTC; a naive value is taken to be UTC already (as stored)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


UtcDatetime = Annotated[datetime, PlainSerializer(utc_isoformat, return_type=str, when_used="json")]
"""A response field holding a stored timestamp; serialised by :func:`utc_isoformat`."""
