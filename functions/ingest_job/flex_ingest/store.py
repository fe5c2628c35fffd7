"""Jobs and chunks in PostgreSQL: short transactions, a locked job row, chunks by COPY.

The embedder is never called while a transaction is open: the caller reads the state, does the
slow work, then calls ``apply_upsert`` which locks the job row (or creates it with
``INSERT ... ON CONFLICT``), checks the sequencer again, and writes the job and all its chunks
in one transaction. Two deliveries of one key therefore serialise on the row lock: one job,
never interleaved chunks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from flex_ingest.events import ObjectChange, is_newer
from flex_ingest.extract import ExtractedJob
from flex_shared.db import connection_transaction, vector_literal

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
    job_id: int
    company_id: int
    sequencer: str | None
    version_id: str | None
    content_sha256: str | None
    deleted_at: datetime | None
    embedding_model: str | None

    def can_keep_chunks(self, content_sha256: str, model_id: str) -> bool:
        """The live chunks already embed exactly this text with this model."""
        return (
            self.deleted_at is None
            and self.content_sha256 == content_sha256
            and self.embedding_model == model_id
        )


@dataclass(frozen=True)
class EmbeddedChunks:
    texts: Sequence[str]
    vectors: Sequence[Sequence[float]]
    model_id: str
    dimensions: int


class WriteResult(StrEnum):
    WRITTEN = "written"  # job and new chunks stored
    KEPT_CHUNKS = "kept_chunks"  # job row updated, content unchanged: no re-embedding
    STALE = "stale"  # an equal or newer event for the key was applied already
    NEEDS_EMBEDDINGS = "needs_embeddings"  # state changed since the plan: embed, then retry
    REMOVED = "removed"
    NOTHING_TO_REMOVE = "nothing_to_remove"
    OTHER_VERSION = "other_version"  # a non-current version was purged; the job stands


@dataclass(frozen=True)
class Outcome:
    result: WriteResult
    job_id: int | None = None
    chunks_written: int = 0


def _state(connection: Connection, bucket: str, key: str, *, lock: bool) -> JobState | None:
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


def load_state(bucket: str, key: str) -> JobState | None:
    """What is stored for the key now (no lock: only to plan the slow work)."""
    with connection_transaction() as connection:
        return _state(connection, bucket, key, lock=False)


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


def apply_upsert(
    change: ObjectChange,
    job: ExtractedJob,
    version_id: str | None,
    chunks: EmbeddedChunks | None,
    model_id: str,
) -> Outcome:
    """Store ``job`` for the change's key in one transaction, if the change is still the
    newest. ``chunks`` may be None when the plan found the content unchanged; if the state
    moved meanwhile the answer is ``NEEDS_EMBEDDINGS`` and nothing is written."""
    params = _job_params(change, job, version_id)
    with connection_transaction() as connection:
        state = _state(connection, change.bucket, change.key, lock=True)
        if state is None:
            if chunks is None:
                return Outcome(WriteResult.NEEDS_EMBEDDINGS)
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
                params,
            ).scalar()
            if job_id is not None:
                copy_chunks(connection, job_id, job.company_id, chunks)
                return Outcome(WriteResult.WRITTEN, job_id, len(chunks.texts))
            # Another delivery created the row first; its commit released it: lock it.
            state = _state(connection, change.bucket, change.key, lock=True)
            assert state is not None

        if not is_newer(change.sequencer, state.sequencer):
            return Outcome(WriteResult.STALE, state.job_id)
        keep = state.can_keep_chunks(job.content_sha256, model_id)
        if chunks is None and not keep:
            return Outcome(WriteResult.NEEDS_EMBEDDINGS, state.job_id)

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
            {**params, "job_id": state.job_id},
        )
        if chunks is None:
            if state.company_id != job.company_id:  # the denormalised copy follows the job
                connection.execute(
                    text("UPDATE job_chunks SET company_id = :company_id WHERE job_id = :job_id"),
                    {"company_id": job.company_id, "job_id": state.job_id},
                )
            return Outcome(WriteResult.KEPT_CHUNKS, state.job_id)
        connection.execute(
            text("DELETE FROM job_chunks WHERE job_id = :job_id"), {"job_id": state.job_id}
        )
        copy_chunks(connection, state.job_id, job.company_id, chunks)
        return Outcome(WriteResult.WRITTEN, state.job_id, len(chunks.texts))


def apply_removal(change: ObjectChange) -> Outcome:
    """Take the key's job out of search: ``deleted_at`` set, chunks deleted. The job row
    stays (interview sessions reference it) and remembers the delete's sequencer, so a late
    older ``ObjectCreated`` changes nothing and a newer upload revives the same id."""
    with connection_transaction() as connection:
        state = _state(connection, change.bucket, change.key, lock=True)
        if state is None:
            return Outcome(WriteResult.NOTHING_TO_REMOVE)
        if not is_newer(change.sequencer, state.sequencer):
            return Outcome(WriteResult.STALE, state.job_id)
        if (
            change.purges_one_version
            and state.version_id is not None
            and change.version_id != state.version_id
        ):
            return Outcome(WriteResult.OTHER_VERSION, state.job_id)
        connection.execute(
            text(
                """
                UPDATE jobs SET deleted_at = COALESCE(deleted_at, timezone('utc', now())),
                       source_sequencer = COALESCE(:sequencer, source_sequencer)
                WHERE id = :job_id
                """
            ),
            {"sequencer": change.sequencer, "job_id": state.job_id},
        )
        connection.execute(
            text("DELETE FROM job_chunks WHERE job_id = :job_id"), {"job_id": state.job_id}
        )
        return Outcome(WriteResult.REMOVED, state.job_id)


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
