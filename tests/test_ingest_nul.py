"""Ingestion of objects whose key or S3 user metadata spell NUL: PostgreSQL text and JSONB cannot
hold it, so such a record must be stored without it or skipped with a logged reason. It must
never fail like a transient error (Lambda would retry bytes that can never be stored)."""

from __future__ import annotations

from sqlalchemy import text

from tests.test_ingest_job import Ingest, ingest  # noqa: F401  (the ingest fixture)


def test_metadata_spelling_nul_is_stored_without_it(ingest: Ingest) -> None:  # noqa: F811
    # Given a text job whose user metadata is RFC 2047-encoded and holds NUL (=00)
    result, _ = ingest.upload(
        "jobs/5/backend.txt",
        "Backend engineer\n\nPython and PostgreSQL.",
        {"team": "=?UTF-8?Q?plat=00form?="},
    )
    # Then the job is stored (not retried) and its metadata keeps the text around the NUL
    assert result["outcomes"] == ["written"]
    job = ingest.job("jobs/5/backend.txt")
    assert job is not None
    assert job.source_metadata == {"team": "platform"}


def test_key_with_nul_is_skipped_not_retried(ingest: Ingest) -> None:  # noqa: F811
    # Given an event for a key that decodes to a NUL (%00), next to a good record
    good_sequencer = ingest.put("jobs/5/good.md", "# Data engineer\n\nSpark and SQL.")
    event_records = [
        ingest.record("ObjectCreated:Put", "jobs/5/bad\x00.md", ingest.next_sequencer()),
        ingest.record("ObjectCreated:Put", "jobs/5/good.md", good_sequencer),
    ]
    # When it is delivered, the invocation does not raise (no retry) ...
    result = ingest.invoke(*event_records)
    # Then the bad record is skipped (its reason logged at info) and the good one is stored
    assert result["outcomes"] == ["ignored", "written"]
    with ingest.engine.connect() as connection:
        keys = connection.execute(text("SELECT source_key FROM jobs")).scalars().all()
    assert keys == ["jobs/5/good.md"]
