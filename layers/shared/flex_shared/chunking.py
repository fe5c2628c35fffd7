"""Job-description chunker: section > paragraph > line/bullet > sentence boundaries, with
overlap, every chunk within Titan V2's input limits.

Chunks are exact slices of the input (line endings normalised to ``\\n``, surrounding whitespace
stripped), in order; every non-whitespace character of the input lies in at least one chunk.
Sizes are in *estimated* tokens (:func:`estimate_tokens`, no network, meant to err on the high
side); with the default target of 300 a chunk stays far below Titan's 8,192 tokens even if the
estimate were many times too low, and below 50,000 characters by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .titan import TITAN_MAX_INPUT_CHARS, TITAN_MAX_INPUT_TOKENS

DEFAULT_TARGET_TOKENS = 300
DEFAULT_OVERLAP_TOKENS = 60

# Boundary strength *before* an atom; the packer prefers cutting at the strongest one.
_SECTION = 4
_PARAGRAPH = 3
_LINE = 2
_SENTENCE = 1
_WORD = 0
_STICKY = -1  # right after a heading: never end a chunk on a bare heading

_LATIN_RE = re.compile(r"[A-Za-z]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_SPACE_RE = re.compile(r"\s+")
_LONG_SPACE_RE = re.compile(r"\s{2,}")

# A sentence ends with . ! ? (ASCII or full-width), ellipsis or 。, optionally followed by
# closing quotes/brackets, then whitespace. Korean '다.' '요.' end the same way; decimals
# (3.5) and versions (v1.2) have no whitespace after the dot and stay whole.
_SENTENCE_END_RE = re.compile(r"[.!?。\uff01\uff1f…]+[\"'\u201d\u2019)\]」』]*(?=\s)")
_ABBREVIATIONS = frozenset(
    ["e.g.", "i.e.", "etc.", "vs.", "mr.", "ms.", "dr.", "inc.", "ltd.", "co.", "jr.", "no."]
)
_TERMINAL_END_RE = re.compile(
    r"([.!?。\uff01\uff1f…:\uff1a]|다|요|음|함|임)[\"'\u201d\u2019)\]」』]*$"
)
_BULLET_RE = re.compile(
    r"^\s*(?:[-*+•·▪◦‣○●◎※✓✔➢\u2013\u2014]|\d{1,3}[.)]|[a-zA-Z][.)]|[①-⑳]|[가-하][.)]|\(\d{1,3}\))\s*"
)
_HEADING_RES = (
    re.compile(r"^\s{0,3}#{1,6}\s+\S"),  # markdown heading
    re.compile(
        r"^\s*[\[【<〈《\u3014].{1,40}[\]】>〉》\u3015]\s*:?\s*$"
    ),  # [주요업무] 【자격요건】 <우대사항>
    re.compile(r"^\s*[■□◆◇▣▶►◈]\s*\S.{0,40}$"),  # ■ 담당업무
    re.compile(r"^\s*\*\*[^*]{1,60}\*\*\s*:?\s*$"),  # **Requirements**
    re.compile(r"^\s*[^.!?。:\uff1a]{1,50}[:\uff1a]\s*$"),  # Requirements:  자격 요건:
    re.compile(r"^\s*[A-Z][A-Z0-9 &/'-]{2,40}\s*$"),  # RESPONSIBILITIES
)


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer: ASCII words ceil(len/4), digit runs
    ceil(len/3), every other non-space character (Hangul, CJK, punctuation, emoji) one token,
    whitespace runs beyond the first character one token per four. Cutting a text between
    whitespace runs, or inside a word, never makes the parts' estimates sum to less."""
    spaces = sum((len(run) + 2) // 4 for run in _LONG_SPACE_RE.findall(text))
    return _content_tokens(text) + spaces


def _content_tokens(text: str) -> int:
    """:func:`estimate_tokens` of everything but whitespace."""
    latin = _LATIN_RE.findall(text)
    digits = _DIGITS_RE.findall(text)
    space_chars = sum(map(len, _SPACE_RE.findall(text)))
    tokens = sum((len(word) + 3) // 4 for word in latin)
    tokens += sum((len(run) + 2) // 3 for run in digits)
    return tokens + len(text) - sum(map(len, latin)) - sum(map(len, digits)) - space_chars


def minimum_chunk_count(text: str, *, target_tokens: int = DEFAULT_TARGET_TOKENS) -> int:
    """A lower bound of ``len(chunk_text(text, target_tokens=target_tokens))`` (any overlap,
    any ``max_chars``) in one pass, without chunking: every word is in some chunk, and a chunk
    holds at most ``target_tokens`` estimated tokens. Lets a caller refuse a text that needs too
    many chunks before paying for the chunker."""
    return -(-_content_tokens(text) // target_tokens)


@dataclass(frozen=True, slots=True)
class _Atom:
    """An unbreakable piece (a sentence, a bullet, or a hard-split part of something huge)."""

    start: int
    end: int
    tokens: int
    gap_tokens: int  # tokens of the whitespace between the previous atom and this one
    level: int  # boundary strength before this atom


def _is_heading(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > 80:
        return False
    if _BULLET_RE.match(line) and not stripped.startswith("**"):
        return False  # "- Requirements:" is an item of a list, not a section
    return any(pattern.match(line) for pattern in _HEADING_RES)


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, without the newline."""
    spans, position = [], 0
    for line in text.split("\n"):
        spans.append((position, position + len(line)))
        position += len(line) + 1
    return spans


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of ``text[start:end]`` (a line or a run of wrapped lines), trimmed."""
    spans = []
    cursor = start
    for match in _SENTENCE_END_RE.finditer(text, start, end):
        stop = match.end()
        last_word = text[cursor:stop].rsplit(None, 1)[-1].lower() if stop > cursor else ""
        if last_word in _ABBREVIATIONS:
            continue
        spans.append((cursor, stop))
        cursor = stop
    spans.append((cursor, end))
    trimmed = []
    for left, right in spans:
        while left < right and text[left].isspace():
            left += 1
        while right > left and text[right - 1].isspace():
            right -= 1
        if left < right:
            trimmed.append((left, right))
    return trimmed


def _units(text: str) -> list[tuple[int, int, int]]:
    """(start, end, level) of every sentence-or-bullet, with the boundary level before it."""
    units: list[tuple[int, int, int]] = []
    pending_level = _SECTION
    group_start: int | None = None
    group_end = 0
    after_heading = False
    previous_line = ""

    def flush(level_for_first: int) -> None:
        nonlocal group_start
        if group_start is None:
            return
        for position, (left, right) in enumerate(_sentence_spans(text, group_start, group_end)):
            units.append((left, right, level_for_first if position == 0 else _SENTENCE))
        group_start = None

    group_level = _SECTION
    for start, end in _lines(text):
        line = text[start:end]
        if not line.strip():
            flush(group_level)
            pending_level = max(pending_level, _PARAGRAPH)
            continue
        if _is_heading(line):
            flush(group_level)
            indent = len(line) - len(line.lstrip())
            units.append((start + indent, start + len(line.rstrip()), _SECTION))
            after_heading, pending_level, previous_line = True, _LINE, line
            continue
        # A wrapped line continues the sentence of the previous one; anything else (a bullet,
        # a line after a finished sentence, a short Korean bullet without a marker) is a unit.
        continues = (
            group_start is not None
            and pending_level <= _LINE
            and not _BULLET_RE.match(line)
            and not _TERMINAL_END_RE.search(previous_line.rstrip())
            and line.lstrip()[:1].islower()
        )
        if continues:
            group_end = end
        else:
            flush(group_level)
            group_level = _STICKY if after_heading else pending_level
            group_start, group_end = start, end
        after_heading, pending_level, previous_line = False, _LINE, line
    flush(group_level)
    return units


def _hard_split(text: str, start: int, end: int, limit: int, max_chars: int) -> list[_Atom]:
    """Split an oversized unit at whitespace, and a single huge word at characters, into
    atoms that each fit ``limit`` tokens and ``max_chars`` characters."""
    atoms: list[_Atom] = []
    previous_end: int | None = None
    for match in re.finditer(r"\S+", text[start:end]):
        word_start, word_end = start + match.start(), start + match.end()
        gap = estimate_tokens(text[previous_end:word_start]) if previous_end is not None else 0
        level = _WORD if atoms else _SENTENCE
        while word_start < word_end:
            piece_end = word_end
            if (
                word_end - word_start > max_chars
                or estimate_tokens(text[word_start:word_end]) > limit
            ):
                piece_end = _longest_fitting_prefix(text, word_start, word_end, limit, max_chars)
            atoms.append(
                _Atom(
                    word_start, piece_end, estimate_tokens(text[word_start:piece_end]), gap, level
                )
            )
            word_start, gap, level = piece_end, 0, _WORD
        previous_end = word_end
    return atoms


def _longest_fitting_prefix(text: str, start: int, end: int, limit: int, max_chars: int) -> int:
    """The largest ``stop`` with ``text[start:stop]`` within both limits (at least one char).
    The estimate grows monotonically with the prefix, so binary search applies; a word has at
    least one token per four characters, which bounds the search."""
    low, high = start + 1, min(end, start + max_chars, start + 4 * limit + 4)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[start:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _atoms(text: str, target_tokens: int, max_chars: int) -> list[_Atom]:
    atoms: list[_Atom] = []
    previous_end = 0
    for start, end, level in _units(text):
        gap = estimate_tokens(text[previous_end:start]) if atoms else 0
        tokens = estimate_tokens(text[start:end])
        if tokens <= target_tokens and end - start <= max_chars:
            atoms.append(_Atom(start, end, tokens, gap, level))
        else:
            pieces = _hard_split(text, start, end, target_tokens, max_chars)
            first = pieces[0]
            atoms.append(_Atom(first.start, first.end, first.tokens, gap, level))
            atoms.extend(pieces[1:])
        previous_end = end
    return atoms


def chunk_spans(
    text: str,
    *,
    target_tokens: int = DEFAULT_TARGET_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_chars: int = TITAN_MAX_INPUT_CHARS,
) -> tuple[str, list[tuple[int, int]]]:
    """The normalised text and the ``(start, end)`` of each chunk in it (see :func:`chunk_text`)."""
    if not 1 <= target_tokens <= TITAN_MAX_INPUT_TOKENS:
        raise ValueError(f"target_tokens must be between 1 and {TITAN_MAX_INPUT_TOKENS}")
    if not 0 <= overlap_tokens < target_tokens:
        raise ValueError("overlap_tokens must be at least 0 and less than target_tokens")
    if not 1 <= max_chars <= TITAN_MAX_INPUT_CHARS:
        raise ValueError(f"max_chars must be between 1 and {TITAN_MAX_INPUT_CHARS}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    atoms = _atoms(text, target_tokens, max_chars)
    if not atoms:
        return text, []

    # Prefix sums: tokens of atoms[a:b] = sum of their tokens + the gaps inside the range.
    token_sums = [0]
    gap_sums = [0]
    for atom in atoms:
        token_sums.append(token_sums[-1] + atom.tokens)
        gap_sums.append(gap_sums[-1] + atom.gap_tokens)

    def size(first: int, stop: int) -> int:
        return token_sums[stop] - token_sums[first] + gap_sums[stop] - gap_sums[first + 1]

    def fits(first: int, stop: int) -> bool:
        return (
            size(first, stop) <= target_tokens
            and atoms[stop - 1].end - atoms[first].start <= max_chars
        )

    min_fill = target_tokens // 2
    spans: list[tuple[int, int]] = []
    first = fresh = 0  # fresh: the first atom no chunk holds yet (those before it are overlap)
    count = len(atoms)
    while first < count:
        stop = first + 1  # a single atom always fits (oversized ones were hard-split)
        while stop < count and fits(first, stop + 1):
            stop += 1
        if stop < count:
            stop = _best_cut(atoms, first, max(first, fresh), stop, min_fill, size)
        spans.append((atoms[first].start, atoms[stop - 1].end))
        if stop >= count:
            break
        first, fresh = _overlap_start(atoms, first, stop, overlap_tokens, size, fits), stop
    return text, spans


_Size = Callable[[int, int], int]
_Fits = Callable[[int, int], bool]


def _best_cut(
    atoms: list[_Atom], first: int, fresh: int, stop: int, min_fill: int, size: _Size
) -> int:
    """Where to end a full chunk ``atoms[first:stop]``: at the strongest boundary that still
    leaves the chunk at least half full and holding at least one atom past the overlap
    (``fresh``); among equals, the latest."""
    best, best_level = stop, atoms[stop].level
    for cut in range(stop - 1, fresh, -1):
        if size(first, cut) < min_fill:
            break
        if atoms[cut].level > best_level:
            best, best_level = cut, atoms[cut].level
    return best


def _overlap_start(
    atoms: list[_Atom], first: int, stop: int, overlap_tokens: int, size: _Size, fits: _Fits
) -> int:
    """Start of the next chunk: whole trailing atoms of this chunk (within ``overlap_tokens``;
    one atom up to twice that, so long sentences still overlap), never across a section
    boundary, always leaving room for the next new atom, and always moving forward."""
    if overlap_tokens == 0 or atoms[stop].level == _SECTION:
        return stop
    start = stop
    while start - 1 > first and atoms[start].level != _SECTION:
        candidate = start - 1
        allowance = overlap_tokens * 2 if candidate == stop - 1 else overlap_tokens
        if size(candidate, stop) > allowance:
            break
        start = candidate
    while start < stop and not fits(start, stop + 1):
        start += 1
    return start


def chunk_text(
    text: str,
    *,
    target_tokens: int = DEFAULT_TARGET_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_chars: int = TITAN_MAX_INPUT_CHARS,
) -> list[str]:
    """Split ``text`` into non-empty chunks of at most ``target_tokens`` estimated tokens and
    ``max_chars`` characters, in order, consecutive chunks sharing up to ``overlap_tokens``.

    Cuts prefer, in order: a new section (heading), a blank line, a line/bullet, a sentence end;
    a sentence is split only if it alone exceeds the target. Deterministic; no text is lost.
    """
    normalised, spans = chunk_spans(
        text, target_tokens=target_tokens, overlap_tokens=overlap_tokens, max_chars=max_chars
    )
    return [normalised[start:end] for start, end in spans]


__all__ = [
    "DEFAULT_OVERLAP_TOKENS",
    "DEFAULT_TARGET_TOKENS",
    "chunk_spans",
    "chunk_text",
    "estimate_tokens",
    "minimum_chunk_count",
]
