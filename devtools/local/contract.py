"""The API contract checked from outside: schemathesis runs ``openapi.json`` against the local
API (the template's routes, the real handlers, an embedded PostgreSQL with the sample jobs
ingested), as a generated client would call it. Everything runs on temporary directories and
free ports and is stopped on the way out; schemathesis's exit status is the answer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from .system import LocalOptions, LocalSystem


def run_contract(
    schemathesis: Path,
    document: Path,
    arguments: Sequence[str],
    options: LocalOptions,
    log: Callable[[str], None],
    api_log: TextIO,
) -> int:
    """Start the local system, run ``schemathesis run document --url <local API> arguments``
    against it, stop everything; schemathesis's exit status. The API's one line per request
    and the functions' warnings go to ``api_log`` (thousands of requests)."""
    if not schemathesis.is_file():
        log(f"error: {schemathesis} not found (make contract installs it)")
        return 2

    def api_line(message: str) -> None:
        print(message, file=api_log, flush=True)

    log("contract: starting the local system (embedded PostgreSQL, S3, samples, API)")
    with LocalSystem(options, log=api_line) as system:
        assert system.api is not None
        command = [str(schemathesis), "run", str(document), "--url", system.api.url, *arguments]
        log("contract: " + " ".join(command[1:]))
        sys.stdout.flush()
        return subprocess.run(command, check=False).returncode  # noqa: S603 (our own tool)
