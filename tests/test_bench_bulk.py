"""What the bulk-ingestion simulation (bench/bench_bulk.py) rests on: the deployment it runs
is the template's, its queue behaves like SQS for the event source mapping, and its backlog
is what it says."""

from __future__ import annotations

from bench.bench_bulk import Deployment, SimulatedQueue, job_description
from flex_shared.chunking import chunk_text
from tests.test_template import load_template


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_simulation_runs_the_templates_defaults() -> None:
    template = load_template()
    parameters = template["Parameters"]
    queue = template["Resources"]["IngestQueue"]["Properties"]
    function = template["Resources"]["IngestJobFunction"]["Properties"]

    deployment = Deployment.from_template()

    assert deployment.max_concurrency == parameters["IngestMaxConcurrency"]["Default"]
    assert deployment.batch_size == parameters["IngestBatchSize"]["Default"]
    assert deployment.function_timeout == function["Timeout"]
    assert deployment.visibility_timeout == queue["VisibilityTimeout"]
    assert deployment.max_receive_count == queue["RedrivePolicy"]["maxReceiveCount"]
    assert deployment.embedding_max_concurrency == 8  # the layer's default; the template keeps it


def test_a_received_message_is_hidden_until_deleted_or_its_visibility_timeout_ends() -> None:
    clock = Clock()
    queue = SimulatedQueue(visibility_timeout=1800, max_receive_count=5, clock=clock)
    queue.send(["a", "b", "c"])

    first = queue.receive(2, wait_seconds=0)
    assert [m["Body"] for m in first] == ["a", "b"]
    assert [m["Body"] for m in queue.receive(10, wait_seconds=0)] == ["c"]
    assert queue.receive(10, wait_seconds=0) == []  # all in flight

    queue.delete([first[0]["ReceiptHandle"]])  # "a" done; "b" failed, not deleted
    clock.now += 1799
    assert queue.receive(10, wait_seconds=0) == []
    clock.now += 2
    again = queue.receive(10, wait_seconds=0)
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [
        ("b", "2"),
        ("c", "2"),
    ]
    # an old receipt handle no longer deletes the message
    queue.delete([first[1]["ReceiptHandle"]])
    assert queue.depth() == 2


def test_a_message_received_max_receive_count_times_goes_to_the_dead_letter_queue() -> None:
    clock = Clock()
    queue = SimulatedQueue(visibility_timeout=30, max_receive_count=2, clock=clock)
    queue.send(["poison"])

    for count in ("1", "2"):
        [message] = queue.receive(1, wait_seconds=0)
        assert message["Attributes"]["ApproximateReceiveCount"] == count
        clock.now += 31

    assert queue.receive(1, wait_seconds=0) == []  # a third receive would exceed it
    assert queue.dead_letters() == ["poison"]
    assert queue.depth() == 0


def test_the_backlog_is_realistic_job_descriptions_of_three_to_seven_chunks() -> None:
    postings = [job_description(number) for number in range(300)]
    chunks = [len(chunk_text(text)) for _, _, text in postings]
    sizes = [len(text.encode("utf-8")) for _, _, text in postings]

    assert job_description(42) == postings[42]  # deterministic
    assert len({key for key, _, _ in postings}) == 300
    assert min(chunks) >= 3
    assert max(chunks) <= 8
    assert 4.5 <= sum(chunks) / len(chunks) <= 5.5
    assert 2_000 <= min(sizes) <= max(sizes) <= 6_000
    korean = [text for _, _, text in postings if "주요 업무" in text]
    assert 90 <= len(korean) <= 110
