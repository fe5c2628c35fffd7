"""S3 notification records -> ``ObjectChange`` values, and the per-key event order.

The notifications come straight from S3 (a direct event) or inside SQS messages (S3 -> SQS ->
the event source mapping): then each message's body is one notification's JSON, possibly
S3's ``s3:TestEvent``.

S3 delivers at least once and in no guaranteed order. Per key, the ``sequencer`` (hex) orders
events; sequencers of different lengths are compared after right-padding the shorter one with
zeros (the current S3 user guide; older copies said left). Real sequencers share a fixed-width
time prefix, so padding on the right keeps that prefix aligned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

_SEQUENCER = re.compile(r"^[0-9A-Fa-f]{1,64}$")  # jobs.source_sequencer is VARCHAR(64)


class ChangeKind(StrEnum):
    CREATED = "created"
    REMOVED = "removed"


@dataclass(frozen=True)
class ObjectChange:
    """One S3 record this function acts on (key already URL-decoded)."""

    kind: ChangeKind
    event_name: str
    bucket: str
    key: str
    size: int | None
    sequencer: str | None
    version_id: str | None
    request_id: str | None

    @property
    def purges_one_version(self) -> bool:
        """A versioned bucket's permanent delete of one version (not a delete marker)."""
        return (
            self.kind is ChangeKind.REMOVED
            and self.version_id is not None
            and (self.event_name.endswith(":Delete"))
        )


@dataclass(frozen=True)
class IgnoredRecord:
    """A record that is not ours to act on (other event types, malformed records)."""

    reason: str
    event_name: str | None
    key: str | None


def is_test_event(event: Mapping[str, Any]) -> bool:
    """S3 sends ``{"Event": "s3:TestEvent", ...}`` (no ``Records``) after configuration."""
    return "Records" not in event and event.get("Event") == "s3:TestEvent"


def is_queue_event(event: Mapping[str, Any]) -> bool:
    """A batch from an SQS event source mapping (every record from ``aws:sqs``)."""
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(
            isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs"
            for record in records
        )
    )


def notification_in_message(body: str) -> Mapping[str, Any] | IgnoredRecord:
    """The S3 notification an SQS message carries, or why the message holds none (retrying
    cannot make one appear)."""
    try:
        notification = json.loads(body)
    except ValueError:
        return IgnoredRecord("message body is not JSON", None, None)
    if not isinstance(notification, Mapping) or not (
        isinstance(notification.get("Records"), list) or is_test_event(notification)
    ):
        return IgnoredRecord("message body is not an S3 notification", None, None)
    return notification


def parse_records(event: Mapping[str, Any]) -> list[ObjectChange | IgnoredRecord]:
    records = event.get("Records")
    if not isinstance(records, list):
        return [IgnoredRecord("event has no Records list", None, None)]
    return [parse_record(record) for record in records]


def parse_record(record: Any) -> ObjectChange | IgnoredRecord:
    if not isinstance(record, Mapping):
        return IgnoredRecord("record is not an object", None, None)
    event_name = str(record.get("eventName") or "")
    if event_name.startswith("s3:"):
        event_name = event_name[3:]
    s3 = record.get("s3")
    bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
    obj = s3.get("object") if isinstance(s3, Mapping) else None
    bucket_name = bucket.get("name") if isinstance(bucket, Mapping) else None
    raw_key = obj.get("key") if isinstance(obj, Mapping) else None
    if not isinstance(bucket_name, str) or not bucket_name or not isinstance(raw_key, str):
        return IgnoredRecord("record has no s3.bucket.name or s3.object.key", event_name, None)
    assert isinstance(obj, Mapping)
    key = unquote_plus(raw_key)  # keys arrive URL-encoded, spaces as '+'
    if not key:
        return IgnoredRecord("record has an empty object key", event_name, key)
    if key.endswith("/"):
        return IgnoredRecord("folder marker, not a document", event_name, key)
    if "\x00" in key:  # no database text holds NUL: a retry could never store it
        return IgnoredRecord("object key holds a NUL character", event_name, key)

    if event_name.startswith("ObjectCreated:"):
        kind = ChangeKind.CREATED
    elif event_name.startswith(("ObjectRemoved:", "LifecycleExpiration:")):
        kind = ChangeKind.REMOVED
    else:
        return IgnoredRecord("event type is not handled", event_name, key)

    sequencer = obj.get("sequencer")
    if sequencer is not None and (
        not isinstance(sequencer, str) or not _SEQUENCER.match(sequencer)
    ):
        return IgnoredRecord(f"malformed sequencer {sequencer!r}", event_name, key)
    size = obj.get("size")
    version_id = obj.get("versionId")
    response = record.get("responseElements")
    request_id = response.get("x-amz-request-id") if isinstance(response, Mapping) else None
    return ObjectChange(
        kind=kind,
        event_name=event_name,
        bucket=bucket_name,
        key=key,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sequencer=sequencer.upper() if sequencer else None,
        version_id=version_id if isinstance(version_id, str) and version_id else None,
        request_id=request_id if isinstance(request_id, str) and request_id else None,
    )


def _padded(left: str, right: str) -> tuple[str, str]:
    width = max(len(left), len(right))
    return left.upper().ljust(width, "0"), right.upper().ljust(width, "0")


def is_newer(incoming: str | None, stored: str | None) -> bool:
    """Whether an event with sequencer ``incoming`` comes after the one ``stored`` for the key.

    Equal (after padding) is not newer: it is the same event delivered again. An event
    without a sequencer carries no order and is applied (idempotently, by content hash).
    """
    if incoming is None or stored is None:
        return True
    padded_incoming, padded_stored = _padded(incoming, stored)
    return padded_incoming > padded_stored
