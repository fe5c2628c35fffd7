"""The job-description chunker: limits, coverage and determinism as properties (hypothesis),
and boundaries on real English and Korean job descriptions (devtools/samples)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flex_shared.chunking import (
    DEFAULT_OVERLAP_TOKENS,
    DEFAULT_TARGET_TOKENS,
    chunk_spans,
    chunk_text,
    estimate_tokens,
    minimum_chunk_count,
)
from flex_shared.titan import TITAN_MAX_INPUT_CHARS, TITAN_MAX_INPUT_TOKENS

SAMPLES = Path(__file__).resolve().parents[1] / "devtools" / "samples"
# The UTF-8 English .md and Korean .txt job descriptions at the top of devtools/samples.
SAMPLE_FILES = sorted([*SAMPLES.glob("*.md"), *SAMPLES.glob("*.txt")])

# Characters that exercise every rule: scripts, sentence ends, bullets, headings, whitespace.
_ALPHABET = list("abcXYZ 가나다요음 .!?。 \n\n\t\r-•#[]:·①0123456789😀()")
_WORDS = [
    "Python", "개발자를", "경험", "우대합니다.", "- ", "\n", "\n\n", "## Requirements\n",
    "[자격요건]\n", "■ 담당업무\n", "e.g.", "3.5", "Kubernetes", "하세요!", "?", "  ",
    "x" * 700, "가" * 400,
]  # fmt: skip

texts = st.one_of(
    st.lists(st.sampled_from([*_ALPHABET, "다. ", "요. "]), max_size=3_000).map("".join),
    st.lists(st.sampled_from(_WORDS), max_size=300).map(" ".join),
    st.text(max_size=500),  # anything Unicode
)


def assert_valid_chunking(text: str, target: int, overlap: int, max_chars: int) -> None:
    normalised, spans = chunk_spans(
        text, target_tokens=target, overlap_tokens=overlap, max_chars=max_chars
    )
    chunks = chunk_text(text, target_tokens=target, overlap_tokens=overlap, max_chars=max_chars)
    # chunks are the spans' text, in order, each moving forward
    assert chunks == [normalised[start:end] for start, end in spans]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(spans))
    for chunk in chunks:
        # no empty chunk, no dangling whitespace, within the size limits
        assert chunk.strip() == chunk != ""
        assert estimate_tokens(chunk) <= target
        assert len(chunk) <= max_chars
    # no text lost: every non-whitespace character lies in some chunk
    covered = [False] * len(normalised)
    for start, end in spans:
        covered[start:end] = [True] * (end - start)
    lost = [i for i, char in enumerate(normalised) if not char.isspace() and not covered[i]]
    assert lost == []
    # the cheap lower bound callers use to refuse a text before chunking it never overshoots
    assert minimum_chunk_count(text, target_tokens=target) <= len(chunks)
    # deterministic
    assert (
        chunk_text(text, target_tokens=target, overlap_tokens=overlap, max_chars=max_chars)
        == chunks
    )


@settings(max_examples=300, deadline=None)
@given(text=texts, target=st.integers(1, 400), overlap_share=st.floats(0, 0.99))
def test_any_text_is_chunked_within_limits_losing_nothing(
    text: str, target: int, overlap_share: float
):
    assert_valid_chunking(text, target, int(target * overlap_share), TITAN_MAX_INPUT_CHARS)


@settings(max_examples=100, deadline=None)
@given(text=texts, max_chars=st.integers(1, 300))
def test_character_limit_is_respected_with_the_default_token_target(text: str, max_chars: int):
    assert_valid_chunking(text, DEFAULT_TARGET_TOKENS, DEFAULT_OVERLAP_TOKENS, max_chars)


@pytest.mark.parametrize(
    "huge",
    [
        "a" * 120_000,  # one "word" longer than Titan's character limit
        "가" * 60_000,  # Korean without a single space or sentence end
        "experience " * 20_000,  # one endless sentence
        "🚀" * 10_000,
    ],
)
def test_one_enormous_sentence_is_hard_split_within_titans_limits(huge: str):
    chunks = chunk_text(huge)
    assert len(chunks) > 1
    assert all(estimate_tokens(chunk) <= DEFAULT_TARGET_TOKENS for chunk in chunks)
    assert max(map(len, chunks)) <= TITAN_MAX_INPUT_CHARS
    assert_valid_chunking(
        huge, DEFAULT_TARGET_TOKENS, DEFAULT_OVERLAP_TOKENS, TITAN_MAX_INPUT_CHARS
    )


def test_empty_and_blank_texts_give_no_chunks():
    assert chunk_text("") == []
    assert chunk_text(" \n\r\n\t ") == []


def test_a_short_description_is_one_chunk():
    assert chunk_text("  Backend engineer.\r\nPython 3년 이상.  ") == [
        "Backend engineer.\nPython 3년 이상."
    ]


@pytest.mark.parametrize(
    ("target", "overlap"), [(0, 0), (TITAN_MAX_INPUT_TOKENS + 1, 0), (300, 300), (300, -1)]
)
def test_impossible_settings_are_refused(target: int, overlap: int):
    with pytest.raises(ValueError, match="tokens"):
        chunk_text("text", target_tokens=target, overlap_tokens=overlap)


# ---- real job descriptions ----------------------------------------------------------------


def sentences_of(text: str) -> list[str]:
    """A deliberately naive oracle: lines, split after . ! ? followed by a space."""
    return [
        part.strip()
        for line in text.splitlines()
        for part in re.split(r"(?<=[.!?])\s+", line)
        if part.strip()
    ]


def heading_lines(text: str) -> set[str]:
    pattern = re.compile(r"^(#{1,6} .+|\[.+\]|■ .+)$")
    return {line.strip() for line in text.splitlines() if pattern.match(line.strip())}


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_sample_job_descriptions_keep_every_sentence_whole(path: Path):
    # given a real job description
    text = path.read_text(encoding="utf-8")

    # when it is chunked with the defaults
    chunks = chunk_text(text)

    # then it is split (they are all longer than one chunk), every sentence appears whole in
    # some chunk, and every chunk ends where a sentence or line ends
    assert len(chunks) >= 3
    for sentence in sentences_of(text):
        assert any(sentence in chunk for chunk in chunks), sentence
    for chunk in chunks:
        assert re.search(r"([.!?]|[^\s])$", chunk)
        position = text.find(chunk)
        end = position + len(chunk)
        assert position >= 0
        assert end == len(text.rstrip()) or text[end] == "\n" or text[end - 1] in ".!?", chunk


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_sections_start_chunks_and_headings_never_end_one(path: Path):
    text = path.read_text(encoding="utf-8")
    chunks = chunk_text(text)
    headings = heading_lines(text)
    assert headings
    for chunk in chunks:
        assert chunk.splitlines()[-1].strip() not in headings, chunk
    # most sections begin a chunk of their own (short neighbours may share one)
    starting = {chunk.splitlines()[0].strip() for chunk in chunks}
    assert len(starting & headings) >= len(chunks) - 1


def test_korean_sentence_endings_and_bullets_are_boundaries():
    # given one Korean section longer than a small target, in prose and in bullets
    text = (SAMPLES / "ml-engineer-ko.txt").read_text(encoding="utf-8")
    chunks = chunk_text(text, target_tokens=60, overlap_tokens=12)
    # then every chunk ends with a sentence end (다. 요. ! ?) or at the end of a bullet line
    for chunk in chunks:
        end = text.find(chunk) + len(chunk)
        assert chunk[-1] in ".!?" or text[end : end + 1] in ("\n", ""), chunk
    assert any(chunk.endswith("다.") for chunk in chunks)
    assert any(chunk.endswith("요.") for chunk in chunks)


def test_consecutive_chunks_of_one_long_section_overlap_by_whole_sentences():
    # given one long English section without headings or blank lines
    sentences = [
        f"Sentence {i} describes responsibility number {i} of the platform team in detail."
        for i in range(60)
    ]
    text = "## Responsibilities\n\n" + " ".join(sentences)

    # when it is chunked with the defaults
    chunks = chunk_text(text)

    # then each next chunk starts with the last sentence(s) of the previous one, and the
    # repeated part stays small (at most two overlap budgets)
    assert len(chunks) >= 3
    for previous, current in itertools.pairwise(chunks):
        first_sentence = current.split(". ")[0] + "."
        assert first_sentence in previous
        shared = previous[previous.index(first_sentence) :]
        assert current.startswith(shared)
        assert estimate_tokens(shared) <= 2 * DEFAULT_OVERLAP_TOKENS


def test_overlap_never_crosses_into_another_section():
    text = "\n\n".join(
        f"## Section {n}\n\n" + " ".join(f"Point {n}.{i} is important here." for i in range(40))
        for n in range(3)
    )
    for chunk in chunk_text(text):
        sections = set(re.findall(r"Point (\d)\.", chunk))
        assert len(sections) == 1, chunk


def test_hard_wrapped_prose_is_cut_at_a_sentence_end_not_at_a_line_break():
    # given prose hard-wrapped mid-sentence, slightly over the target
    text = (
        "We build the payments platform that thousands of merchants\n"
        "rely on every day. We are looking for an engineer who enjoys\n"
        "reliability work and a calm on-call rotation."
    )
    target = estimate_tokens(text) - 1

    # when chunked
    _, spans = chunk_spans(text, target_tokens=target, overlap_tokens=0)

    # then the first chunk ends at the sentence end, not at the wrapped line's end
    assert text[: spans[0][1]].endswith("every day.")


def test_estimate_is_conservative_for_english_and_counts_each_hangul_syllable():
    assert estimate_tokens("") == 0
    assert estimate_tokens("Python developer") == 2 + 3
    assert estimate_tokens("개발자를 찾습니다.") == 8 + 1
    assert estimate_tokens("2026") == 2
    assert estimate_tokens("a     b") == 1 + 1 + 1


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_the_lower_bound_on_chunks_is_close_for_long_descriptions(path: Path):
    # A description 30 times as long as a sample: the bound must be near enough to the real
    # count to refuse an oversized text without chunking it.
    text = "\n\n".join([path.read_text(encoding="utf-8")] * 30)
    actual = len(chunk_text(text))
    assert 0.6 * actual <= minimum_chunk_count(text) <= actual
