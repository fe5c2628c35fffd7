"""One cold start: ``python -S -P bench/coldstart_child.py TARGET EVENT_FILE DIR...``.

Puts DIR... first on ``sys.path`` (as Lambda puts /var/task, then /opt/python, then the runtime's
boto3), imports ``app`` and handles the event once, like the Lambda runtime with
``Handler: app.lambda_handler``. TARGET ``baseline`` imports boto3 and makes one S3 ListBuckets
call instead. Exits non-zero when the invocation did not do its job. Run as a script with
``-S -P``: nothing of the checkout or the virtualenv is importable by accident.

Writes ``COLDSTART_BEGIN`` to stderr first (a ``-X importtime`` trace is cut there: what comes
before is the interpreter's own start-up) and ``peak_rss_kib N`` last.
"""

import importlib
import json
import os
import sys
from typing import Any


def invoke(target: str, event_file: str) -> None:
    if target == "baseline":
        import boto3

        boto3.client("s3").list_buckets()
        return
    os.environ["POWERTOOLS_SERVICE_NAME"] = target
    # The function's own app.py, found first on sys.path as on Lambda (typed loosely: which
    # function's it is depends on the argument).
    app: Any = importlib.import_module("app")

    context = _fake_context(target)  # after the import: what it imports is not the function's
    with open(event_file, encoding="utf-8") as file:
        response = app.lambda_handler(json.load(file), context)
    if "statusCode" in response:  # API functions
        if not 200 <= int(response["statusCode"]) < 300:
            sys.exit(f"{target} answered {response['statusCode']}: {response.get('body')}")
    elif target == "ingest_job" and set(response.get("outcomes") or ()) != {"written"}:
        sys.exit(f"ingest_job did not write the job: {response}")
    elif target == "migrate" and not response.get("current"):
        sys.exit(f"migrate reported no revision: {response}")


def _fake_context(function_name: str) -> object:
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "devtools", "lambda_context.py")
    spec = importlib.util.spec_from_file_location("lambda_context", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules["lambda_context"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeLambdaContext(function_name=function_name, remaining_ms=60_000)


def peak_rss_kib() -> int:
    """VmHWM, not ``ru_maxrss``: Linux carries that over from the parent across fork + exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


if __name__ == "__main__":
    print("COLDSTART_BEGIN", file=sys.stderr, flush=True)
    target, event_file, *directories = sys.argv[1:]
    sys.path[:0] = directories
    invoke(target, event_file)
    print(f"peak_rss_kib {peak_rss_kib()}", file=sys.stderr)
