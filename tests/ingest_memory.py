"""Peak memory of a fresh process ingesting an S3 event through the real handler.

The child runs as deployed: the uploads sit in moto's S3 server and embeddings come from the
loopback Titan stand-in (both served by the caller's process), the handler writes to a real
database, and each measurement is a new interpreter (``ingest_memory_child.py``), so nothing a
previous document allocated counts against the next one. Used by the hostile-upload tests and
by ``bench/bench_ingest_memory.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("ingest_memory_child.py")
RESULT_PREFIX = "INGEST_MEMORY_RESULT "
GOOD_KEY = "jobs/7/backend-engineer.md"
GOOD_DOCUMENT = (
    b"# Backend Engineer\n\n"
    b"We build the search platform of an interview service in Python and PostgreSQL.\n\n"
    b"Requirements: three years of Python, SQL, and AWS Lambda."
)


@dataclass(frozen=True)
class FreshIngestion:
    """What one fresh process did with one event."""

    import_peak_mib: float
    peak_mib: float
    seconds: float
    outcomes: list[str] | None  # None when the invocation raised
    raised: str | None = None
    rejections: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def reason_for(self, key: str) -> str | None:
        return next((r["reason"] for r in self.rejections if r["key"] == key), None)


class MotoS3Bucket:
    """A bucket on moto's S3 server; records S3 events for the objects put into it."""

    def __init__(self, endpoint: str, bucket: str = "flex-memory-jobs") -> None:
        from devtools.local.s3 import s3_client

        self.endpoint = endpoint
        self.bucket = bucket
        self.client = s3_client(endpoint, region="us-east-1")
        self.client.create_bucket(Bucket=bucket)
        self._sequence = 0x0067D3F5AD8A1C0000

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        """Upload ``body`` and return the ``ObjectCreated:Put`` record S3 would send for it."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self._sequence += 0x100
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "responseElements": {"x-amz-request-id": f"REQ{self._sequence:X}"},
            "s3": {
                "bucket": {"name": self.bucket},
                "object": {
                    "key": quote_plus(key, safe="/"),
                    "size": len(body),
                    "sequencer": f"{self._sequence:018X}",
                },
            },
        }


@dataclass(frozen=True)
class LocalServices:
    bucket: MotoS3Bucket
    titan_endpoint: str

    def child_environment(self, database_url: str) -> dict[str, str]:
        """What the deployed function's environment holds, pointed at these services."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": "C.UTF-8",
            "DATABASE_URL": database_url,
            "EMBEDDING_PROVIDER": "titan",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.titan_endpoint,
            "AWS_ENDPOINT_URL_S3": self.bucket.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "flex-memory",
            "POWERTOOLS_METRICS_NAMESPACE": "FlexMemory",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }


@contextmanager
def local_services() -> Iterator[LocalServices]:
    """moto's S3 server (with one bucket) and the Titan stand-in on free loopback ports,
    stopped afterwards."""
    import logging

    from devtools.fake_titan import FakeTitan
    from devtools.local.s3 import MotoS3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = MotoS3()
    endpoint = server.start()
    try:
        with FakeTitan(record_requests=False) as titan:
            yield LocalServices(MotoS3Bucket(endpoint), titan.endpoint_url)
    finally:
        server.stop()


def ingest_in_fresh_process(
    records: Sequence[Mapping[str, Any]],
    environment: Mapping[str, str],
    *,
    code_root: Path = REPO_ROOT,
    timeout_seconds: float = 900,
) -> FreshIngestion:
    """Deliver one S3 event holding ``records`` to the handler of ``code_root`` in a new
    interpreter; return what it did and its peak resident memory."""
    with tempfile.TemporaryDirectory(prefix="flex-ingest-memory-") as scratch:
        event_file = Path(scratch) / "event.json"
        event_file.write_text(json.dumps({"Records": list(records)}), encoding="utf-8")
        completed = subprocess.run(
            [sys.executable, str(CHILD), str(code_root), str(event_file)],
            env=dict(environment),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or len(lines) != 1:
        raise RuntimeError(
            f"the ingestion process exited with {completed.returncode}:\n"
            f"{completed.stderr[-3000:]}\n{completed.stdout[-2000:]}"
        )
    result = json.loads(lines[0].removeprefix(RESULT_PREFIX))
    return FreshIngestion(
        import_peak_mib=result["import_peak_mib"],
        peak_mib=result["peak_mib"],
        seconds=result["seconds"],
        outcomes=result.get("outcomes"),
        raised=result.get("raised"),
        rejections=result["rejections"],
        failures=result["failures"],
    )
