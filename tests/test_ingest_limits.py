"""The ceilings on what one upload may cost (README, "Limits"), one by one and in process: each
is enforced on what the reader actually produces, never on what the file claims, and names
itself in the rejection. Fresh-process peak memory per hostile upload: test_ingest_hostile.py.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from flex_shared import config
from flex_shared.chunking import chunk_text
from flex_shared.config import load_settings
from flex_shared.errors import ConfigError
from tests import hostile_documents as hostile
from tests.test_ingest_job import CountingEmbedder, Ingest, counting_embedder, ingest  # noqa: F401

W = f'xmlns:w="{hostile.W_NAMESPACE}"'


@pytest.fixture
def modules(load_function: Callable[[str], ModuleType]) -> dict[str, ModuleType]:
    load_function("ingest_job")  # puts the function's directory on sys.path, as Lambda does
    names = ("extract", "documents", "limits", "rejections")
    return {name: importlib.import_module(f"flex_ingest.{name}") for name in names}


def rejection(modules: dict[str, ModuleType], key: str, body: bytes, **limits: int) -> str:
    """``extract_job``'s rejection of ``body`` as ``key``: ``"reason: detail"``."""
    with pytest.raises(modules["rejections"].RejectedObject) as rejected:
        modules["extract"].extract_job(key, body, {}, **limits)
    return str(rejected.value)


def docx(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    return hostile.docx_with_document(f"<w:document {W}><w:body>{body}</w:body></w:document>")


# --- DOCX: zip members are bounded by what they inflate to ------------------------------------


def test_zip_member_with_lying_headers_is_inflated_only_as_far_as_they_claim(
    modules: dict[str, ModuleType],
) -> None:
    # 64 MiB of XML whose headers claim 1 KiB: ZipFile.read would inflate all of it at once
    bomb = hostile.docx_bomb(64 * hostile.MIB, declared_size=1024)

    assert rejection(modules, "jobs/1/a.docx", bomb).startswith("corrupt: DOCX XML is invalid")


@pytest.mark.parametrize("declared", [None, 400], ids=["honest headers", "headers too small"])
def test_zip_member_inflating_past_the_limit_is_too_large(
    modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch, declared: int | None
) -> None:
    monkeypatch.setattr(modules["documents"], "DOCX_MAX_XML_BYTES", 500)
    bomb = hostile.docx_bomb(hostile.MIB, declared_size=declared)

    detail = rejection(modules, "jobs/1/a.docx", bomb)

    if declared is None:
        assert detail == "too_large: word/document.xml expands past 500 bytes"
    else:  # inflated only as far as the headers claim: 400 bytes of unfinished XML
        assert detail.startswith("corrupt: DOCX XML is invalid")


def test_stored_and_deflated_members_are_read(modules: dict[str, ModuleType]) -> None:
    xml = f"<w:document {W}><w:body><w:p><w:r><w:t>Backend Engineer</w:t></w:r></w:p>"
    xml += "<w:p><w:r><w:t>Python and PostgreSQL.</w:t></w:r></w:p></w:body></w:document>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("word/document.xml", xml)

    for body in (buffer.getvalue(), hostile.docx_with_document(xml)):
        job = modules["extract"].extract_job("jobs/1/a.docx", body, {})
        assert job.description == "Backend Engineer\n\nPython and PostgreSQL."


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (hostile.docx_bzip2_bomb(64), "uses zip compression method 12"),
        (hostile.docx_member_variant(method=hostile.ZIP_LZMA), "uses zip compression method 14"),
        (hostile.docx_member_variant(method=hostile.ZIP_DEFLATE64), "compression method 9"),
        (hostile.docx_member_variant(flags=1), "word/document.xml is encrypted"),
    ],
    ids=["bzip2", "lzma", "deflate64", "encrypted"],
)
def test_members_word_never_writes_are_refused_before_inflating(
    modules: dict[str, ModuleType], body: bytes, detail: str
) -> None:
    # bzip2 and LZMA inflate without bound even 64 KiB at a time; Deflate64 and encryption
    # made zipfile raise errors that Lambda would have retried
    assert detail in rejection(modules, "jobs/1/a.docx", body)


def test_docx_text_past_the_ceiling_is_too_long(modules: dict[str, ModuleType]) -> None:
    body = docx(["Backend Engineer", "x" * 600, "y" * 600])

    detail = rejection(modules, "jobs/1/a.docx", body, max_text_chars=1_000)

    assert detail.startswith("too_long: the text has more than 1000 characters")


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_with_more_pages_than_the_ceiling_is_refused_before_reading_them(
    modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modules["documents"], "PDF_MAX_PAGES", 4)
    honest = hostile.pdf_many_pages(5)
    # The same PDF whose page tree claims a single page: the pages themselves are counted.
    lying = honest.replace(b"/Count 5", b"/Count 1")

    for body in (honest, lying):
        detail = rejection(modules, "jobs/1/a.pdf", body)
        assert detail == "too_long: the PDF has 5 pages; at most 4 are read"


def test_pdf_stream_inflating_past_the_limit_is_too_large(modules: dict[str, ModuleType]) -> None:
    # 20 MiB of text in one content stream: past the 16 MiB allowed (pypdf's default is 75 MB)
    detail = rejection(modules, "jobs/1/a.pdf", hostile.pdf_flate_bomb(20 * hostile.MIB))

    assert detail.startswith("too_large: the PDF exceeds a reading limit")


def test_pdf_text_past_the_ceiling_is_too_long(modules: dict[str, ModuleType]) -> None:
    detail = rejection(modules, "jobs/1/a.pdf", hostile.pdf_many_pages(40), max_text_chars=500)

    assert detail.startswith("too_long: the text has more than 500 characters")


# --- HTML ----------------------------------------------------------------------------------------


def test_html_with_more_elements_than_the_ceiling_is_too_large(
    modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modules["documents"], "HTML_MAX_ELEMENTS", 1_000)

    detail = rejection(modules, "jobs/1/a.html", hostile.nested_html(1_001))

    assert detail == "too_large: the HTML has more than 1000 elements"


def test_deeply_nested_blocks_make_one_paragraph_break(modules: dict[str, ModuleType]) -> None:
    nested = "<div>\n" * 5_000 + "Python" + "</div>\n" * 5_000
    html = f"<title>Backend</title><p>Intro.</p>{nested}<p>Outro.</p>"

    text, title = modules["documents"].html_text(html, modules["limits"].TextBudget(1_000))

    assert (text, title) == ("Intro.\n\nPython\n\nOutro.", "Backend")


def test_markup_left_open_at_the_end_is_dropped_quickly(modules: dict[str, ModuleType]) -> None:
    # Python's html.parser (before 3.11.13) rescans such a tail once per character at close():
    # 2.5 million of them used to outlast the function's 300 s.
    body = hostile.unterminated_tags_html(2_500_000)

    job = modules["extract"].extract_job("jobs/1/a.html", body, {})

    assert (job.title, job.description) == ("Backend Engineer", "Python and PostgreSQL.")


def test_text_waiting_for_a_character_reference_at_the_end_is_kept(
    modules: dict[str, ModuleType],
) -> None:
    html = "<title>Backend</title><p>Python and R&D"

    text, _ = modules["documents"].html_text(html, modules["limits"].TextBudget(1_000))

    assert text == "Python and R&D"


def test_html_text_past_the_ceiling_is_too_long(modules: dict[str, ModuleType]) -> None:
    body = b"<title>Backend</title>" + b"<p>Python and PostgreSQL.</p>" * 100

    detail = rejection(modules, "jobs/1/a.html", body, max_text_chars=1_000)

    assert detail.startswith("too_long: the text has more than 1000 characters")


# --- plain text and JSON ------------------------------------------------------------------------


def test_text_past_the_ceiling_is_too_long_naming_its_length(
    modules: dict[str, ModuleType],
) -> None:
    body = hostile.cp949_text(100_000)  # the CP949 path: decoded, counted, refused
    length = len(body.decode("cp949").strip())

    detail = rejection(modules, "jobs/1/a.txt", body, max_text_chars=10_000)

    assert detail.startswith(f"too_long: the text has {length} characters; at most 10000")


def test_legacy_korean_text_within_the_ceiling_is_still_recognised(
    modules: dict[str, ModuleType],
) -> None:
    job = modules["extract"].extract_job("jobs/1/a.txt", hostile.cp949_text(2_000), {})

    assert job.title == "백엔드 개발자를 찾습니다. 파이썬과 PostgreSQL 경험이 필요합니다."


def json_job(**extra: object) -> bytes:
    job = {"company_id": 1, "title": "Backend Engineer", "description": "Python.", **extra}
    return json.dumps(job).encode()


@pytest.mark.parametrize(
    ("body", "max_text_chars", "detail"),
    [
        (
            json_job(notes="x" * 80_000),
            1_000,  # 6 characters of JSON per character of text, plus 64 KiB: 71,536
            "too_large: the JSON has 80085 characters; at most 71536 are parsed",
        ),
        (
            hostile.nested_json(100_000),
            400_000,
            "too_large: the JSON has 100001 '{' and '[' characters; at most 10000 are parsed",
        ),
        (
            hostile.wide_json(100_000),
            400_000,
            "too_large: the JSON has 33307 '{' and '[' characters; at most 10000 are parsed",
        ),
        (
            hostile.nested_json(21),
            400_000,
            "invalid_json: the JSON nests deeper than 20 levels",
        ),
        (
            json_job(notes="x" * 70_000),
            400_000,
            "too_large: the JSON's other fields take 70013 bytes; at most 65536 are kept",
        ),
        (
            json_job(description="Python. " * 200),
            1_000,
            "too_long: the text has 1599 characters; at most 1000 are read",
        ),
    ],
    ids=["long", "deep", "wide", "deeper than 20", "large metadata", "long description"],
)
def test_json_beyond_its_limits_is_rejected(
    modules: dict[str, ModuleType], body: bytes, max_text_chars: int, detail: str
) -> None:
    rejected = rejection(modules, "jobs/1/a.json", body, max_text_chars=max_text_chars)

    assert rejected.startswith(detail)


def test_json_deeper_than_the_interpreter_recurses_is_invalid_not_a_crash(
    modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the container ceiling, json.loads itself runs out of recursion: before, that
    # RecursionError failed the record and Lambda retried the event.
    monkeypatch.setattr(modules["extract"], "JSON_MAX_CONTAINERS", 1_000_000)

    detail = rejection(modules, "jobs/1/a.json", hostile.nested_json(100_000))

    assert detail == "invalid_json: the JSON nests deeper than 20 levels"


def test_json_job_within_the_limits_keeps_its_metadata(modules: dict[str, ModuleType]) -> None:
    body = json_job(location={"city": "Seoul", "remote": [True, {"days": [1, 2]}]})

    job = modules["extract"].extract_job("jobs/1/a.json", body, {})

    assert job.source_metadata == {
        "document": {"location": {"city": "Seoul", "remote": [True, {"days": [1, 2]}]}}
    }


# --- chunks: INGEST_MAX_CHUNKS --------------------------------------------------------------------


@pytest.fixture
def max_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("INGEST_MAX_CHUNKS", "3")
    config.reset_settings()
    yield 3
    monkeypatch.delenv("INGEST_MAX_CHUNKS")
    config.reset_settings()


def test_a_document_needing_more_chunks_than_allowed_is_rejected_before_any_embedding(
    ingest: Ingest,  # noqa: F811
    counting_embedder: CountingEmbedder,  # noqa: F811
    max_chunks: int,
) -> None:
    # 840 estimated tokens in one section: four chunks with their overlaps, although its words
    # alone would fit three. And Korean whose words alone need more than three (a token per
    # syllable), refused without chunking it.
    sentence = "Python and PostgreSQL, on AWS Lambda. "  # 12 estimated tokens
    four = "# Four\n\n" + sentence * 70
    assert len(chunk_text(four)) == 4
    ingest.put("jobs/1/four.md", four)
    ingest.put("jobs/1/many.md", "# 백엔드 개발자\n\n" + "백엔드 개발자를 찾습니다. " * 150)
    ingest.put("jobs/1/ok.md", "# Backend Engineer\n\nPython and PostgreSQL.")

    result = ingest.invoke(
        *(
            ingest.record("ObjectCreated:Put", key, ingest.next_sequencer())
            for key in ("jobs/1/four.md", "jobs/1/many.md", "jobs/1/ok.md")
        )
    )

    assert result["outcomes"] == ["rejected", "rejected", "written"]
    assert [(r["key"], r["reason"], r["detail"]) for r in ingest.rejections()] == [
        (
            "jobs/1/four.md",
            "too_long",
            "the text needs 4 chunks; at most 3 are embedded per document (INGEST_MAX_CHUNKS)",
        ),
        (
            "jobs/1/many.md",
            "too_long",
            "the text needs at least 7 chunks; at most 3 are embedded per document"
            " (INGEST_MAX_CHUNKS)",
        ),
    ]
    assert counting_embedder.calls == 1  # the one document that was ingested
    assert ingest.job("jobs/1/four.md") is None


def test_the_text_ceiling_follows_the_chunk_ceiling(
    ingest: Ingest,  # noqa: F811
    max_chunks: int,
) -> None:
    # 3 chunks allow 6,000 characters of text: a longer one is refused as read
    ingest.upload("jobs/1/long.txt", "Backend Engineer\n\n" + "word " * 1_300)

    [rejected] = ingest.rejections()
    assert (rejected["reason"], rejected["detail"]) == (
        "too_long",
        "the text has 6517 characters; at most 6000 are read (2000 per chunk of INGEST_MAX_CHUNKS)",
    )


@pytest.mark.parametrize("value", ["many", "0", "2001"])
def test_bad_chunk_ceiling_fails_at_start_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="INGEST_MAX_CHUNKS"):
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "INGEST_MAX_CHUNKS": value})


def test_chunk_ceiling_default_and_override() -> None:
    settings = {"DATABASE_URL": "postgresql://u@h/db"}
    assert load_settings(settings).ingest_max_chunks == 200
    assert load_settings({**settings, "INGEST_MAX_CHUNKS": "50"}).ingest_max_chunks == 50
