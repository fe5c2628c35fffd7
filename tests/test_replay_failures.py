"""The operator's replay of the failure queue (devtools/replay_failures.py, `make
replay-failures`): moto SQS holds the failed notifications, the real ingest handler applies
them to the embedded database; in order, exactly once, and it says what it did."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest

from devtools import replay_failures
from devtools.lambda_context import FakeLambdaContext
from devtools.replay_failures import HandlerInvoker, LambdaInvoker, ReplayFailed
from tests import test_ingest_job
from tests.test_ingest_job import CountingEmbedder, Ingest, sibling

# The fixtures of the ingestion tests, shared (their moto mock serves SQS too).
ingest = test_ingest_job.ingest

QUEUE = "flex-dev-ingest-failures"


def failure_queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs, sqs.create_queue(QueueName=QUEUE)["QueueUrl"]


def notification(*records: dict[str, Any]) -> str:
    """The body of a dead-letter message: the S3 notification as S3 sent it to the queue."""
    return json.dumps({"Records": list(records)})


def destination_record(*records: dict[str, Any]) -> str:
    """The body an asynchronous invocation's on-failure destination gets."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4b7e-a0d2-0b8c8a1e4f0a",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:flex-dev-ingest-job",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": {"Records": list(records)},
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": "1 of 1 records failed", "errorType": "X"},
        }
    )


def handler_of(ingest: Ingest) -> HandlerInvoker:
    return HandlerInvoker(
        ingest.app.lambda_handler,
        lambda: FakeLambdaContext(function_name="flex-dev-ingest-job", remaining_ms=60_000),
    )


def queued(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_replay_applies_each_failure_once_oldest_first_and_says_what_it_did(
    ingest: Ingest,
) -> None:
    # given a dead-letter queue holding: a key's newer upload before its older one, a
    # duplicate of the newer one, an on-failure destination record, a removal of a key that
    # was never ingested, an S3 test event, and one upload already applied since it failed
    sqs, url = failure_queue()
    older = ingest.put("jobs/1/backend.txt", "Backend engineer\n\nPython.")
    newer = ingest.put("jobs/1/backend.txt", "Backend engineer\n\nPython and Kotlin.")
    landed = ingest.put("jobs/2/landed.txt", "Landed\n\nAlready in.")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/2/landed.txt", landed))
    ingest.put("jobs/3/data.txt", "데이터 엔지니어\n\nSpark.")
    bodies = [
        notification(ingest.record("ObjectCreated:Put", "jobs/1/backend.txt", newer)),
        notification(ingest.record("ObjectCreated:Put", "jobs/1/backend.txt", older)),
        notification(ingest.record("ObjectCreated:Put", "jobs/1/backend.txt", newer)),
        destination_record(
            ingest.record("ObjectCreated:Put", "jobs/3/data.txt", ingest.next_sequencer())
        ),
        notification(
            ingest.record("ObjectRemoved:Delete", "jobs/4/never.txt", ingest.next_sequencer())
        ),
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}),
        notification(ingest.record("ObjectCreated:Put", "jobs/2/landed.txt", landed)),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)

    # when the operator replays the queue
    out = io.StringIO()
    report = replay_failures.run(sqs, url, handler_of(ingest), out=out)

    # then the older upload landed, then the newer one over it; the duplicate and the one
    # applied meanwhile were skipped; the queue is empty
    printed = out.getvalue()
    assert report.replayed == 3
    assert report.already_applied == 2
    assert dict(report.nothing_to_apply) == {"nothing_to_remove": 1}
    assert (report.failed, report.unreadable, report.test_events) == (0, 0, 1)
    assert report.messages_deleted == 7
    assert "replayed 3, skipped 2 as already applied, 1 with nothing to apply" in printed
    backend = [line for line in printed.splitlines() if "jobs/1/backend.txt" in line]
    # (the bucket keeps one version: the older event already read the newer text, so the
    # newer event finds its chunks in place)
    assert [line.split()[0] for line in backend] == ["written", "kept_chunks", "stale"]
    assert [line.split()[-1] for line in backend] == [older, newer, newer]
    job = ingest.job("jobs/1/backend.txt")
    assert job is not None
    assert job.description == "Backend engineer\n\nPython and Kotlin."
    assert job.source_sequencer == newer
    assert ingest.job("jobs/3/data.txt") is not None
    assert ingest.job_count() == 3
    assert queued(sqs, url) == 0

    # when it is run again, nothing is left to replay
    again = replay_failures.run(sqs, url, handler_of(ingest), out=io.StringIO())
    assert (again.replayed, again.already_applied, again.messages_deleted) == (0, 0, 0)


def test_what_fails_again_stays_in_the_queue_visible_and_the_run_says_so(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two failed uploads, one of which still cannot be embedded, and a garbled message
    service = sibling("flex_ingest.service")
    embedder = CountingEmbedder(fail_when=lambda text: "Still down" in text)
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    sqs, url = failure_queue()
    for key, body in (("jobs/5/a.txt", "Fine\n\nNow."), ("jobs/5/b.txt", "Still down\n\nNo.")):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=notification(
                ingest.record("ObjectCreated:Put", key, ingest.put(key, body))
            ),
        )
    sqs.send_message(QueueUrl=url, MessageBody="{not json")

    out = io.StringIO()
    report = replay_failures.run(sqs, url, handler_of(ingest), out=out)

    assert (report.replayed, report.failed, report.unreadable) == (1, 1, 1)
    assert not report.ok
    assert ingest.job("jobs/5/a.txt") is not None
    assert ingest.job("jobs/5/b.txt") is None
    # the two that did not land are visible again at once, for the next run
    left = [
        m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert len(left) == 2
    assert "{not json" in left
    assert any("jobs/5/b.txt" in body for body in left)
    assert "1 failed again (left in the queue)" in out.getvalue()


def test_a_dry_run_lists_in_order_and_changes_nothing(ingest: Ingest) -> None:
    sqs, url = failure_queue()
    first = ingest.put("jobs/6/a.txt", "A\n\nOne.")
    second = ingest.put("jobs/6/a.txt", "A\n\nTwo.")
    for sequencer in (second, first):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=notification(ingest.record("ObjectCreated:Put", "jobs/6/a.txt", sequencer)),
        )

    out = io.StringIO()
    replay_failures.run(sqs, url, handler_of(ingest), dry_run=True, out=out)

    planned = [line for line in out.getvalue().splitlines() if "would replay" in line]
    assert [line.split()[-1] for line in planned] == [first, second]
    assert ingest.job_count() == 0
    assert queued(sqs, url) == 2


def test_sequencers_of_different_lengths_are_ordered_as_the_function_orders_them() -> None:
    def message(sequencer: str) -> replay_failures.Message:
        record = {"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "sequencer": sequencer}}}
        return replay_failures.Message(sequencer, sequencer, [record])

    # right-padded with zeros: "0A" is 0A000 > 00FFF
    ordered = replay_failures.replay_order([message("0A"), message("00FFF"), message("0B1")])
    assert [m.message_id for m, _ in ordered] == ["00FFF", "0A", "0B1"]


class FakeLambdaClient:
    """What boto3's Lambda client answers to a synchronous Invoke (moto runs functions only in
    Docker): the handler's answer, or Lambda's error payload and FunctionError header."""

    def __init__(self, answer: Any, function_error: str | None = None) -> None:
        self.answer = answer
        self.function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(self.answer).encode()),
        }
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


def test_the_deployed_function_is_invoked_synchronously_and_its_error_is_a_failure() -> None:
    event = {"Records": [{"eventName": "ObjectCreated:Put"}]}
    client = FakeLambdaClient({"records": 1, "outcomes": ["written"]})

    assert LambdaInvoker(client, "flex-dev-ingest-job")(event) == "written"
    [call] = client.calls
    assert call["FunctionName"] == "flex-dev-ingest-job"
    assert call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == event

    failing = FakeLambdaClient(
        {"errorMessage": "1 of 1 records failed", "errorType": "IngestionFailed"}, "Unhandled"
    )
    with pytest.raises(ReplayFailed, match="1 of 1 records failed"):
        LambdaInvoker(failing, "flex-dev-ingest-job")(event)


def test_the_queue_url_names_the_function_and_the_region() -> None:
    url = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/flex-prod-ingest-failures"
    name, region = replay_failures.queue_location(url)
    assert (name, region) == ("flex-prod-ingest-failures", "ap-northeast-2")
    assert replay_failures.function_for(name) == "flex-prod-ingest-job"
    assert replay_failures.function_for("someone-elses-queue") is None
    assert replay_failures.queue_location("http://127.0.0.1:5000/123456789012/q") == ("q", None)
