"""One S3 event through the real ingestion handler, in a fresh process, measuring peak memory.

Run by ``tests/ingest_memory.py`` as ``python tests/ingest_memory_child.py CODE_ROOT EVENT_FILE``
with the environment of a deployed function (``DATABASE_URL``, ``AWS_ENDPOINT_URL_S3``, ...).
Run as a script, not with ``-m``: the function sees what Lambda gives it, its own directory and
then the layer (``CODE_ROOT/layers/shared``), ahead of the virtualenv's packages. ``CODE_ROOT``
may be another checkout (before/after comparisons).

Prints one line ``INGEST_MEMORY_RESULT {json}``: the handler's ``outcomes`` (or ``raised``, the
exception that would make Lambda retry), the ``rejections`` it logged (key, reason, detail),
``import_peak_mib`` (after importing the function), ``peak_mib`` (after the invocation) and
``seconds`` (the invocation alone).
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "INGEST_MEMORY_RESULT "


class _Context:
    function_name = "flex-ingest-job"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:flex-ingest-job"
    memory_limit_in_mb = 1024
    aws_request_id = "memory-measurement"
    log_group_name = "/aws/lambda/flex-ingest-job"
    log_stream_name = "memory"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000  # the deployed function's timeout


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``). Not ``getrusage().ru_maxrss``: Linux carries
    that over from the parent across fork + exec, so a child of a big test process would report
    at least its parent's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _load_handler(code_root: Path) -> Any:
    function_dir = code_root / "functions" / "ingest_job"
    sys.path[:0] = [str(function_dir), str(code_root / "layers" / "shared")]
    spec = importlib.util.spec_from_file_location("ingest_job_app", function_dir / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    code_root, event_file = Path(sys.argv[1]), Path(sys.argv[2])
    event = json.loads(event_file.read_text(encoding="utf-8"))
    app = _load_handler(code_root)
    log = io.StringIO()
    handler_module = sys.modules[app.lambda_handler.__module__]  # where its Logger lives
    handler_module.logger.registered_handler.setStream(log)
    result: dict[str, Any] = {"import_peak_mib": round(peak_rss_mib(), 1)}
    started = time.perf_counter()
    try:
        result["outcomes"] = app.lambda_handler(event, _Context())["outcomes"]
    except Exception as exc:  # the invocation raising is a result here (Lambda would retry)
        result["raised"] = f"{type(exc).__name__}: {exc}"[:500]
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["peak_mib"] = round(peak_rss_mib(), 1)
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    result["rejections"] = [
        {"key": line.get("key"), "reason": line.get("reason"), "detail": line.get("detail")}
        for line in lines
        if line.get("message") == "object rejected"
    ]
    result["failures"] = [
        {"key": line.get("key"), "exception": str(line.get("exception", ""))[-500:]}
        for line in lines
        if str(line.get("message", "")).startswith("record failed")
    ]
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
