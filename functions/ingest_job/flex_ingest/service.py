"""One S3 change -> the database: plan, fetch, extract, chunk and embed, then write.

Nothing here knows about Lambda. The service owns the transactions (each through
``run_in_transaction``: run again on a new connection only when nothing of it reached the
database), and keeps them short: the embedder is never called while one is open. It reads the
key's state (no lock) to plan the slow work, does it, then writes in one transaction that locks
the job row (or creates it with ``INSERT ... ON CONFLICT``), checks the sequencer again, and
writes the job and all its chunks. Two deliveries of one key therefore serialise on the row
lock: one job, never interleaved chunks.

Bad objects raise ``RejectedObject``; a vanished object is the outcome ``gone``; everything
else (database, S3, embedding service) propagates to be retried.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from flex_ingest import store
from flex_ingest.events import ChangeKind, ObjectChange, is_newer
from flex_ingest.extract import ExtractedJob, extract_job
from flex_ingest.limits import max_text_chars
from flex_ingest.outcomes import Outcome, RecordReport
from flex_ingest.rejections import RejectedObject, RejectReason, too_large
from flex_ingest.source import ObjectGone, fetch_object
from flex_shared.chunking import chunk_text, minimum_chunk_count
from flex_shared.config import get_settings
from flex_shared.db import run_in_transaction
from flex_shared.embeddings import Embedder, EmbeddingInputError, get_embedder


def process_change(change: ObjectChange, deadline: float | None) -> RecordReport:
    if change.kind is ChangeKind.REMOVED:
        return remove(change)
    return _ingest(change, deadline)


def load_state(bucket: str, key: str) -> store.JobState | None:
    """What is stored for the key now (no lock: only to plan the slow work)."""
    return run_in_transaction(
        lambda connection: store.job_state(connection, bucket, key, lock=False)
    )


def can_keep_chunks(state: store.JobState, content_sha256: str, model_id: str) -> bool:
    """The live chunks already embed exactly this text with this model."""
    return (
        state.deleted_at is None
        and state.content_sha256 == content_sha256
        and state.embedding_model == model_id
    )


def _ingest(change: ObjectChange, deadline: float | None) -> RecordReport:
    settings = get_settings()
    state = load_state(change.bucket, change.key)
    if state is not None and not is_newer(change.sequencer, state.sequencer):
        return RecordReport(Outcome.STALE, state.job_id)  # before any download
    if change.size is not None and change.size > settings.ingest_max_object_bytes:
        raise too_large(change.size, settings.ingest_max_object_bytes)
    try:
        fetched = fetch_object(
            change.bucket, change.key, change.version_id, settings.ingest_max_object_bytes
        )
    except ObjectGone:
        return RecordReport(Outcome.GONE, state.job_id if state else None)
    job = extract_job(
        change.key,
        fetched.body,
        fetched.user_metadata,
        max_text_chars=max_text_chars(settings.ingest_max_chunks),
    )
    version_id = fetched.version_id or change.version_id

    embedder = get_embedder()
    chunks: store.EmbeddedChunks | None = None
    embedding_seconds = 0.0
    if state is None or not can_keep_chunks(state, job.content_sha256, embedder.model_id):
        chunks, embedding_seconds = _embed(job.description, embedder, deadline)

    written = _write(change, job, version_id, chunks, embedder.model_id)
    if written is None:
        # The stored state moved between plan and write (a concurrent delivery or delete):
        # embed now, outside any transaction, and write once more.
        chunks, embedding_seconds = _embed(job.description, embedder, deadline)
        written = _write(change, job, version_id, chunks, embedder.model_id)
    assert written is not None  # with chunks given, a write always has an outcome
    return RecordReport(written.outcome, written.job_id, written.chunks_written, embedding_seconds)


def _write(
    change: ObjectChange,
    job: ExtractedJob,
    version_id: str | None,
    chunks: store.EmbeddedChunks | None,
    model_id: str,
) -> RecordReport | None:
    """Store ``job`` for the change's key in one transaction, if the change is still the
    newest. ``chunks`` may be None when the plan found the content unchanged; if the state
    moved meanwhile and the chunks are needed after all, nothing is written: None."""

    def write(connection: Connection) -> RecordReport | None:
        state = store.job_state(connection, change.bucket, change.key, lock=True)
        if state is None:
            if chunks is None:
                return None
            job_id = store.insert_job(connection, change, job, version_id)
            if job_id is not None:
                store.copy_chunks(connection, job_id, job.company_id, chunks)
                return RecordReport(Outcome.WRITTEN, job_id, len(chunks.texts))
            # Another delivery created the row first; its commit released it: lock it.
            state = store.job_state(connection, change.bucket, change.key, lock=True)
            assert state is not None

        if not is_newer(change.sequencer, state.sequencer):
            return RecordReport(Outcome.STALE, state.job_id)
        keep = can_keep_chunks(state, job.content_sha256, model_id)
        if chunks is None and not keep:
            return None

        store.update_job(connection, state.job_id, change, job, version_id)
        if chunks is None:
            if state.company_id != job.company_id:
                store.set_chunks_company(connection, state.job_id, job.company_id)
            return RecordReport(Outcome.KEPT_CHUNKS, state.job_id)
        store.delete_chunks(connection, state.job_id)
        store.copy_chunks(connection, state.job_id, job.company_id, chunks)
        return RecordReport(Outcome.WRITTEN, state.job_id, len(chunks.texts))

    return run_in_transaction(write)


def remove(change: ObjectChange) -> RecordReport:
    """Take the key's job out of search: ``deleted_at`` set, chunks deleted. The job row
    stays (interview sessions reference it) and remembers the delete's sequencer, so a late
    older ``ObjectCreated`` changes nothing and a newer upload revives the same id."""

    def mark_removed(connection: Connection) -> RecordReport:
        state = store.job_state(connection, change.bucket, change.key, lock=True)
        if state is None:
            return RecordReport(Outcome.NOTHING_TO_REMOVE)
        if not is_newer(change.sequencer, state.sequencer):
            return RecordReport(Outcome.STALE, state.job_id)
        if (
            change.purges_one_version
            and state.version_id is not None
            and change.version_id != state.version_id
        ):
            return RecordReport(Outcome.OTHER_VERSION, state.job_id)
        store.mark_removed(connection, state.job_id, change.sequencer)
        store.delete_chunks(connection, state.job_id)
        return RecordReport(Outcome.REMOVED, state.job_id)

    return run_in_transaction(mark_removed)


def _chunked(description: str, max_chunks: int) -> list[str]:
    """The description's chunks, or ``too_long`` when it needs more than ``max_chunks``:
    refused before any Titan call, and before chunking when a cheap lower bound says so."""
    needed = minimum_chunk_count(description)
    if needed <= max_chunks:
        texts = chunk_text(description)
        if not texts:
            raise RejectedObject(RejectReason.EMPTY, "the description produced no chunks")
        if len(texts) <= max_chunks:
            return texts
    count = f"at least {needed}" if needed > max_chunks else str(len(texts))
    raise RejectedObject(
        RejectReason.TOO_LONG,
        f"the text needs {count} chunks; at most {max_chunks} are embedded per document"
        " (INGEST_MAX_CHUNKS)",
    )


def _embed(
    description: str, embedder: Embedder, deadline: float | None
) -> tuple[store.EmbeddedChunks, float]:
    texts = _chunked(description, get_settings().ingest_max_chunks)
    started = time.perf_counter()
    try:
        vectors = embedder.embed_documents(texts, deadline=deadline)
    except EmbeddingInputError as exc:  # the model refuses this text: it never will accept it
        raise RejectedObject(
            RejectReason.CORRUPT, f"embedding model refused a chunk ({exc})"
        ) from None
    elapsed = time.perf_counter() - started
    if len(vectors) != len(texts):
        raise RuntimeError(f"embedder returned {len(vectors)} vectors for {len(texts)} chunks")
    for vector in vectors:
        if len(vector) != embedder.dimensions:
            raise RuntimeError(
                f"embedder returned a {len(vector)}-d vector, not {embedder.dimensions}"
            )
    return store.EmbeddedChunks(texts, vectors, embedder.model_id, embedder.dimensions), elapsed
