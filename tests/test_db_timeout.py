"""A stalled database answers 503 quickly instead of running into the Lambda's timeout."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured
from devtools.local.s3 import build_s3_event
from devtools.local.template import Bucket
from tests.test_search_support import call, rest_event


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP listener that accepts connections and never says a word (a stalled proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_stalled_database_is_a_503_within_the_socket_timeout(
    load_function: Callable[[str], ModuleType],
    silent_server: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an API function whose database never answers, with DB_SOCKET_TIMEOUT=1
    monkeypatch.setenv("DB_SOCKET_TIMEOUT", "1")
    app = load_function("search")
    with layer_configured(f"postgresql://flex:secret@127.0.0.1:{silent_server}/flex"):
        # When a request needs the database
        started = time.monotonic()
        status, body = call(app, rest_event("GET", "/jobs/1"))
        elapsed = time.monotonic() - started

    # Then it answers 503 naming the database, in about the timeout, not the Lambda's 20 s
    assert status == 503
    assert body["error"]["code"] == "database_unavailable"
    assert elapsed < 5


def test_a_stalled_database_fails_an_ingestion_record_within_the_socket_timeout_naming_it(
    load_function: Callable[[str], ModuleType],
    silent_server: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given ingestion whose database never answers, with a socket timeout (template: 60 s)
    monkeypatch.setenv("DB_SOCKET_TIMEOUT", "1")
    app = load_function("ingest_job")
    handler_module = sys.modules["flex_ingest.handler"]
    log = io.StringIO()
    previous = handler_module.logger.registered_handler.setStream(log)
    key = "jobs/5/platform engineer.txt"
    event = build_s3_event(
        Bucket("JobsBucket", "flex-dev-jobs", versioned=False),
        "ObjectCreated:Put",
        key,
        sequencer="0067D3F5AD8A1C0100",
        configuration_id="ingest",
    )
    try:
        with layer_configured(f"postgresql://flex:secret@127.0.0.1:{silent_server}/flex"):
            # When an upload's event arrives
            started = time.monotonic()
            with pytest.raises(handler_module.IngestionFailed):
                app.lambda_handler(event, FakeLambdaContext(remaining_ms=300_000))
            elapsed = time.monotonic() - started
    finally:
        handler_module.logger.registered_handler.setStream(previous)

    # Then the invocation fails (Lambda retries it) in about the timeout, not the Lambda's
    # 300 s, with a log line naming the record
    assert elapsed < 5
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    [failed] = [line for line in lines if line.get("message") == "record failed"]
    assert failed["key"] == key
    assert failed["exception_name"] == "OperationalError"  # the database, timed out
    assert "TimeoutError" in failed["exception"]
