"""Reading the uploaded object from S3 (one client per container, created on first use)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from flex_ingest.rejections import too_large

_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})

_client: Any = None
_client_lock = threading.Lock()


class ObjectGone(Exception):
    """The object (or that version of it) no longer exists; a later event says why."""


@dataclass(frozen=True)
class FetchedObject:
    body: bytes
    user_metadata: dict[str, str]
    version_id: str | None


def s3_client() -> Any:
    """The container's S3 client. Region and endpoint come from the SDK's own variables
    (``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``); standard retries cover S3's 5xx and SlowDown."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = boto3.client(
                    "s3",
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 4},
                        connect_timeout=5,
                        read_timeout=30,
                    ),
                )
    return _client


def reset_s3_client() -> None:
    """Forget the client (tests start a fresh S3 mock per test)."""
    global _client
    with _client_lock:
        _client = None


def fetch_object(bucket: str, key: str, version_id: str | None, max_bytes: int) -> FetchedObject:
    """Download the object, refusing (before reading the body) one larger than ``max_bytes``.

    Raises ``ObjectGone`` when it was deleted meanwhile, ``RejectedObject`` when too large;
    other S3 errors propagate so that Lambda retries.
    """
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None and version_id != "null":
        request["VersionId"] = version_id  # read exactly the version the event is about
    try:
        response = s3_client().get_object(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _GONE_CODES:
            raise ObjectGone(f"s3://{bucket}/{key} no longer exists") from None
        raise
    stream = response["Body"]
    try:
        length = int(response.get("ContentLength") or 0)
        if length > max_bytes:
            raise too_large(length, max_bytes)
        body: bytes = stream.read(max_bytes + 1)
    finally:
        stream.close()
    if len(body) > max_bytes:  # a wrong Content-Length must not make us read without bound
        raise too_large(len(body), max_bytes)
    return FetchedObject(
        body=body,
        user_metadata={str(k): str(v) for k, v in (response.get("Metadata") or {}).items()},
        version_id=response.get("VersionId"),
    )
