"""The one stand-in for the ``context`` the Lambda runtime hands a handler: tests, benchmarks
and the local runner (which sets ``deadline`` from the function's timeout)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class FakeLambdaContext:
    function_name: str = "flex"
    remaining_ms: int = 30_000
    """What ``get_remaining_time_in_millis`` answers, fixed (tests stay deterministic)..."""
    deadline: float | None = None
    """...unless this ``time.monotonic()`` deadline is set: then the time left counts down."""
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"2026/11/24/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline is None:
            return self.remaining_ms
        return max(0, int((self.deadline - time.monotonic()) * 1000))
