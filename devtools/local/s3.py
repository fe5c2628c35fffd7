"""S3 served by moto's server, and the notifications moto's server does not send.

moto's server never invokes Lambda for bucket notifications, so a bridge watches the
template's buckets (ListObjectVersions: version id, ETag, LastModified) and turns what changed
into standard S3 event notifications (``ObjectCreated:*`` / ``ObjectRemoved:*``, keys
URL-encoded with ``+`` for spaces, an increasing hex ``sequencer``), delivered to the functions
subscribed in the template (prefix/suffix filters honoured): as S3's own event, or, when the
template routes them through an SQS queue, as the event source mapping's batch of one message
carrying the notification. A failure (an error, or a batch answer naming the message) is
retried a few times. Whatever client uploads the object (AWS CLI, boto3, the runner itself),
ingestion follows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from devtools.sqs_events import lambda_event, queue_arn, received_message

from .template import LOCAL_ACCOUNT_ID, LOCAL_REGION, Bucket, S3Subscription

# Lambda retries a failed asynchronous invocation twice; a queue would deliver it again after
# its visibility timeout. Locally: twice, soon.
ASYNC_RETRY_ATTEMPTS = 2
RETRY_DELAYS_SECONDS = (0.5, 2.0)


class MotoS3:
    """moto's threaded server on 127.0.0.1 (a free port unless one is given)."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._started = False

    def start(self) -> str:
        self._server.start()
        self._started = True
        return self.endpoint

    @property
    def endpoint(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.get_host_and_port()[1])

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False


def s3_client(endpoint: str, region: str = LOCAL_REGION) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 (fake credentials for moto)
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def create_bucket(client: Any, bucket: Bucket) -> None:
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket.name)
    if bucket.versioned:
        client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
        )


@dataclass(frozen=True)
class _Version:
    key: str
    version_id: str
    etag: str
    size: int
    last_modified: datetime
    is_latest: bool
    delete_marker: bool


class Sequencer:
    """Increasing hex sequencers; seeded from the clock so they keep increasing across runner
    restarts (the database keeps the last sequencer it applied per key)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:018X}"


class NotificationBridge:
    """Polls buckets and delivers S3 event notifications to the subscribed functions."""

    def __init__(
        self,
        client: Any,
        buckets: Iterable[Bucket],
        subscriptions: Iterable[S3Subscription],
        deliver: Callable[[str, dict[str, Any]], Any],
        *,
        interval_seconds: float = 0.3,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._buckets = {bucket.logical_id: bucket for bucket in buckets}
        self._subscriptions = list(subscriptions)
        self._deliver = deliver
        self._interval = interval_seconds
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._sequencer = Sequencer()
        self._seen: dict[str, dict[tuple[str, str], _Version]] = {}
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="s3-notifications", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # keep watching: the next poll may succeed
                if not self._stop.is_set():
                    self._log(f"s3 notifications: poll failed: {type(exc).__name__}: {exc}")
            self._stop.wait(self._interval)

    # ------------------------------------------------------------------ polling
    def sync(self) -> int:
        """Poll every watched bucket once and deliver what changed; returns events sent.
        Callers (tests, the demo) use it to wait until uploads so far are ingested."""
        with self._poll_lock:
            sent = 0
            for bucket in self._buckets.values():
                if any(s.bucket_resource == bucket.logical_id for s in self._subscriptions):
                    sent += self._sync_bucket(bucket)
            return sent

    def _list_versions(self, bucket: Bucket) -> dict[tuple[str, str], _Version]:
        versions: dict[tuple[str, str], _Version] = {}
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket.name):
            for item in page.get("Versions", []):
                version = _Version(
                    key=item["Key"],
                    version_id=str(item.get("VersionId") or "null"),
                    etag=str(item.get("ETag", "")).strip('"'),
                    size=int(item.get("Size", 0)),
                    last_modified=item["LastModified"],
                    is_latest=bool(item.get("IsLatest")),
                    delete_marker=False,
                )
                versions[(version.key, version.version_id)] = version
            for item in page.get("DeleteMarkers", []):
                version = _Version(
                    key=item["Key"],
                    version_id=str(item.get("VersionId") or "null"),
                    etag="",
                    size=0,
                    last_modified=item["LastModified"],
                    is_latest=bool(item.get("IsLatest")),
                    delete_marker=True,
                )
                versions[(version.key, version.version_id)] = version
        return versions

    def _sync_bucket(self, bucket: Bucket) -> int:
        current = self._list_versions(bucket)
        seen = self._seen.setdefault(bucket.logical_id, {})
        changes: list[tuple[str, _Version]] = []
        for ident, version in current.items():
            before = seen.get(ident)
            # Unversioned buckets overwrite version "null" in place: a new ETag/time is new.
            if before is None or (before.etag, before.last_modified) != (
                version.etag,
                version.last_modified,
            ):
                if version.delete_marker:
                    changes.append(("ObjectRemoved:DeleteMarkerCreated", version))
                else:
                    multipart = "-" in version.etag
                    changes.append(
                        ("ObjectCreated:CompleteMultipartUpload", version)
                        if multipart
                        else ("ObjectCreated:Put", version)
                    )
        for ident, version in seen.items():
            if ident not in current and not version.delete_marker:
                changes.append(("ObjectRemoved:Delete", version))
        self._seen[bucket.logical_id] = current
        changes.sort(key=lambda change: (change[1].last_modified, change[0]))
        sent = 0
        for event_name, version in changes:
            sent += self._notify(bucket, event_name, version)
        return sent

    # ------------------------------------------------------------------ events
    def _notify(self, bucket: Bucket, event_name: str, version: _Version) -> int:
        sent = 0
        for subscription in self._subscriptions:
            if subscription.bucket_resource != bucket.logical_id:
                continue
            if not subscription.matches(event_name, version.key):
                continue
            event = build_s3_event(
                bucket,
                event_name,
                version.key,
                sequencer=self._sequencer.next(),
                configuration_id=f"{subscription.function}-{subscription.event_name}",
                size=None if event_name.startswith("ObjectRemoved") else version.size,
                etag=None if event_name.startswith("ObjectRemoved") else version.etag,
                version_id=version.version_id if bucket.versioned else None,
                # A vanished version has no time of its own: it was deleted just now.
                event_time=None if event_name == "ObjectRemoved:Delete" else version.last_modified,
            )
            if subscription.queue_name is not None:
                event = lambda_event(
                    [received_message(json.dumps(event))],
                    queue_arn(subscription.queue_name, LOCAL_REGION, LOCAL_ACCOUNT_ID),
                )
            self._deliver_with_retries(subscription.function, event, version.key, event_name)
            sent += 1
        return sent

    def _deliver_with_retries(
        self, function: str, event: dict[str, Any], key: str, event_name: str
    ) -> None:
        for attempt in itertools.count():
            try:
                answer = self._deliver(function, event)
                if isinstance(answer, dict) and answer.get("batchItemFailures"):
                    raise RuntimeError("its batch answer names the message as failed")
                self.delivered += 1
                return
            except Exception as exc:
                if attempt >= ASYNC_RETRY_ATTEMPTS or self._stop.is_set():
                    self._log(
                        f"s3 notifications: {function} failed on {event_name} {key} after "
                        f"{attempt + 1} attempts ({exc}); the event is dropped (in AWS it ends "
                        "in the dead-letter queue)"
                    )
                    self.failed.append({"function": function, "event": event, "error": str(exc)})
                    return
                self._log(
                    f"s3 notifications: {function} failed on {event_name} {key} ({exc});"
                    " delivering it again"
                )
                time.sleep(RETRY_DELAYS_SECONDS[min(attempt, len(RETRY_DELAYS_SECONDS) - 1)])


def build_s3_event(
    bucket: Bucket,
    event_name: str,
    key: str,
    *,
    sequencer: str,
    configuration_id: str,
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    event_time: datetime | None = None,
    region: str = LOCAL_REGION,
) -> dict[str, Any]:
    """One S3 event notification (structure version 2.1), one record, as S3 sends to Lambda."""
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    s3_object: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        s3_object["size"] = size
    if etag is not None:
        s3_object["eTag"] = etag
    if version_id is not None:
        s3_object["versionId"] = version_id
    s3_object["sequencer"] = sequencer
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:LOCALRUNNER"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": uuid.uuid4().hex,
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": bucket.name,
                        "ownerIdentity": {"principalId": "LOCALRUNNER"},
                        "arn": f"arn:aws:s3:::{bucket.name}",
                    },
                    "object": s3_object,
                },
            }
        ]
    }
