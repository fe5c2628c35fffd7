"""What happened to one S3 record: one name per outcome, for the handler's answer, the log line
and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    WRITTEN = "written"  # job and new chunks stored
    KEPT_CHUNKS = "kept_chunks"  # job row updated, content unchanged: no re-embedding
    STALE = "stale"  # an equal or newer event for the key was applied already
    GONE = "gone"  # deleted before it could be read: its ObjectRemoved event follows
    REMOVED = "removed"  # taken out of search
    NOTHING_TO_REMOVE = "nothing_to_remove"
    OTHER_VERSION = "other_version"  # a non-current version was purged; the job stands
    REJECTED = "rejected"  # can never become a job (a RejectedObject, logged with its reason)
    IGNORED = "ignored"  # not ours to act on (other event types, malformed records)
    FAILED = "failed"  # a transient failure: the event is retried


@dataclass(frozen=True)
class RecordReport:
    """One record's outcome, with what the log line and the metrics say about it."""

    outcome: Outcome
    job_id: int | None = None
    chunks_written: int = 0
    embedding_seconds: float = 0.0
