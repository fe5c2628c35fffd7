"""Failure injection: what production does to the functions, each case through the real code on
the real database, with the status a caller sees and nothing written twice or half."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from flex_shared import db
from tests.conftest import REPO_ROOT


def _young_clock_command() -> list[str]:
    """``unshare --time`` with the monotonic clock moved back to about zero: a host that booted
    a moment ago, as a new Lambda microVM or CI machine has. Unprivileged users get the time
    namespace inside a user namespace of their own."""
    age = max(0, int(time.monotonic()) - 1)
    command = ["unshare", "--time", f"--monotonic=-{age}"]
    if os.geteuid() != 0:
        command.insert(1, "--map-root-user")
    return command


def test_secret_mode_on_a_freshly_booted_host_reads_the_secret_and_connects(
    database_url: str,
) -> None:
    # Given a host whose monotonic clock is younger than the secret's cache lifetime, and
    # database credentials in Secrets Manager
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "shared"), str(REPO_ROOT)]),
    }

    # When a function creates its engine there and runs a query
    completed = subprocess.run(
        [
            *_young_clock_command(),
            sys.executable,
            "-m",
            "tests.secret_on_young_clock",
            database_url,
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the secret was read on first use and the query ran as the secret's user, in its
    # database, although the clock said the host was only seconds old
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["monotonic_at_creation"] < db._SECRET_TTL_SECONDS
    url, _ = db.parse_database_url(database_url)
    assert (answer["user"], answer["database"]) == (url.username, url.database)
