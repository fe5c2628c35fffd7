"""How much text one document may yield. Past it the document is rejected ``too_long``, and the
extractors stop as soon as they cross it, so a hostile file costs at most that much to read.

The ceiling follows ``INGEST_MAX_CHUNKS``: a text that long needs more chunks than allowed in
any realistic layout, and checking it while extracting costs nothing.
"""

from __future__ import annotations

from flex_ingest.rejections import RejectedObject, RejectReason
from flex_shared.config import DEFAULT_INGEST_MAX_CHUNKS

TEXT_CHARS_PER_CHUNK = 2_000
"""Characters of text allowed per chunk of ``INGEST_MAX_CHUNKS``. Prose fills a 300-token chunk
with 750-1,000 characters of English or 350 of Korean (overlap excluded); twice the densest
leaves room for layouts heavy in whitespace."""


def max_text_chars(max_chunks: int) -> int:
    return max_chunks * TEXT_CHARS_PER_CHUNK


DEFAULT_MAX_TEXT_CHARS = max_text_chars(DEFAULT_INGEST_MAX_CHUNKS)


def text_too_long(max_chars: int, chars: int | None = None) -> RejectedObject:
    size = f"{chars} characters" if chars is not None else f"more than {max_chars} characters"
    return RejectedObject(
        RejectReason.TOO_LONG,
        f"the text has {size}; at most {max_chars} are read"
        f" ({TEXT_CHARS_PER_CHUNK} per chunk of INGEST_MAX_CHUNKS)",
    )


class TextBudget:
    """The characters an extractor may still collect; taking more raises ``too_long``."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.used = 0

    def take(self, chars: int) -> None:
        self.used += chars
        if self.used > self.max_chars:
            raise text_too_long(self.max_chars)
