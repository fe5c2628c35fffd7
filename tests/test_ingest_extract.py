"""The ingest function's pure parts: S3 records, event order, text decoding, document parsing.

No database and no S3 here: these pin down decisions (sequencer padding, what counts as text,
what a hostile DOCX gets) that the end-to-end tests in test_ingest_job.py rely on.
"""

from __future__ import annotations

import importlib
import io
import unicodedata
import zipfile
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def ingest_modules(load_function: Callable[[str], ModuleType]) -> dict[str, ModuleType]:
    load_function("ingest_job")  # puts the function's directory on sys.path, as Lambda does
    names = ("events", "extract", "documents", "rejections", "limits")
    return {name: importlib.import_module(f"flex_ingest.{name}") for name in names}


def _record(key: str, event_name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    return {
        "eventName": event_name,
        "responseElements": {"x-amz-request-id": "REQ1"},
        "s3": {"bucket": {"name": "bucket"}, "object": {"key": key, **obj}},
    }


# --- events and order --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "stored", "newer"),
    [
        ("0067D3F5AD8A1C4F3F", "0067D3F5AD8A1C4F3E", True),
        ("0067D3F5AD8A1C4F3E", "0067D3F5AD8A1C4F3E", False),  # the same event again
        ("0067D3F5AD8A1C4F3D", "0067D3F5AD8A1C4F3E", False),
        # Different lengths: the shorter is padded on the right (pinned choice).
        ("0067D3F5B0", "0067D3F5AD8A1C4F3E", True),
        ("0067D3F5AD8A1C4F3E", "0067D3F5B0", False),
        ("0067D3F5AD", "0067D3F5AD00000000", False),  # equal after padding
        ("0067D3F5AD8A1C4F3E01", "0067D3F5AD8A1C4F3E", True),
        ("0067d3f5ad8a1c4f3f", "0067D3F5AD8A1C4F3E", True),  # hex case does not matter
        (None, "0067D3F5AD8A1C4F3E", True),  # no order information: applied (idempotently)
        ("0067D3F5AD8A1C4F3E", None, True),
    ],
)
def test_sequencer_order(
    ingest_modules: dict[str, ModuleType], incoming: str | None, stored: str | None, newer: bool
) -> None:
    assert ingest_modules["events"].is_newer(incoming, stored) is newer


def test_keys_are_url_decoded_with_plus_as_space(ingest_modules: dict[str, ModuleType]) -> None:
    events = ingest_modules["events"]

    change = events.parse_record(_record("jobs/7/C%2B%2B+%EA%B0%9C%EB%B0%9C%EC%9E%90.txt"))

    assert change.key == "jobs/7/C++ 개발자.txt"
    assert change.request_id == "REQ1"


@pytest.mark.parametrize(
    ("event_name", "kind"),
    [
        ("ObjectCreated:Put", "created"),
        ("ObjectCreated:CompleteMultipartUpload", "created"),
        ("s3:ObjectCreated:Copy", "created"),
        ("ObjectRemoved:Delete", "removed"),
        ("ObjectRemoved:DeleteMarkerCreated", "removed"),
        ("LifecycleExpiration:Delete", "removed"),
        ("ObjectRestore:Completed", None),
        ("ObjectTagging:Put", None),
    ],
)
def test_event_kinds(
    ingest_modules: dict[str, ModuleType], event_name: str, kind: str | None
) -> None:
    events = ingest_modules["events"]

    parsed = events.parse_record(_record("jobs/1/a.txt", event_name, sequencer="0A"))

    if kind is None:
        assert isinstance(parsed, events.IgnoredRecord)
    else:
        assert parsed.kind.value == kind


@pytest.mark.parametrize(
    "record",
    [
        {"eventName": "ObjectCreated:Put"},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}},
        _record("jobs/1/a.txt", sequencer="not-hex"),
        _record("jobs/1/a.txt", sequencer="0" * 65),
        _record("jobs/1/"),  # a "folder" created in the console
        "not an object",
    ],
)
def test_malformed_or_foreign_records_are_ignored_not_raised(
    ingest_modules: dict[str, ModuleType], record: Any
) -> None:
    events = ingest_modules["events"]
    assert isinstance(events.parse_record(record), events.IgnoredRecord)


# --- text decoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("Chinese GB2312 (decodes as CP949 into mojibake)", "中文文本内容".encode("gb2312")),
        ("Japanese Shift-JIS", "日本語のテキストです".encode("shift_jis")),
        ("KS X 1001 symbols only", b"\xa1\xa2\xa1\xa3"),
        ("Windows-1252", "Ärger über Öl".encode("cp1252")),
        ("UTF-8 with control bytes", b"text\x00with\x01nul"),
        ("UTF-16 BOM, odd length", b"\xff\xfeA\x00B"),
    ],
)
def test_undecodable_text_is_rejected_never_guessed(
    ingest_modules: dict[str, ModuleType], label: str, data: bytes
) -> None:
    extract = ingest_modules["extract"]

    with pytest.raises(ingest_modules["rejections"].RejectedObject) as rejected:
        extract.decode_text(data)

    assert rejected.value.reason.value == "undecodable", label


def test_decomposed_hangul_is_stored_composed(ingest_modules: dict[str, ModuleType]) -> None:
    extract = ingest_modules["extract"]
    decomposed = unicodedata.normalize("NFD", "# 백엔드\n\n개발자")  # as macOS writes it

    job = extract.extract_job("jobs/1/a.md", decomposed.encode("utf-8"), {})

    assert job.title == "백엔드"
    assert job.description == "# 백엔드\n\n개발자"


def test_guessed_title_is_cut_but_a_given_one_is_not(ingest_modules: dict[str, ModuleType]) -> None:
    extract = ingest_modules["extract"]
    long_line = "Engineer " * 100

    job = extract.extract_job("jobs/1/a.txt", long_line.encode(), {})

    assert len(job.title) == extract.TITLE_MAX_CHARS
    with pytest.raises(ingest_modules["rejections"].RejectedObject, match="invalid_title"):
        extract.extract_job("jobs/1/a.txt", b"body", {"title": long_line})


# --- documents -----------------------------------------------------------------------------


def _docx(document_xml: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", document_xml)
    return buffer.getvalue()


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


@pytest.mark.parametrize(
    "document",
    [
        # Billion laughs: entity expansion must never start.
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f"<w:document {W}><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>",
        # External entity (XXE).
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f"<w:document {W}><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>",
        f"<w:document {W}><w:body><w:p><w:r><w:t>unclosed",
    ],
    ids=["entity expansion", "external entity", "truncated xml"],
)
def test_hostile_or_broken_docx_is_rejected_as_corrupt(
    ingest_modules: dict[str, ModuleType], document: str
) -> None:
    extract = ingest_modules["extract"]

    with pytest.raises(ingest_modules["rejections"].RejectedObject) as rejected:
        extract.extract_job("jobs/1/a.docx", _docx(document), {})

    assert rejected.value.reason.value == "corrupt"


def test_docx_that_expands_beyond_the_limit_is_rejected(
    ingest_modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, extract = ingest_modules["documents"], ingest_modules["extract"]
    monkeypatch.setattr(documents, "DOCX_MAX_XML_BYTES", 10_000)
    body = "<w:p><w:r><w:t>" + "a" * 20_000 + "</w:t></w:r></w:p>"

    with pytest.raises(ingest_modules["rejections"].RejectedObject, match="too_large"):
        extract.extract_job(
            "jobs/1/a.docx", _docx(f"<w:document {W}><w:body>{body}</w:body></w:document>"), {}
        )


def test_docx_without_main_part_is_corrupt(ingest_modules: dict[str, ModuleType]) -> None:
    extract = ingest_modules["extract"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/other.xml", "<x/>")

    with pytest.raises(ingest_modules["rejections"].RejectedObject, match="corrupt"):
        extract.extract_job("jobs/1/a.docx", buffer.getvalue(), {})


def test_html_hidden_parts_and_blocks(ingest_modules: dict[str, ModuleType]) -> None:
    documents = ingest_modules["documents"]
    html = (
        "<html><head><title> Role  title </title><script>var x = '<p>no</p>';</script></head>"
        "<body><template><p>template</p></template><div>Line one<br>Line two</div>"
        "<noscript>enable js</noscript><p>Tom &amp; Jerry&nbsp;&lt;3</p>"
        "<style>p { color: red }</style><p>after style</p></body></html>"
    )

    text, title = documents.html_text(html, ingest_modules["limits"].TextBudget(10_000))

    assert title == "Role title"
    assert text == "Line one\nLine two\n\nTom & Jerry <3\n\nafter style"


def test_html_with_only_invisible_content_is_empty(ingest_modules: dict[str, ModuleType]) -> None:
    extract = ingest_modules["extract"]

    with pytest.raises(ingest_modules["rejections"].RejectedObject, match="empty"):
        extract.extract_job(
            "jobs/1/a.html", b"<html><head><title>t</title></head><script>x</script></html>", {}
        )


@pytest.mark.parametrize("value", ["ten", "0", "-5", str(2 * 1024**3)])
def test_bad_object_size_limit_fails_at_start_naming_the_variable(value: str) -> None:
    from flex_shared.config import load_settings
    from flex_shared.errors import ConfigError

    with pytest.raises(ConfigError, match="INGEST_MAX_OBJECT_BYTES"):
        load_settings({"DATABASE_URL": "postgresql://u@h/db", "INGEST_MAX_OBJECT_BYTES": value})


def test_object_size_limit_default_and_override() -> None:
    from flex_shared.config import load_settings

    assert load_settings({"DATABASE_URL": "postgresql://u@h/db"}).ingest_max_object_bytes == (
        10 * 1024 * 1024
    )
    override = {"DATABASE_URL": "postgresql://u@h/db", "INGEST_MAX_OBJECT_BYTES": "5000"}
    assert load_settings(override).ingest_max_object_bytes == 5000
