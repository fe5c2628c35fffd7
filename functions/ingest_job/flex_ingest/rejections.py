"""Why an object can never become a job. Raised by the S3 reader, the extractors and the
service; the handler logs it with the key and moves on (retrying cannot help)."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"  # the bytes: the object, or what a part of it expands to
    TOO_LONG = "too_long"  # the content: more text, pages or chunks than a job description
    EMPTY = "empty"
    UNDECODABLE = "undecodable"
    CORRUPT = "corrupt"
    INVALID_JSON = "invalid_json"
    MISSING_COMPANY_ID = "missing_company_id"
    INVALID_COMPANY_ID = "invalid_company_id"
    MISSING_TITLE = "missing_title"
    INVALID_TITLE = "invalid_title"


class RejectedObject(Exception):
    """The object can never become a job; retrying will not help."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def too_large(size: int, max_bytes: int) -> RejectedObject:
    return RejectedObject(
        RejectReason.TOO_LARGE, f"object is {size} bytes, the limit is {max_bytes} bytes"
    )
