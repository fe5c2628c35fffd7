"""Job-description chunker (PLACEHOLDER: paragraph split; the real chunker replaces it)."""

from __future__ import annotations


def chunk_text(text: str) -> list[str]:
    """Split ``text`` into non-empty chunks, in order, losing no text."""
    return [part.strip() for part in text.split("\n\n") if part.strip()]
