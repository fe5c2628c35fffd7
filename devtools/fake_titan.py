"""A loopback stand-in for Bedrock's ``InvokeModel`` with Titan Text Embeddings V2.

boto3 reaches it through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (no code change in the layer).
It speaks the real wire format: ``POST /model/{modelId}/invoke`` with the Titan V2 body
``{"inputText", "dimensions", "normalize", "embeddingTypes"}``, answers
``{"embedding", "inputTextTokenCount", "embeddingsByType"}``, and reports errors the way
Bedrock does (status code, ``x-amzn-ErrorType`` header, ``{"message"}`` body), so botocore
raises the same ``ClientError`` codes. Embeddings are the deterministic ``local-hash-v1``
vectors, so search over data embedded through the fake is meaningful.

Knobs: fixed latency (+ jitter), random throttling, a concurrency limit that throttles
excess calls, a quota of calls per second above which calls are throttled (like Bedrock's
on-demand quota), an outage (every call fails for a while), scripted failures for the next
calls, and failures for inputs containing a marker. Use it as a context manager::

    with FakeTitan(latency=0.1) as titan:
        os.environ.update(titan.environ())
        ...

or in its own process with ``serve_in_subprocess(latency=0.1)`` (yields the endpoint URL),
or from a shell: ``python -m devtools.fake_titan --port 8790 --latency 0.1``, which prints
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<url>`` as its first line and serves until SIGINT/SIGTERM.
A fake in another process is observed and steered over HTTP, beside the Bedrock route:
``GET /_fake/stats`` (its counters as JSON) and ``POST /_fake/outage`` with
``{"seconds": 60, "error": "ServiceUnavailableException"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

try:
    from flex_shared import titan
    from flex_shared.chunking import estimate_tokens
    from flex_shared.embeddings import HashEmbedder
except ModuleNotFoundError:  # run from the repo root without the layer on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "shared"))
    from flex_shared import titan
    from flex_shared.chunking import estimate_tokens
    from flex_shared.embeddings import HashEmbedder

CONNECTION_RESET = "connection_reset"
"""Pseudo error: close the connection without answering (botocore: ConnectionClosedError)."""

ERROR_STATUS = {
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "ModelTimeoutException": 408,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "ModelNotReadyException": 429,
    "ModelErrorException": 424,
}
_DEFAULT_MESSAGES = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ModelTimeoutException": "Model has timed out in processing the request.",
    "InternalServerException": "The server encountered an internal error.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
}
_ALLOWED_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}


class _FakeError(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or _DEFAULT_MESSAGES.get(code, code))
        self.code = code
        self.message = message or _DEFAULT_MESSAGES.get(code, code)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it (for tests asserting the wire shape)."""

    method: str
    path: str
    model_id: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0
    successes: int = 0
    throttles: int = 0
    outage_failures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    quota_tokens: float | None = None
    quota_updated: float = 0.0
    outage_until: float | None = None
    outage_error: str = "ServiceUnavailableException"
    requests: list[RecordedRequest] = field(default_factory=list)
    scripted: deque[tuple[str, str | None]] = field(default_factory=deque)
    markers: dict[str, tuple[str, str | None]] = field(default_factory=dict)


class FakeTitan:
    """The fake server. ``start()``/``stop()`` or ``with FakeTitan(...) as titan``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        throttle_rate: float = 0.0,
        max_concurrent: int | None = None,
        quota_per_second: float | None = None,
        seed: int = 0,
        record_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.throttle_rate = throttle_rate
        self.max_concurrent = max_concurrent
        self.quota_per_second = quota_per_second
        """Calls per second let through (a token bucket holding one second of calls, full at
        the start); the others are throttled. Throttled calls use none of it."""
        self.record_requests = record_requests
        self._random = random.Random(seed)  # noqa: S311 -- simulation, not crypto
        self._state = _State()
        self._embedders: dict[int, HashEmbedder] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeTitan:
        if self._server is not None:
            return self
        handler = type("FakeTitanHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTitan:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTitan is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def environ(self) -> dict[str, str]:
        """Environment variables that point boto3's ``bedrock-runtime`` client here."""
        return {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.endpoint_url}

    # -- scripting and observation ------------------------------------------------------------

    def fail_next(self, error: str, count: int = 1, message: str | None = None) -> None:
        """The next ``count`` calls fail with ``error`` (an error code, or CONNECTION_RESET)."""
        _check_error(error)
        with self._state.lock:
            self._state.scripted.extend([(error, message)] * count)

    def fail_inputs_containing(self, marker: str, error: str, message: str | None = None) -> None:
        """Every call whose ``inputText`` contains ``marker`` fails with ``error``."""
        _check_error(error)
        with self._state.lock:
            self._state.markers[marker] = (error, message)

    def start_outage(self, seconds: float, error: str = "ServiceUnavailableException") -> None:
        """From now on, for ``seconds``, every call fails with ``error``."""
        _check_error(error)
        with self._state.lock:
            self._state.outage_until = time.monotonic() + seconds
            self._state.outage_error = error

    def reset(self) -> None:
        """Forget recorded requests, counters and scripted failures."""
        with self._state.lock:
            self._state = _State()

    def stats(self) -> dict[str, float]:
        """The counters, as ``GET /_fake/stats`` answers them, and the CPU time this process
        has used (what answering costs, for the benchmarks)."""
        state = self._state
        with state.lock:
            return {
                "calls": state.calls,
                "successes": state.successes,
                "throttles": state.throttles,
                "outage_failures": state.outage_failures,
                "max_in_flight": state.max_in_flight,
                "process_cpu_seconds": round(time.process_time(), 2),
            }

    @property
    def calls(self) -> int:
        return self._state.calls

    @property
    def successes(self) -> int:
        return self._state.successes

    @property
    def max_in_flight(self) -> int:
        return self._state.max_in_flight

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def expected_embedding(self, text: str, dimensions: int = 1024) -> list[float]:
        """The vector this fake answers for ``text`` (normalised)."""
        return self._embedder(dimensions).embed_query(text)

    # -- request handling (called from the server's threads) -----------------------------------

    def _embedder(self, dimensions: int) -> HashEmbedder:
        embedder = self._embedders.get(dimensions)
        if embedder is None:
            embedder = self._embedders.setdefault(dimensions, HashEmbedder(dimensions))
        return embedder

    def _enter(self, request: RecordedRequest) -> tuple[_State, tuple[str, str | None] | None]:
        """Count the call; return the counters it belongs to (a reset() during a slow call
        must not corrupt the new ones) and a failure decided before the model 'runs', if any."""
        state = self._state
        return state, self._decide(state, request)

    def _decide(self, state: _State, request: RecordedRequest) -> tuple[str, str | None] | None:
        with state.lock:
            state.calls += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            if self.record_requests:
                state.requests.append(request)
            now = time.monotonic()
            if state.outage_until is not None and now < state.outage_until:
                state.outage_failures += 1
                return (state.outage_error, None)
            if state.scripted:
                failure = state.scripted.popleft()
                if failure[0] == "ThrottlingException":
                    state.throttles += 1
                return failure
            text = request.body.get("inputText") if isinstance(request.body, dict) else None
            if isinstance(text, str):
                for marker, failure in state.markers.items():
                    if marker in text:
                        return failure
            if self.max_concurrent is not None and state.in_flight > self.max_concurrent:
                return self._throttled(state)
            if self.throttle_rate and self._random.random() < self.throttle_rate:
                return self._throttled(state)
            if self.quota_per_second is not None and not self._within_quota(state, now):
                return self._throttled(state)
            return None

    @staticmethod
    def _throttled(state: _State) -> tuple[str, str | None]:
        state.throttles += 1
        return ("ThrottlingException", None)

    def _within_quota(self, state: _State, now: float) -> bool:
        """Take one call from the quota's bucket (under the state's lock)."""
        assert self.quota_per_second is not None
        capacity = self.quota_per_second
        if state.quota_tokens is None:
            state.quota_tokens = capacity
        else:
            elapsed = now - state.quota_updated
            state.quota_tokens = min(capacity, state.quota_tokens + elapsed * capacity)
        state.quota_updated = now
        if state.quota_tokens < 1.0:
            return False
        state.quota_tokens -= 1.0
        return True

    @staticmethod
    def _leave(state: _State, success: bool) -> None:
        with state.lock:
            state.in_flight -= 1
            if success:
                state.successes += 1

    def _delay(self) -> float:
        if not self.latency_jitter:
            return self.latency
        with self._state.lock:
            jitter = self._random.uniform(-self.latency_jitter, self.latency_jitter)
        return max(0.0, self.latency + jitter)

    def _answer(self, model_id: str, body: Any) -> tuple[dict[str, Any], int]:
        """The Titan V2 response body and its token count, or raise a ValidationException."""
        if "titan-embed-text-v2" not in model_id:
            raise _FakeError("ValidationException", "The provided model identifier is invalid.")
        if not isinstance(body, dict):
            raise _FakeError("ValidationException", "Malformed input request, please reformat")
        extra = sorted(set(body) - _ALLOWED_KEYS)
        if extra:
            raise _FakeError(
                "ValidationException",
                f"Malformed input request: extraneous key [{extra[0]}] is not permitted",
            )
        text = body.get("inputText")
        if not isinstance(text, str):
            raise _FakeError(
                "ValidationException", "Malformed input request: required key [inputText] not found"
            )
        if not text:
            raise _FakeError(
                "ValidationException", "Malformed input request: expected minLength: 1, actual: 0"
            )
        if len(text) > titan.TITAN_MAX_INPUT_CHARS:
            raise _FakeError(
                "ValidationException",
                f"Malformed input request: expected maxLength: {titan.TITAN_MAX_INPUT_CHARS},"
                f" actual: {len(text)}",
            )
        tokens = max(1, estimate_tokens(text))
        if tokens > titan.TITAN_MAX_INPUT_TOKENS:
            raise _FakeError(
                "ValidationException",
                "400 Bad Request: Too many input tokens. Max input tokens:"
                f" {titan.TITAN_MAX_INPUT_TOKENS}, request input token count: {tokens}",
            )
        dimensions = body.get("dimensions", 1024)
        if dimensions not in titan.TITAN_V2_DIMENSIONS or isinstance(dimensions, bool):
            raise _FakeError(
                "ValidationException",
                f"Malformed input request: #/dimensions: {dimensions} is not a valid enum value",
            )
        normalize = body.get("normalize", True)
        if not isinstance(normalize, bool):
            raise _FakeError(
                "ValidationException",
                "Malformed input request: #/normalize: expected type: Boolean",
            )
        types = body.get("embeddingTypes", ["float"])
        if not isinstance(types, list) or not types or set(types) - {"float", "binary"}:
            raise _FakeError(
                "ValidationException",
                "Malformed input request: #/embeddingTypes: expected [float, binary]",
            )
        vector = self._embedder(dimensions).embed_query(text)
        if not normalize:  # Titan's raw vectors are not unit length; any fixed scale will do
            vector = [value * 8.0 for value in vector]
        by_type: dict[str, Any] = {}
        if "float" in types:
            by_type["float"] = vector
        if "binary" in types:
            by_type["binary"] = [1 if value > 0 else 0 for value in vector]
        return (
            {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": by_type},
            tokens,
        )


def _check_error(error: str) -> None:
    if error != CONNECTION_RESET and error not in ERROR_STATUS:
        raise ValueError(f"unknown error {error!r}; use one of {sorted(ERROR_STATUS)}")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTitan
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoint
    # Headers and body go out in separate writes; with Nagle's algorithm the client's delayed
    # ACK would add ~40 ms to every call.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections go away eventually

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0] == "/_fake/outage":
            self._control_outage(raw)
            return
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] != "invoke":
            self._send_error("UnknownOperationException", 404, f"no route for {self.path}")
            return
        model_id = unquote(parts[2])
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            "POST", self.path, model_id, {k.lower(): v for k, v in self.headers.items()}, body
        )
        state, failure = self.fake._enter(request)
        success = False
        try:
            if failure is not None:
                code, message = failure
                if code == CONNECTION_RESET:
                    self._reset_connection()
                    return
                if code == "ModelTimeoutException":
                    time.sleep(self.fake._delay())
                raise _FakeError(code, message)
            started = time.monotonic()
            answer, tokens = self.fake._answer(model_id, body)
            time.sleep(max(0.0, self.fake._delay() - (time.monotonic() - started)))
            success = True
            self._send_json(
                200,
                answer,
                {
                    "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
                    "X-Amzn-Bedrock-Invocation-Latency": str(
                        int((time.monotonic() - started) * 1000)
                    ),
                },
            )
        except _FakeError as error:
            self._send_error(error.code, ERROR_STATUS.get(error.code, 400), error.message)
        finally:
            self.fake._leave(state, success)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/_fake/stats":
            self._send_json(200, self.fake.stats(), {})
            return
        self._send_error("UnknownOperationException", 404, f"no route for GET {self.path}")

    def _control_outage(self, raw: bytes) -> None:
        try:
            order = json.loads(raw)
            seconds = float(order["seconds"])
            self.fake.start_outage(seconds, str(order.get("error", "ServiceUnavailableException")))
        except (ValueError, KeyError, TypeError) as error:
            self._send_error("ValidationException", 400, f"bad outage order: {error}")
            return
        self._send_json(200, {"outage_seconds": seconds}, {})

    def _send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, code: str, status: int, message: str) -> None:
        self._send_json(
            status,
            {"message": message},
            {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        )

    def _reset_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def serve_in_subprocess(
    *,
    latency: float = 0.0,
    jitter: float = 0.0,
    throttle_rate: float = 0.0,
    max_concurrent: int | None = None,
    quota_per_second: float | None = None,
    seed: int = 0,
) -> Iterator[str]:
    """Run the fake in its own process (as Bedrock is: its CPU and GIL are not the caller's)
    on a free loopback port; yield its endpoint URL; stop it on exit."""
    command = [sys.executable, "-m", "devtools.fake_titan", "--latency", str(latency)]
    command += ["--jitter", str(jitter), "--throttle-rate", str(throttle_rate), "--seed", str(seed)]
    if max_concurrent is not None:
        command += ["--max-concurrent", str(max_concurrent)]
    if quota_per_second is not None:
        command += ["--quota", str(quota_per_second)]
    process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        command, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        name, _, endpoint = line.partition("=")
        if name != "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" or not endpoint:
            raise RuntimeError(f"fake Titan did not start: {line!r}")
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_titan",
        description="Serve a fake Bedrock Titan V2 embeddings endpoint on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--jitter", type=float, default=0.0, help="+/- seconds of latency")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="0..1 share throttled")
    parser.add_argument("--max-concurrent", type=int, default=None, help="throttle beyond this")
    parser.add_argument(
        "--quota", type=float, default=None, help="calls per second let through; more throttled"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    fake = FakeTitan(
        host=args.host,
        port=args.port,
        latency=args.latency,
        latency_jitter=args.jitter,
        throttle_rate=args.throttle_rate,
        max_concurrent=args.max_concurrent,
        quota_per_second=args.quota,
        seed=args.seed,
        record_requests=False,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with fake:
        print(f"AWS_ENDPOINT_URL_BEDROCK_RUNTIME={fake.endpoint_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
