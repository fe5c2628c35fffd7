"""The opaque ``after`` cursor of ``GET /jobs/{job_id}/applicants``.

It holds the last row of the page it ends: the job, that applicant's ranking key (minus the
average overall score; null for +Infinity, no average), the applicant id and the rank. The next
page starts strictly after that (key, applicant id) in the ranking's order, so a page boundary
inside a tie neither skips nor repeats anyone, and a ranking that changes between two pages
continues from where the caller was.

The token is ``base64url(JSON + checksum)``. The checksum makes any edit or truncation a clear
422 instead of a silently different page; it is not a secret (the cursor grants nothing: every
boundary it can hold is one a caller may ask for by paging), so no key has to be managed. What
decodes is still validated: version, job, ranges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from typing import Any

from flex_shared.errors import InvalidInput
from flex_shared.postgres import INT4_MAX

VERSION = 1
_CHECKSUM_BYTES = 8
_PERSON = b"flex-applicants"
MAX_TOKEN_LENGTH = 200
"""Longer than any token this module makes (about 60 characters)."""


@dataclass(frozen=True)
class PageCursor:
    job_id: int
    ranking_key: float
    """Minus the average overall score, ``math.inf`` when the applicant has none."""
    applicant_id: int
    rank: int


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, person=_PERSON).digest()


def encode(cursor: PageCursor) -> str:
    key = None if math.isinf(cursor.ranking_key) else cursor.ranking_key
    payload = json.dumps(
        [VERSION, cursor.job_id, key, cursor.applicant_id, cursor.rank], separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(payload + _checksum(payload)).rstrip(b"=").decode()


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"after: {message}", details=[{"field": "after", "message": message}])


_NOT_OURS = (
    "not a cursor of this API (malformed or modified): pass the previous page's `next` unchanged"
)


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= INT4_MAX


def decode(token: str, job_id: int) -> PageCursor:
    """The cursor ``token`` holds, for ``job_id``'s applicants; ``InvalidInput`` naming
    ``after`` when it is not one this module made, or was made for another job."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise _refuse(_NOT_OURS) from None
    payload, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if len(raw) <= _CHECKSUM_BYTES or not hmac.compare_digest(checksum, _checksum(payload)):
        raise _refuse(_NOT_OURS)
    try:
        version, cursor_job, key, applicant_id, rank = json.loads(payload)
    except (ValueError, TypeError):
        raise _refuse(_NOT_OURS) from None
    valid_key = key is None or (type(key) is float and -100.0 <= key <= 0.0)
    if not (
        version == VERSION
        and _is_id(cursor_job)
        and valid_key
        and _is_id(applicant_id)
        and _is_id(rank)
    ):
        raise _refuse(_NOT_OURS)
    if cursor_job != job_id:
        raise _refuse(f"this cursor pages job {cursor_job}'s applicants, not job {job_id}'s")
    return PageCursor(
        job_id=cursor_job,
        ranking_key=math.inf if key is None else key,
        applicant_id=applicant_id,
        rank=rank,
    )
