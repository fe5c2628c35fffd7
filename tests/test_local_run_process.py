"""`python -m devtools.local run` (what `make run` starts) comes up from nothing, answers a
search over HTTP, and Ctrl-C stops everything it started: no process, no port left."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.conftest import REPO_ROOT


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_run_serves_a_search_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    # Given the runner started the way `make run` starts it, on an empty data directory
    data_dir = tmp_path / "pgdata"
    stderr_log = (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.local", "run", "--port", "0", "--data-dir", str(data_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr_log,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Try:"):
                ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        assert ready.wait(120), "runner did not come up:\n" + (tmp_path / "stderr.log").read_text()
        output = "".join(lines)
        api_port = int(re.search(r"API\s+http://127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
        s3_port = int(re.search(r"S3\s+http://127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
        assert "curl -s -X POST" in output

        # When a search is sent over HTTP
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/search",
            data=json.dumps({"query": "backend engineer Python", "top_k": 2}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, json.loads(response.read())

        # Then the samples ingested at start-up answer it
        assert status == 200
        assert len(body["results"]) == 2

        postmaster_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(postmaster_pid)
        postgres_family = [postmaster, *postmaster.children(recursive=True)]
        runner_family = psutil.Process(process.pid).children(recursive=True)
        assert (data_dir.parent / "runner.json").is_file()

        # When Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr_log.close()

    # Then the database server, its workers, the API and S3 ports are all gone; data is kept
    _gone, alive = psutil.wait_procs([*postgres_family, *runner_family], timeout=15)
    assert alive == [], f"left behind: {alive}"
    assert not port_is_open(api_port)
    assert not port_is_open(s3_port)
    assert not (data_dir.parent / "runner.json").exists()
    assert (data_dir / "PG_VERSION").is_file()  # kept for the next run
    deadline = time.monotonic() + 5
    while (data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (data_dir / "postmaster.pid").exists()
