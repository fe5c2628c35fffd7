"""Hostile uploads (``tests/hostile_documents.py``) through the real handler, each in a fresh
process: every one is rejected with its reason or ingested within the ceilings, nothing is
written for a rejected one, the event's other record still lands, nothing makes Lambda retry
the event, and the process's peak memory stays far below the function's 1,024 MB.

Before these limits the worst of them peaked at 1.3-1.5 GB (a zip bomb with lying headers, a
bzip2 member, 10 MiB of CP949), made Lambda retry the whole event (Deflate64 and encrypted
members, JSON nested 100,000 deep) or ran past the function's 300 s (unterminated HTML tags).
``python -m bench.bench_ingest_memory`` prints each one's numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from flex_shared.config import DEFAULT_INGEST_MAX_CHUNKS
from tests.hostile_documents import HOSTILE_DOCUMENTS, HostileDocument
from tests.ingest_memory import (
    GOOD_DOCUMENT,
    GOOD_KEY,
    LocalServices,
    ingest_in_fresh_process,
    local_services,
)

FUNCTION_MEMORY_MIB = 1024
PEAK_MEMORY_CEILING_MIB = 256
"""A quarter of the function's memory, whatever the upload (a fresh process ingesting a small
job description peaks near 86 MiB)."""

# What becomes of each hostile upload: the reason it is rejected with, or None: ingested.
EXPECTED_REASONS: dict[str, str | None] = {
    "docx_lying_zip_bomb": "corrupt",  # inflated only as far as its headers claim: 1 KiB
    "docx_honest_zip_bomb": "too_large",
    "docx_bzip2_bomb": "corrupt",  # a compression method Word never writes
    "docx_deflate64": "corrupt",
    "docx_encrypted": "corrupt",
    "docx_billion_laughs": "corrupt",  # DTDs refused
    "docx_huge_attribute": "too_large",
    "docx_many_members": None,  # a 10 MiB central directory is bounded by the object size
    "pdf_flate_bomb": "too_large",
    "pdf_many_pages": "too_long",
    "html_deep_nesting": "too_large",  # more elements than any job page
    "html_unterminated_tags": None,  # the unterminated tail is dropped, the job kept
    "txt_single_line": "too_long",
    "txt_cp949_10mib": "too_long",
    "json_deep_nesting": "too_large",
    "json_wide": "too_large",
}


def test_every_hostile_document_has_an_expected_outcome() -> None:
    assert set(EXPECTED_REASONS) == {document.name for document in HOSTILE_DOCUMENTS}


@pytest.fixture(scope="module")
def services() -> Iterator[LocalServices]:
    with local_services() as started:
        yield started


def _chunks_by_key(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT j.source_key, count(c.id) FROM jobs j"
                " LEFT JOIN job_chunks c ON c.job_id = j.id GROUP BY j.source_key"
            )
        ).all()
    return {key: count for key, count in rows}


@pytest.mark.parametrize("document", HOSTILE_DOCUMENTS, ids=lambda document: document.name)
def test_hostile_upload_in_a_fresh_process(
    document: HostileDocument, services: LocalServices, database_url: str, db_engine: Engine
) -> None:
    # Given the hostile upload and a normal job description, in one S3 event
    bucket = services.bucket
    records = [bucket.put(document.key, document.build()), bucket.put(GOOD_KEY, GOOD_DOCUMENT)]

    # When a fresh process runs the ingestion handler (as deployed: Titan, S3) on it
    result = ingest_in_fresh_process(records, services.child_environment(database_url))

    # Then nothing is left for Lambda to retry, and the hostile record ends as expected
    expected = EXPECTED_REASONS[document.name]
    assert result.raised is None, result.failures
    assert result.outcomes == ["rejected" if expected else "written", "written"]
    assert result.reason_for(document.key) == expected, result.rejections
    stored = _chunks_by_key(db_engine)
    if expected:
        assert document.key not in stored  # nothing written
    else:
        assert 1 <= stored[document.key] <= DEFAULT_INGEST_MAX_CHUNKS
    assert stored[GOOD_KEY] >= 1  # the other record of the event landed
    # And the process never came near the function's memory
    assert result.peak_mib < PEAK_MEMORY_CEILING_MIB < FUNCTION_MEMORY_MIB
