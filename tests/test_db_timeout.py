"""A stalled database answers 503 quickly instead of running into the Lambda's timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from devtools.layer_env import layer_configured
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
