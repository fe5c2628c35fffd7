"""One cold start, in a fresh process: import a function's app.py and invoke it once.

Run by bench/bench_coldstart.py as ``python bench/coldstart_child.py FUNCTION EVENT_FILE``
(or ``baseline``: import boto3 and make one S3 ListBuckets call). Run as a script, not with
``-m``, so that neither the repository root nor the ``bench`` package is on ``sys.path``: the
function sees what Lambda gives it (its own directory, then the layer). Timing starts before
the first import the function itself causes, so the interpreter's own start-up (the same for
every target) is excluded.

Prints one line ``COLDSTART_RESULT {json}`` on stdout (the handler's own logs go there too):
``import_s``, ``invoke_s``, ``total_s``, ``status`` (or the direct invocation's ``response``)
and ``peak_rss_mib`` (the process's peak resident set). Writes ``COLDSTART_BEGIN`` to stderr
first, so that a ``-X importtime`` trace can be cut to what the target imported.
"""

from __future__ import annotations

import time

_started = time.perf_counter()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# COLDSTART_REPO_ROOT: measure the functions of another checkout (before/after comparisons).
REPO_ROOT = Path(os.environ.get("COLDSTART_REPO_ROOT") or Path(__file__).resolve().parents[1])
RESULT_PREFIX = "COLDSTART_RESULT "
BEGIN_MARKER = "COLDSTART_BEGIN"


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _extra_path() -> list[str]:
    """``COLDSTART_PATH``: a Lambda-like sys.path after the function's directory (the layer,
    the runtime's boto3), used with ``python -S``; unset, the virtualenv's site-packages."""
    raw = os.environ.get("COLDSTART_PATH", "")
    return [entry for entry in raw.split(os.pathsep) if entry]


def _baseline() -> dict[str, Any]:
    sys.path[:0] = _extra_path()
    import boto3

    imported = time.perf_counter()
    boto3.client("s3").list_buckets()
    return {"import_s": imported - _started, "invoke_s": time.perf_counter() - imported}


def _function(name: str, event_file: str) -> dict[str, Any]:
    function_dir = REPO_ROOT / "functions" / name
    # Lambda: the function's directory first, then the layer (/opt/python).
    sys.path[:0] = [str(function_dir), *(_extra_path() or [str(REPO_ROOT / "layers" / "shared")])]
    spec = importlib.util.spec_from_file_location(f"{name}_app", function_dir / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter()
    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    response = module.lambda_handler(event, _Context())
    invoked = time.perf_counter()
    result: dict[str, Any] = {"import_s": imported - _started, "invoke_s": invoked - imported}
    if isinstance(response, dict) and "statusCode" in response:
        result["status"] = response["statusCode"]
    else:  # direct invocations (S3 events, migrations) answer a small summary
        result["response"] = response
    return result


def _peak_rss_kib() -> int:
    """This process's peak resident set. Not ``ru_maxrss``: Linux carries it over from the
    parent across fork + exec, so every child would report at least the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main() -> None:
    print(BEGIN_MARKER, file=sys.stderr, flush=True)
    target = sys.argv[1]
    result = _baseline() if target == "baseline" else _function(target, sys.argv[2])
    result["total_s"] = result["import_s"] + result["invoke_s"]
    result["peak_rss_mib"] = _peak_rss_kib() / 1024
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
