"""Jobs and chunks in PostgreSQL: SQL only, on the caller's connection and transaction (the
service owns them). Chunks are written by COPY: pg8000's ``executemany`` would send one INSERT
per row.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from flex_ingest.events import ObjectChange
from flex_ingest.extract import ExtractedJob
from flex_shared.db import vector_literal

_COPY_CHUNKS = (
    "COPY job_chunks (job_id, chunk_index, chunk_text, embedding, company_id,"
    " embedding_model, embedding_dimensions) FROM STDIN"
)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

_SELECT_STATE = """
    SELECT j.id, j.company_id, j.source_sequencer, j.source_version_id, j.content_sha256,
           j.deleted_at,
           (SELECT c.embedding_model FROM job_chunks c WHERE c.job_id = j.id LIMIT 1)
               AS embedding_model
    FROM jobs j
    WHERE j.source_bucket = :bucket AND j.source_key = :key
"""


@dataclass(frozen=True)
class JobState:
    """What is stored for one S3 key."""

    job_id: int
    company_id: int
    sequencer: str | None
    version_id: str | None
    content_sha256: str | None
    deleted_at: datetime | None
    embedding_model: str | None


@dataclass(frozen=True)
class EmbeddedChunks:
    texts: Sequence[str]
    vectors: Sequence[Sequence[float]]
    model_id: str
    dimensions: int


def job_state(connection: Connection, bucket: str, key: str, *, lock: bool) -> JobState | None:
    """The key's job, if any; ``lock``: its row locked (FOR UPDATE) until the transaction ends."""
    sql = _SELECT_STATE + (" FOR UPDATE OF j" if lock else "")
    row = connection.execute(text(sql), {"bucket": bucket, "key": key}).first()
    if row is None:
        return None
    return JobState(
        job_id=row.id,
        company_id=row.company_id,
        sequencer=row.source_sequencer,
        version_id=row.source_version_id,
        content_sha256=row.content_sha256,
        deleted_at=row.deleted_at,
        embedding_model=row.embedding_model,
    )


def _job_params(change: ObjectChange, job: ExtractedJob, version_id: str | None) -> dict[str, Any]:
    return {
        "bucket": change.bucket,
        "key": change.key,
        "company_id": job.company_id,
        "title": job.title,
        "description": job.description,
        "version_id": version_id,
        "sequencer": change.sequencer,
        "sha": job.content_sha256,
        "metadata": json.dumps(job.source_metadata, ensure_ascii=False),
    }


def insert_job(
    connection: Connection, change: ObjectChange, job: ExtractedJob, version_id: str | None
) -> int | None:
    """A new job for the change's key; None when another delivery created it first (its
    transaction has committed, so the row can now be locked)."""
    job_id = connection.execute(
        text(
            """
            INSERT INTO jobs (company_id, title, description, source_bucket, source_key,
                              source_version_id, source_sequencer, content_sha256,
                              source_metadata)
            VALUES (:company_id, :title, :description, :bucket, :key, :version_id,
                    :sequencer, :sha, CAST(:metadata AS JSONB))
            ON CONFLICT (source_bucket, source_key) DO NOTHING
            RETURNING id
            """
        ),
        _job_params(change, job, version_id),
    ).scalar()
    return None if job_id is None else int(job_id)


def update_job(
    connection: Connection,
    job_id: int,
    change: ObjectChange,
    job: ExtractedJob,
    version_id: str | None,
) -> None:
    """The job row takes the change's content and source, back in search (``deleted_at``
    cleared); a change without a sequencer keeps the stored one."""
    connection.execute(
        text(
            """
            UPDATE jobs SET company_id = :company_id, title = :title,
                   description = :description, source_version_id = :version_id,
                   source_sequencer = COALESCE(:sequencer, source_sequencer),
                   content_sha256 = :sha, source_metadata = CAST(:metadata AS JSONB),
                   deleted_at = NULL
            WHERE id = :job_id
            """
        ),
        {**_job_params(change, job, version_id), "job_id": job_id},
    )


def set_chunks_company(connection: Connection, job_id: int, company_id: int) -> None:
    """The chunks' denormalised copy of the job's company follows the job."""
    connection.execute(
        text("UPDATE job_chunks SET company_id = :company_id WHERE job_id = :job_id"),
        {"company_id": company_id, "job_id": job_id},
    )


def delete_chunks(connection: Connection, job_id: int) -> None:
    connection.execute(text("DELETE FROM job_chunks WHERE job_id = :job_id"), {"job_id": job_id})


def mark_removed(connection: Connection, job_id: int, sequencer: str | None) -> None:
    """``deleted_at`` set (kept if already set); the delete's sequencer remembered."""
    connection.execute(
        text(
            """
            UPDATE jobs SET deleted_at = COALESCE(deleted_at, timezone('utc', now())),
                   source_sequencer = COALESCE(:sequencer, source_sequencer)
            WHERE id = :job_id
            """
        ),
        {"sequencer": sequencer, "job_id": job_id},
    )


def copy_rows(job_id: int, company_id: int, chunks: EmbeddedChunks, first_index: int = 0) -> bytes:
    """The chunks as COPY text-format rows (tabs, newlines and backslashes escaped)."""
    model = chunks.model_id.translate(_COPY_ESCAPES)
    lines = [
        f"{job_id}\t{index}\t{chunk.translate(_COPY_ESCAPES)}\t{vector_literal(vector)}"
        f"\t{company_id}\t{model}\t{chunks.dimensions}\n"
        for index, (chunk, vector) in enumerate(
            zip(chunks.texts, chunks.vectors, strict=True), start=first_index
        )
    ]
    return "".join(lines).encode("utf-8")


def copy_into_job_chunks(connection: Connection, payload: bytes) -> None:
    """COPY ``payload`` into job_chunks on ``connection``, inside its transaction
    (pg8000's ``executemany`` would send one INSERT per row)."""
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    cursor = driver_connection.cursor()
    try:
        cursor.execute(_COPY_CHUNKS, stream=io.BytesIO(payload))
    finally:
        cursor.close()


def copy_chunks(
    connection: Connection, job_id: int, company_id: int, chunks: EmbeddedChunks
) -> None:
    if chunks.texts:
        copy_into_job_chunks(connection, copy_rows(job_id, company_id, chunks))
