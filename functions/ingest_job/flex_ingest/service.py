"""One S3 change -> the database: plan, fetch, extract, chunk and embed, then write.

Nothing here knows about Lambda. Bad objects raise ``RejectedObject``; a vanished object is an
``Outcome``; everything else (database, S3, embedding service) propagates to be retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flex_ingest.events import ChangeKind, ObjectChange, is_newer
from flex_ingest.extract import RejectedObject, RejectReason, extract_job
from flex_ingest.source import ObjectGone, fetch_object, too_large
from flex_ingest.store import (
    EmbeddedChunks,
    Outcome,
    WriteResult,
    apply_removal,
    apply_upsert,
    load_state,
)
from flex_shared.chunking import chunk_text
from flex_shared.config import get_settings
from flex_shared.embeddings import Embedder, EmbeddingInputError, get_embedder

GONE = "gone"


@dataclass(frozen=True)
class ChangeReport:
    """What happened to one record, for the log line and the metrics."""

    outcome: str
    job_id: int | None = None
    chunks_written: int = 0
    embedding_seconds: float = 0.0


def process_change(change: ObjectChange, deadline: float | None) -> ChangeReport:
    if change.kind is ChangeKind.REMOVED:
        removed = apply_removal(change)
        return ChangeReport(removed.result.value, removed.job_id)
    return _ingest(change, deadline)


def _ingest(change: ObjectChange, deadline: float | None) -> ChangeReport:
    settings = get_settings()
    state = load_state(change.bucket, change.key)
    if state is not None and not is_newer(change.sequencer, state.sequencer):
        return ChangeReport(WriteResult.STALE.value, state.job_id)  # before any download
    if change.size is not None and change.size > settings.ingest_max_object_bytes:
        raise too_large(change.size, settings.ingest_max_object_bytes)
    try:
        fetched = fetch_object(
            change.bucket, change.key, change.version_id, settings.ingest_max_object_bytes
        )
    except ObjectGone:
        return ChangeReport(GONE, state.job_id if state else None)
    job = extract_job(change.key, fetched.body, fetched.user_metadata)
    version_id = fetched.version_id or change.version_id

    embedder = get_embedder()
    chunks: EmbeddedChunks | None = None
    embedding_seconds = 0.0
    if state is None or not state.can_keep_chunks(job.content_sha256, embedder.model_id):
        chunks, embedding_seconds = _embed(job.description, embedder, deadline)

    written = apply_upsert(change, job, version_id, chunks, embedder.model_id)
    if written.result is WriteResult.NEEDS_EMBEDDINGS:
        # The stored state moved between plan and write (a concurrent delivery or delete):
        # embed now, outside any transaction, and write once more.
        chunks, embedding_seconds = _embed(job.description, embedder, deadline)
        written = apply_upsert(change, job, version_id, chunks, embedder.model_id)
    return _report(written, embedding_seconds)


def _embed(
    description: str, embedder: Embedder, deadline: float | None
) -> tuple[EmbeddedChunks, float]:
    texts = chunk_text(description)
    if not texts:
        raise RejectedObject(RejectReason.EMPTY, "the description produced no chunks")
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
    return EmbeddedChunks(texts, vectors, embedder.model_id, embedder.dimensions), elapsed


def _report(written: Outcome, embedding_seconds: float) -> ChangeReport:
    return ChangeReport(
        written.result.value, written.job_id, written.chunks_written, embedding_seconds
    )
