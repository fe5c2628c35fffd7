"""The Titan V2 provider through real boto3/botocore against the loopback fake Bedrock endpoint
(devtools.fake_titan), reached the way production config reaches it: via
AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.fake_titan import CONNECTION_RESET, FakeTitan
from flex_shared import config
from flex_shared.embeddings import (
    EmbeddingInputError,
    EmbeddingUnavailable,
    RetryPolicy,
    TitanEmbedder,
    get_embedder,
    reset_embedder,
)
from flex_shared.errors import DependencyUnavailable, InvalidInput
from flex_shared.rate_limit import AdaptiveRateLimiter

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def fast_rate_limit() -> AdaptiveRateLimiter:
    """A limiter whose slots are a millisecond apart at worst: the tests of retries and
    deadlines do not wait for its pacing (tests/test_rate_limit.py tests that)."""
    return AdaptiveRateLimiter(min_rate=1000.0)


@pytest.fixture(scope="module")
def titan_server() -> Iterator[FakeTitan]:
    with FakeTitan() as server:
        yield server


@pytest.fixture(scope="module")
def bedrock_client(titan_server: FakeTitan) -> Any:
    """One boto3 client for the module, built by the embedder itself from the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", titan_server.endpoint_url)
        return TitanEmbedder().client


@pytest.fixture
def fake(titan_server: FakeTitan) -> Iterator[FakeTitan]:
    titan_server.reset()
    titan_server.latency = 0.0
    titan_server.latency_jitter = 0.0
    titan_server.quota_per_second = None
    yield titan_server
    titan_server.quota_per_second = None
    titan_server.reset()


def make_embedder(client: Any, **kwargs: Any) -> TitanEmbedder:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("max_concurrency", 4)
    kwargs.setdefault("rate_limit", fast_rate_limit())
    return TitanEmbedder(client=client, **kwargs)


def test_request_and_response_have_the_titan_v2_shape(fake: FakeTitan, bedrock_client: Any):
    # given the Titan provider
    embedder = make_embedder(bedrock_client)
    query = "Python 백엔드 개발자 (AWS Lambda)"

    # when a query is embedded
    vector = embedder.embed_query(query)

    # then one InvokeModel call carried the Titan V2 body, signed for Bedrock in the env's region
    (request,) = fake.requests
    assert request.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert request.model_id == "amazon.titan-embed-text-v2:0"
    assert request.body == {"inputText": query, "dimensions": 1024, "normalize": True}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]
    # botocore's own retries are off: only this class retries, because only it knows the deadline
    assert request.headers["amz-sdk-request"] == "attempt=1; max=1"
    # and the answer's `embedding` is returned as is, its token count recorded
    assert vector == fake.expected_embedding(query)
    assert len(vector) == 1024
    assert embedder.usage.input_tokens > 0


def test_client_takes_endpoint_and_region_from_the_environment_with_bounded_timeouts(
    fake: FakeTitan, bedrock_client: Any
):
    assert bedrock_client.meta.endpoint_url == fake.endpoint_url
    assert bedrock_client.meta.region_name == "us-east-1"
    client_config = bedrock_client.meta.config
    assert client_config.retries["total_max_attempts"] == 1
    assert 0 < client_config.connect_timeout <= 5
    assert 0 < client_config.read_timeout <= 30


def test_get_embedder_builds_one_titan_client_per_container(
    fake: FakeTitan, monkeypatch: pytest.MonkeyPatch
):
    # given EMBEDDING_PROVIDER=titan pointing at the fake
    monkeypatch.setenv("EMBEDDING_PROVIDER", "titan")
    monkeypatch.setenv("EMBEDDING_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.endpoint_url)
    config.reset_settings()
    reset_embedder()
    try:
        # when the embedder is asked for twice and used twice
        first = get_embedder()
        first.embed_documents(["one", "two", "three", "four"])
        second = get_embedder()
        second.embed_query("five")

        # then it is the same Titan embedder with one client, configured from settings
        assert second is first
        assert isinstance(first, TitanEmbedder)
        assert first.model_id == "amazon.titan-embed-text-v2:0"
        assert first.dimensions == 1024
        assert first.max_concurrency == 3
        assert first.client is first.client
        assert fake.successes == 5
    finally:
        monkeypatch.undo()
        config.reset_settings()
        reset_embedder()


@pytest.mark.parametrize(
    "failure",
    [
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
        CONNECTION_RESET,
    ],
)
def test_transient_failures_are_retried_then_succeed(
    fake: FakeTitan, bedrock_client: Any, failure: str
):
    # given Bedrock fails twice with a transient error
    fake.fail_next(failure, count=2)
    embedder = make_embedder(bedrock_client)

    # when a text is embedded
    vector = embedder.embed_documents(["Kubernetes 운영 경험"])[0]

    # then the third call's answer is returned
    assert vector == fake.expected_embedding("Kubernetes 운영 경험")
    assert fake.calls == 3
    assert embedder.usage.retries == 2


def test_validation_error_is_not_retried_and_names_the_input(fake: FakeTitan, bedrock_client: Any):
    # given the model rejects one input of ten
    fake.fail_inputs_containing("POISON", "ValidationException", "Malformed input request")
    texts = [f"chunk {i}" for i in range(10)]
    texts[6] = "chunk POISON"
    embedder = make_embedder(bedrock_client)

    # when the batch is embedded
    with pytest.raises(EmbeddingInputError) as raised:
        embedder.embed_documents(texts)

    # then the caller learns which input, as a 4xx-type error, and it was sent exactly once
    assert raised.value.index == 6
    assert "text 6" in str(raised.value)
    assert "Malformed input request" in str(raised.value)
    assert isinstance(raised.value, InvalidInput)
    poisoned = [r for r in fake.requests if "POISON" in r.body["inputText"]]
    assert len(poisoned) == 1


def test_text_over_titans_token_limit_is_an_input_error(fake: FakeTitan, bedrock_client: Any):
    # given a text under 50,000 characters but far over 8,192 tokens (Korean, no spaces)
    texts = ["짧은 문장입니다.", "가" * 20_000]
    embedder = make_embedder(bedrock_client)

    # when embedded, then Titan's ValidationException surfaces as an input error for text 1
    with pytest.raises(EmbeddingInputError) as raised:
        embedder.embed_documents(texts)
    assert raised.value.index == 1
    assert "Too many input tokens" in str(raised.value)


def test_inputs_titan_would_reject_are_refused_without_a_call(fake: FakeTitan, bedrock_client: Any):
    embedder = make_embedder(bedrock_client)
    for texts, index in ((["ok", "   "], 1), (["x" * 50_001], 0)):
        with pytest.raises(EmbeddingInputError) as raised:
            embedder.embed_documents(texts)
        assert raised.value.index == index
    assert fake.calls == 0


def test_results_keep_input_order_under_concurrency(fake: FakeTitan, bedrock_client: Any):
    # given calls that finish in a scrambled order
    fake.latency, fake.latency_jitter = 0.02, 0.018
    texts = [f"job description chunk number {i} about topic {i * 7 % 5}" for i in range(24)]
    embedder = make_embedder(bedrock_client, max_concurrency=4)

    # when they are embedded together
    vectors = embedder.embed_documents(texts)

    # then vector i belongs to text i, with several but never more than 4 calls in flight
    assert vectors == [fake.expected_embedding(text) for text in texts]
    assert 2 <= fake.max_in_flight <= 4


def test_retries_stop_at_the_deadline(fake: FakeTitan, bedrock_client: Any):
    # given Bedrock throttles every call, and a generous attempt budget
    fake.fail_inputs_containing("", "ThrottlingException")
    embedder = make_embedder(
        bedrock_client, retry=RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.1)
    )

    # when texts are embedded with 0.4 s left
    started = time.monotonic()
    with pytest.raises(EmbeddingUnavailable) as raised:
        embedder.embed_documents(["a", "b", "c"], deadline=started + 0.4)
    elapsed = time.monotonic() - started

    # then it gives up by the deadline (plus scheduling slack), as a dependency error
    assert elapsed < 1.5
    assert "deadline" in str(raised.value)
    assert isinstance(raised.value, DependencyUnavailable)
    assert raised.value.dependency == "embedding service"


def test_a_slow_call_does_not_hold_the_caller_past_the_deadline(
    fake: FakeTitan, bedrock_client: Any
):
    # given Bedrock takes 3 s to answer
    fake.latency = 3.0
    embedder = make_embedder(bedrock_client)

    # when a query must be embedded within 0.3 s
    started = time.monotonic()
    with pytest.raises(EmbeddingUnavailable):
        embedder.embed_query("slow", deadline=started + 0.3)

    # then the caller gets the error long before the answer would have come
    assert time.monotonic() - started < 2.0


def test_unavailable_after_retries_are_exhausted(fake: FakeTitan, bedrock_client: Any):
    # given Bedrock is down for longer than the retry budget
    fake.fail_inputs_containing("", "ServiceUnavailableException")
    embedder = make_embedder(bedrock_client, retry=RetryPolicy(max_attempts=3, base_delay=0.01))

    # when a text is embedded with plenty of time
    with pytest.raises(EmbeddingUnavailable) as raised:
        embedder.embed_query("text", deadline=time.monotonic() + 30)

    # then exactly max_attempts calls were made and the error says why
    assert fake.calls == 3
    assert "after 3 attempts" in str(raised.value)
    assert "ServiceUnavailableException" in str(raised.value)


def test_access_denied_is_not_retried(fake: FakeTitan, bedrock_client: Any):
    fake.fail_next("AccessDeniedException")
    embedder = make_embedder(bedrock_client)
    with pytest.raises(EmbeddingUnavailable) as raised:
        embedder.embed_query("text")
    assert fake.calls == 1
    assert "AccessDeniedException" in str(raised.value)


def test_an_empty_batch_makes_no_call(fake: FakeTitan, bedrock_client: Any):
    assert make_embedder(bedrock_client).embed_documents([]) == []
    assert fake.calls == 0


# --- throttling as the normal case ---------------------------------------------------------


def test_throttled_documents_slow_the_shared_rate_and_a_throttle_is_never_a_failure(
    fake: FakeTitan, bedrock_client: Any
):
    # given Bedrock throttles the batch's first three calls (scripted, not a timed quota: how
    # fast this machine sends must not decide whether a throttle happens), and no retry at all
    # for errors other than throttling
    fake.fail_next("ThrottlingException", count=3)
    limiter = AdaptiveRateLimiter()
    embedder = make_embedder(
        bedrock_client, max_concurrency=8, rate_limit=limiter, retry=RetryPolicy(max_attempts=1)
    )
    texts = [f"chunk {i} of a long backlog: Kotlin, Kafka, 쿠버네티스" for i in range(12)]

    # when the documents are embedded
    vectors = embedder.embed_documents(texts, deadline=time.monotonic() + 60)

    # then every text is embedded, and the throttles set the threads' shared rate (cut at
    # least once) instead of failing the batch
    assert vectors == [fake.expected_embedding(text) for text in texts]
    assert fake.stats()["throttles"] == 3
    snapshot = limiter.snapshot()
    assert snapshot.throttles == 3
    assert snapshot.decreases >= 1
    assert snapshot.rate is not None


def test_a_query_is_not_paced_its_throttle_is_retried_after_a_backoff(
    fake: FakeTitan, bedrock_client: Any
):
    # given Bedrock throttles the next two calls
    fake.fail_next("ThrottlingException", count=2)
    limiter = AdaptiveRateLimiter()
    embedder = make_embedder(bedrock_client, rate_limit=limiter)

    # when a search query is embedded
    vector = embedder.embed_query("Kotlin backend")

    # then it is retried and answered; the container's bulk rate limit never heard of it
    assert vector == fake.expected_embedding("Kotlin backend")
    assert fake.calls == 3
    assert limiter.snapshot().rate is None
    assert limiter.snapshot().throttles == 0


def test_an_outage_shorter_than_the_deadline_is_waited_out(fake: FakeTitan, bedrock_client: Any):
    # given Bedrock answers 503 to every call for the next second (long enough that the first
    # attempts fall inside it on a busy machine too)
    fake.start_outage(1.0)
    embedder = make_embedder(
        bedrock_client, retry=RetryPolicy(max_attempts=None, base_delay=0.02, max_delay=0.1)
    )

    # when texts are embedded with ten seconds to spare
    vectors = embedder.embed_documents(
        ["before", "during", "after"], deadline=time.monotonic() + 10
    )

    # then the calls failed during the outage and the texts were embedded after it
    assert vectors == [fake.expected_embedding(t) for t in ("before", "during", "after")]
    assert fake.stats()["outage_failures"] >= 3
    assert fake.stats()["successes"] == 3


def test_a_fake_in_another_process_is_observed_and_steered_over_http(
    fake: FakeTitan, bedrock_client: Any
):
    import json
    import urllib.request

    def control(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            fake.endpoint_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    embedder = make_embedder(bedrock_client, retry=RetryPolicy(max_attempts=1))
    control("POST", "/_fake/outage", {"seconds": 600, "error": "ServiceUnavailableException"})
    with pytest.raises(EmbeddingUnavailable, match="ServiceUnavailableException"):
        embedder.embed_query("down")
    control("POST", "/_fake/outage", {"seconds": 0})
    embedder.embed_query("up again")

    stats = control("GET", "/_fake/stats")
    assert stats["process_cpu_seconds"] > 0
    del stats["process_cpu_seconds"]
    assert stats == {
        "calls": 2,
        "successes": 1,
        "throttles": 0,
        "outage_failures": 1,
        "max_in_flight": 1,
    }
