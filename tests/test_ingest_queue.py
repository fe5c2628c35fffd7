"""The ingestion function behind its queue (S3 -> SQS -> the event source mapping -> the
handler): each SQS message carries one S3 notification; the handler answers which messages
failed, so only those come back.

The same fixtures as tests/test_ingest_job.py: moto S3, the embedded PostgreSQL, the real
handler.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devtools.sqs_events import lambda_event, queue_arn, received_message
from tests import test_ingest_job
from tests.test_ingest_job import (
    EVENTS,
    KOREAN_JOB,
    CountingEmbedder,
    Ingest,
    assert_searchable,
    sibling,
)

# The fixtures of the ingestion tests, shared.
ingest = test_ingest_job.ingest
counting_embedder = test_ingest_job.counting_embedder

SOURCE = queue_arn("flex-dev-ingest-queue")


def message_for(*records: dict[str, Any]) -> dict[str, Any]:
    """The SQS message S3 sends for a notification of these records."""
    return received_message(json.dumps({"Records": list(records)}))


def batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return lambda_event(messages, SOURCE)


def test_sample_batch_with_a_test_event_and_an_upload_creates_the_job(ingest: Ingest) -> None:
    # given the object the sample batch's second message names
    key = "jobs/7/백엔드 개발자 채용.txt"
    ingest.put(key, KOREAN_JOB)
    event = json.loads((EVENTS / "ingest_job_sqs_batch.json").read_text(encoding="utf-8"))

    # when the event source mapping delivers the batch (an s3:TestEvent first)
    result = ingest.invoke_event(event)

    # then no message is to be delivered again, and the upload became a searchable job
    assert result == {"batchItemFailures": []}
    job = ingest.job(key)
    assert job is not None
    assert (job.company_id, job.title, job.source_sequencer) == (
        7,
        "백엔드 개발자 채용",
        "0067D3F5AD8A1C4F3E",
    )
    assert_searchable(ingest, job, KOREAN_JOB)
    assert ingest.job_count() == 1


def test_only_the_message_whose_record_failed_comes_back_and_lands_on_redelivery(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three uploads, one of which Bedrock keeps throttling past the deadline
    service = sibling("flex_ingest.service")
    throttled = {"on": True}
    embedder = CountingEmbedder(fail_when=lambda text: throttled["on"] and "Throttled" in text)
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    messages = [
        message_for(ingest.record("ObjectCreated:Put", key, ingest.put(key, body)))
        for key, body in (
            ("jobs/1/a.txt", "Backend engineer\n\nPython and PostgreSQL."),
            ("jobs/1/b.txt", "Throttled role\n\nKotlin and Kafka."),
            ("jobs/1/c.txt", "데이터 엔지니어\n\nSpark 운영 경험."),
        )
    ]

    # when the batch is delivered
    result = ingest.invoke_event(batch(*messages))

    # then only the failed message is reported, and the others' jobs are in
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[1]["MessageId"]}]}
    assert ingest.job("jobs/1/a.txt") is not None
    assert ingest.job("jobs/1/b.txt") is None
    assert ingest.job("jobs/1/c.txt") is not None

    # when the queue delivers the failed message again, once Bedrock has recovered
    throttled["on"] = False
    again = {
        **messages[1],
        "Attributes": {**messages[1]["Attributes"], "ApproximateReceiveCount": "2"},
    }
    result = ingest.invoke_event(batch(again))

    # then it lands, once
    assert result == {"batchItemFailures": []}
    assert ingest.job("jobs/1/b.txt") is not None
    assert ingest.job_count() == 3


def test_a_batch_publishes_its_work_and_the_embedding_services_usage_and_names_what_failed(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given two uploads in one batch, one of which the embedding service keeps failing
    # (the container's embedder embeds the other: its usage is what gets published)
    service = sibling("flex_ingest.service")
    failing = CountingEmbedder(fail_when=lambda text: "Unlucky" in text)
    monkeypatch.setattr(service, "get_embedder", lambda: failing)
    good_key, bad_key = "jobs/6/sre.txt", "jobs/6/unlucky.txt"
    messages = [
        message_for(ingest.record("ObjectCreated:Put", key, ingest.put(key, body)))
        for key, body in ((good_key, KOREAN_JOB), (bad_key, "Unlucky role\n\nCOBOL."))
    ]
    capsys.readouterr()

    # when the batch is delivered
    result = ingest.invoke_event(batch(*messages))

    # then one metrics document covers the batch: the job written, the record failed, and the
    # chunks embedded counted as the embedding service's calls
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[1]["MessageId"]}]}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1
    metrics = emf[0]
    job = ingest.job(good_key)
    assert job is not None
    chunks = len(ingest.chunks(job.id))
    assert metrics["DocumentsIngested"] == [1.0]
    assert metrics["RecordsFailed"] == [1.0]
    assert metrics["EmbeddingCalls"] == [float(chunks)]
    # and the log says which message comes back, and why nothing was raised
    [reported] = [
        line
        for line in ingest.log_lines()
        if line.get("message", "").startswith("reporting failed messages")
    ]
    assert reported["level"] == "ERROR"
    assert (reported["failed_message_ids"], reported["messages"]) == ([messages[1]["MessageId"]], 2)


def test_a_message_delivered_twice_changes_nothing_the_second_time(
    ingest: Ingest, counting_embedder: CountingEmbedder
) -> None:
    key = "jobs/2/platform.md"
    message = message_for(
        ingest.record("ObjectCreated:Put", key, ingest.put(key, "# Platform\n\nTerraform."))
    )
    assert ingest.invoke_event(batch(message)) == {"batchItemFailures": []}
    job = ingest.job(key)
    assert job is not None
    chunks_before = [(c.id, c.chunk_text) for c in ingest.chunks(job.id)]

    # SQS is at-least-once: the same message again, in a batch of its own
    assert ingest.invoke_event(batch(message)) == {"batchItemFailures": []}

    assert [(c.id, c.chunk_text) for c in ingest.chunks(job.id)] == chunks_before
    assert counting_embedder.calls == 1
    assert ingest.job_count() == 1


def test_every_message_failing_is_reported_not_raised(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = sibling("flex_ingest.service")
    embedder = CountingEmbedder(fail_when=lambda text: True)
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    messages = [
        message_for(ingest.record("ObjectCreated:Put", key, ingest.put(key, "Role\n\nText.")))
        for key in ("jobs/1/x.txt", "jobs/1/y.txt")
    ]

    result = ingest.invoke_event(batch(*messages))

    # a raised error would only add an invocation error: the answer already says it all
    assert result == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]} for message in messages]
    }
    assert ingest.job_count() == 0


def test_a_message_that_holds_no_s3_notification_is_logged_and_not_retried(
    ingest: Ingest,
) -> None:
    key = "jobs/4/qa.txt"
    good = message_for(ingest.record("ObjectCreated:Put", key, ingest.put(key, "QA\n\nAppium.")))
    not_json = received_message("this is not JSON")
    not_s3 = received_message(json.dumps({"hello": "world"}))

    result = ingest.invoke_event(batch(not_json, good, not_s3))

    assert result == {"batchItemFailures": []}
    assert ingest.job(key) is not None
    ignored = [line for line in ingest.log_lines() if line.get("message") == "message ignored"]
    assert [(line["message_id"], line["reason"]) for line in ignored] == [
        (not_json["MessageId"], "message body is not JSON"),
        (not_s3["MessageId"], "message body is not an S3 notification"),
    ]


def test_a_bad_object_in_a_message_is_rejected_not_retried(ingest: Ingest) -> None:
    key = "jobs/5/broken.json"
    message = message_for(
        ingest.record("ObjectCreated:Put", key, ingest.put(key, b'{"company_id": 5, "title": '))
    )

    result = ingest.invoke_event(batch(message))

    assert result == {"batchItemFailures": []}
    assert ingest.job_count() == 0
    [rejection] = ingest.rejections()
    assert (rejection["key"], rejection["reason"]) == (key, "invalid_json")
