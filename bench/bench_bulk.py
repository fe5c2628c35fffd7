"""A company's backlog against a small Bedrock quota: the deployed shape, simulated end to end.

N job descriptions of realistic size are uploaded to S3 (moto's server on loopback) and their
notifications reach K "containers", processes each running the real ``ingest_job`` handler
with ``EMBEDDING_PROVIDER=titan`` against the Titan stand-in (``devtools/fake_titan.py``, its
own process), which throttles above Q calls/s with Bedrock's ``ThrottlingException``. The
deployment's defaults come from ``template.yaml``; two shapes can be simulated:

- ``sqs`` (deployed): S3 -> SQS -> each container polls like an event source mapping with
  maximum concurrency K: batches of ``IngestBatchSize``, the batch answer's failed messages
  left to come back after the queue's visibility timeout, a message received more than
  ``maxReceiveCount`` times moved to the dead-letter queue (moto SQS, where the operator's
  replay reads it). The ingestion queue itself is :class:`SimulatedQueue`, SQS's semantics in a
  process of its own: moto's SQS spends one to two seconds of CPU per ``ReceiveMessage`` on a
  2,000-message queue (it reads every message's clock dozens of times), more than the whole
  system under test.
- ``async`` (the alternative): Lambda's asynchronous event queue emulated here: K runs at
  most (reserved concurrency); an event that finds none free is throttled and retried after
  1 s, 2 s, ... up to 5 min (the documented schedule, with jitter); a failed run is retried
  after 1 then 2 minutes, then the event goes to the on-failure destination (moto SQS).

Reported per scenario: the time to ingest everything against the quota's lower bound (Titan
calls needed / Q), throttles, what reached the failure queue (replayed then with the
operator's command, ``devtools.replay_failures``), jobs missing or duplicated checked against
the bucket, chunks per second. ``--outage 60`` makes Bedrock fail every call for 60 s once half
of the jobs are in.

    python -m bench.bench_bulk                      # N=2000, Q=50: quota alone, then an outage
    python -m bench.bench_bulk --quick              # N=200
    python -m bench.bench_bulk --shapes sqs,async   # the comparison that chose the shape

Prints a table and writes bench/results/bulk.json.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import json
import multiprocessing
import os
import random
import resource
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import text

# `python -m bench.bench_bulk` from the repository root: the layer is not installed.
_LAYER = Path(__file__).resolve().parents[1] / "layers" / "shared"
if str(_LAYER) not in sys.path:
    sys.path.insert(0, str(_LAYER))

from bench import bench_db  # noqa: E402
from bench.output import write_json  # noqa: E402
from devtools.fake_titan import serve_in_subprocess  # noqa: E402
from devtools.functions import load_function  # noqa: E402
from devtools.lambda_context import FakeLambdaContext  # noqa: E402
from devtools.layer_env import layer_environment  # noqa: E402
from devtools.local.template import load_yaml  # noqa: E402
from devtools.replay_failures import HandlerInvoker  # noqa: E402
from devtools.replay_failures import run as replay_queue  # noqa: E402
from devtools.sqs_events import lambda_event, queue_arn  # noqa: E402
from flex_shared import db  # noqa: E402
from flex_shared.chunking import chunk_text  # noqa: E402
from flex_shared.config import Settings  # noqa: E402

REPO_ROOT = bench_db.REPO_ROOT
RESULT_FILE = bench_db.RESULTS_DIR / "bulk.json"
LOG_DIR = bench_db.RESULTS_DIR / "logs"
DATABASE = "bench_bulk"
BUCKET = "flex-bench-bulk-jobs"
REGION = "us-east-1"
QUEUE = "flex-bench-ingest-queue"
DEAD_LETTER_QUEUE = "flex-bench-ingest-failures"
TITAN_LATENCY_SECONDS = 0.08  # Titan V2 from Lambda in its region: tens of milliseconds
TITAN_LATENCY_JITTER = 0.02
ASYNC_RETRY_DELAYS = (60.0, 120.0)  # Lambda's two retries of a failed asynchronous run
ASYNC_THROTTLE_MAX_DELAY = 300.0


# -- the deployment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """The ingestion path's defaults as ``template.yaml`` (and the layer) set them."""

    max_concurrency: int
    batch_size: int
    function_timeout: int
    visibility_timeout: int
    max_receive_count: int
    embedding_max_concurrency: int

    @classmethod
    def from_template(cls, path: Path = REPO_ROOT / "template.yaml") -> Deployment:
        document = load_yaml(path)
        parameters = document["Parameters"]
        resources = document["Resources"]
        function = resources["IngestJobFunction"]["Properties"]
        queue = resources["IngestQueue"]["Properties"]
        environment = {
            **document["Globals"]["Function"]["Environment"]["Variables"],
            **function.get("Environment", {}).get("Variables", {}),
        }
        embedding = environment.get(
            "EMBEDDING_MAX_CONCURRENCY",
            Settings.model_fields["embedding_max_concurrency"].default,
        )
        return cls(
            max_concurrency=int(parameters["IngestMaxConcurrency"]["Default"]),
            batch_size=int(parameters["IngestBatchSize"]["Default"]),
            function_timeout=int(function["Timeout"]),
            visibility_timeout=int(queue["VisibilityTimeout"]),
            max_receive_count=int(queue["RedrivePolicy"]["maxReceiveCount"]),
            embedding_max_concurrency=int(embedding),
        )


# -- the backlog -------------------------------------------------------------------------------

_EN = {
    "intro": (
        "We build the hiring platform thousands of companies use to meet their next colleague.",
        "Our team of forty engineers ships to production many times a day.",
        "We care about clear writing, small pull requests and calm on-call weeks.",
        "You will join a product team that owns its services from design to operations.",
    ),
    "tasks": (
        "Design and run APIs that serve interview sessions for customers in three regions.",
        "Own the data pipeline that turns uploaded job descriptions into searchable vectors.",
        "Tune PostgreSQL queries, indexes and vacuum settings under real traffic.",
        "Review code with care and write down the decisions behind it.",
        "Keep our infrastructure as code in Terraform and our services observable.",
        "Work with designers and recruiters to turn feedback into small, safe releases.",
    ),
    "must": (
        "Three or more years building backend services in Python, Kotlin or Go.",
        "Solid SQL and experience operating PostgreSQL or MySQL in production.",
        "Experience with AWS Lambda, SQS and S3, or their equivalents elsewhere.",
        "You write tests first and you like deleting code more than adding it.",
        "Comfortable reading English documentation and writing in English or Korean.",
    ),
    "nice": (
        "Experience with vector search, embeddings or pgvector.",
        "You have run an incident review without looking for someone to blame.",
        "Open-source contributions we can read.",
        "Knowledge of Korean labour law for the recruiting features.",
    ),
    "perks": (
        "Flexible hours, remote two days a week, a yearly learning budget.",
        "Health checkups for you and your family, and lunch on the company.",
        "A new laptop of your choice and a quiet desk.",
    ),
}
_KO = {
    "intro": (
        "우리는 수천 개 기업이 사용하는 채용 플랫폼을 만듭니다.",
        "마흔 명의 엔지니어가 하루에도 여러 번 배포합니다.",
        "명확한 글쓰기와 작은 변경, 평온한 온콜을 중요하게 생각합니다.",
    ),
    "tasks": (
        "세 개 리전의 고객에게 면접 세션을 제공하는 API를 설계하고 운영합니다.",
        "업로드된 채용 공고를 검색 가능한 벡터로 바꾸는 데이터 파이프라인을 담당합니다.",
        "실제 트래픽에서 PostgreSQL 쿼리와 인덱스, VACUUM 설정을 튜닝합니다.",
        "Terraform으로 인프라를 코드로 관리하고 서비스를 관측 가능하게 유지합니다.",
        "디자이너, 리크루터와 함께 피드백을 작고 안전한 배포로 바꿉니다.",
    ),
    "must": (
        "Python, Kotlin 또는 Go로 백엔드 서비스를 3년 이상 개발한 경험.",
        "PostgreSQL 또는 MySQL을 운영 환경에서 다뤄 본 경험과 탄탄한 SQL 실력.",
        "AWS Lambda, SQS, S3 또는 그에 준하는 서비스를 사용한 경험.",
        "테스트를 먼저 작성하고 코드를 줄이는 것을 좋아하는 분.",
    ),
    "nice": (
        "벡터 검색, 임베딩 또는 pgvector 경험.",
        "비난 없는 장애 회고를 진행해 본 경험.",
        "읽어 볼 수 있는 오픈소스 기여.",
    ),
    "perks": (
        "유연 근무, 주 2일 재택, 연간 교육비 지원.",
        "본인과 가족 건강검진, 점심 식대 지원.",
        "원하는 노트북과 조용한 자리.",
    ),
}
_HEADINGS = {
    "en": ("About us", "What you will do", "What we look for", "Nice to have", "Benefits"),
    "ko": ("회사 소개", "주요 업무", "자격 요건", "우대 사항", "복지"),
}
_ROLES = (
    "Backend Engineer",
    "Data Engineer",
    "Platform Engineer",
    "Machine Learning Engineer",
    "Frontend Engineer",
    "QA Engineer",
    "백엔드 개발자",
    "데이터 엔지니어",
    "인프라 엔지니어",
)


def job_description(number: int) -> tuple[str, str, str]:
    """The ``number``-th posting of the backlog: its key, title and text (deterministic;
    2.5 to 5.5 KB, 3 to 7 chunks, 5 on average; a third in Korean)."""
    rng = random.Random(number)
    korean = number % 3 == 2
    pool, headings = (_KO, _HEADINGS["ko"]) if korean else (_EN, _HEADINGS["en"])
    role = _ROLES[number % len(_ROLES)]
    title = f"{role} #{number}"
    sections = [f"# {title}"]
    for heading, part, low, high in zip(
        headings,
        ("intro", "tasks", "must", "nice", "perks"),
        (5, 10, 7, 3, 3),  # lines per section: at least
        (12, 24, 16, 9, 8),  # at most
        strict=True,
    ):
        count = rng.randint(low, high)
        lines = [rng.choice(pool[part]) for _ in range(count)]
        body = " ".join(lines) if part == "intro" else "\n".join(f"- {line}" for line in lines)
        sections.append(f"## {heading}\n\n{body}")
    company = 1 + number % 97
    suffix = (".md", ".txt", ".json")[number % 3]
    key = f"jobs/{company}/posting {number:05d}{suffix}"
    return key, title, "\n\n".join(sections)


def object_body(key: str, title: str, description: str) -> bytes:
    if key.endswith(".json"):
        company = int(key.split("/")[1])
        document = {"company_id": company, "title": title, "description": description}
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    return description.encode("utf-8")


def notification(key: str, sequencer: int, size: int) -> str:
    """The body of the message S3 sends to the queue for an upload."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2026-12-01T09:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "responseElements": {"x-amz-request-id": f"BULK{sequencer:012X}"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                        "object": {
                            "key": quote_plus(key, safe="/"),
                            "size": size,
                            "sequencer": f"{0x0067D3F5AD8A1C0000 + sequencer:018X}",
                        },
                    },
                }
            ]
        }
    )


# -- the ingestion queue -------------------------------------------------------------------------


@dataclass
class _Message:
    message_id: str
    body: str
    sent_at: float
    receipt_handle: str = ""
    visible_at: float = 0.0
    receive_count: int = 0


class SimulatedQueue:
    """What the event source mapping relies on of a standard SQS queue: a received message is
    hidden for the visibility timeout and comes back unless deleted by its receipt handle; a
    message about to be received for the (maxReceiveCount + 1)-th time goes to the dead-letter
    queue instead. Long polling: a receive waits up to ``wait_seconds`` for a message."""

    def __init__(
        self,
        visibility_timeout: float,
        max_receive_count: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self._clock = clock
        self._messages: dict[str, _Message] = {}
        self._by_receipt: dict[str, str] = {}
        self._dead: list[str] = []
        self._changed = threading.Condition()
        self.received = 0

    def send(self, bodies: list[str]) -> None:
        with self._changed:
            now = self._clock()
            for body in bodies:
                message_id = str(uuid.uuid4())
                self._messages[message_id] = _Message(message_id, body, now)
            self._changed.notify_all()

    def receive(self, max_messages: int, wait_seconds: float) -> list[dict[str, Any]]:
        """Messages as ``ReceiveMessage`` (``AttributeNames=["All"]``) returns them."""
        deadline = time.monotonic() + wait_seconds
        with self._changed:
            while True:
                batch = self._take(max_messages)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    return batch
                self._changed.wait(min(remaining, 0.2))

    def _take(self, max_messages: int) -> list[dict[str, Any]]:
        now = self._clock()
        batch: list[dict[str, Any]] = []
        for message in list(self._messages.values()):
            if message.visible_at > now:
                continue
            if message.receive_count >= self.max_receive_count:
                del self._messages[message.message_id]
                self._dead.append(message.body)
                continue
            message.receive_count += 1
            message.visible_at = now + self.visibility_timeout
            self._by_receipt.pop(message.receipt_handle, None)
            message.receipt_handle = uuid.uuid4().hex
            self._by_receipt[message.receipt_handle] = message.message_id
            self.received += 1
            batch.append(
                {
                    "MessageId": message.message_id,
                    "ReceiptHandle": message.receipt_handle,
                    "Body": message.body,
                    "Attributes": {
                        "ApproximateReceiveCount": str(message.receive_count),
                        "SentTimestamp": str(int(message.sent_at * 1000)),
                        "ApproximateFirstReceiveTimestamp": str(int(now * 1000)),
                    },
                }
            )
            if len(batch) >= max_messages:
                break
        return batch

    def delete(self, receipt_handles: list[str]) -> None:
        with self._changed:
            for receipt in receipt_handles:
                message_id = self._by_receipt.pop(receipt, None)
                if message_id is not None:  # an old receipt of a message received again: ignored
                    self._messages.pop(message_id, None)

    def depth(self) -> int:
        """Messages visible or in flight (SQS: ApproximateNumberOfMessages + ...NotVisible)."""
        with self._changed:
            return len(self._messages)

    def dead_letters(self) -> list[str]:
        with self._changed:
            return list(self._dead)


_QUEUE: SimulatedQueue | None = None


def _the_queue(visibility_timeout: float, max_receive_count: int) -> SimulatedQueue:
    """The manager process's one queue (created by the first caller)."""
    global _QUEUE
    if _QUEUE is None:
        _QUEUE = SimulatedQueue(visibility_timeout, max_receive_count)
    return _QUEUE


class QueueManager(BaseManager):
    """Serves the queue from its own process to the containers and to this one."""


QueueManager.register("queue", callable=_the_queue)


# -- a container -------------------------------------------------------------------------------


@dataclass
class ContainerStats:
    number: int
    invocations: int = 0
    messages: int = 0
    messages_failed: int = 0
    titan_calls: int = 0
    titan_retries: int = 0
    throttles_seen: int = 0
    rate_decreases: int = 0
    final_rate: float | None = None
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0


def _container(
    number: int,
    config: dict[str, Any],
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
    work: Connection | None,
) -> None:
    """One Lambda container: the real handler, warm, fed by the queue (``sqs``) or by the
    emulated asynchronous event queue (``async``, through ``work``)."""
    os.environ.update(config["env"])
    log = (LOG_DIR / f"bulk-container-{number}.log").open("w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the handler's metrics lines (EMF)
    os.dup2(log.fileno(), 2)
    from flex_shared.embeddings import TitanEmbedder, get_embedder

    app = load_function("ingest_job")
    embedder = get_embedder()
    assert isinstance(embedder, TitanEmbedder)
    embedder.client  # noqa: B018 -- warm: the Bedrock client, the database pool
    with db.get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    stats = ContainerStats(number)
    queue: Any = None
    if config["shape"] == "sqs":
        manager = QueueManager(address=config["queue_address"], authkey=config["queue_authkey"])
        manager.connect()
        queue = manager.queue(config["visibility_timeout"], config["max_receive_count"])  # type: ignore[attr-defined]
    ready.put(number)
    go.wait()

    def invoke(event: dict[str, Any]) -> Any:
        stats.invocations += 1
        context = FakeLambdaContext(
            function_name="flex-bench-ingest-job",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + config["function_timeout"],
        )
        return app.lambda_handler(event, context)

    if queue is not None:
        arn = queue_arn(QUEUE, REGION)
        while not stop.is_set():
            received = queue.receive(config["batch_size"], 1.0)
            if not received:
                continue
            stats.messages += len(received)
            try:
                answer = invoke(lambda_event(received, arn))
                failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
            except Exception:  # a function error: the whole batch comes back
                failed = {message["MessageId"] for message in received}
            stats.messages_failed += len(failed)
            queue.delete([m["ReceiptHandle"] for m in received if m["MessageId"] not in failed])
    else:
        assert work is not None
        while not stop.is_set():
            if not work.poll(0.5):
                continue
            event = work.recv()
            stats.messages += 1
            try:
                invoke(event)
                work.send("ok")
            except Exception as error:
                stats.messages_failed += 1
                work.send(f"{type(error).__name__}: {error}")

    usage, limiter = embedder.usage, embedder.rate_limit.snapshot()
    stats.titan_calls, stats.titan_retries = usage.calls, usage.retries
    stats.throttles_seen, stats.rate_decreases = limiter.throttles, limiter.decreases
    stats.final_rate = round(limiter.rate, 1) if limiter.rate is not None else None
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    stats.peak_rss_mib = round(usage_self.ru_maxrss / 1024, 1)
    stats.cpu_seconds = round(usage_self.ru_utime + usage_self.ru_stime, 1)
    results.put(asdict(stats))
    log.close()


# -- Lambda's asynchronous event queue, emulated --------------------------------------------------


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    event: dict[str, Any] = field(compare=False)
    throttles: int = field(default=0, compare=False)
    errors: int = field(default=0, compare=False)


class AsyncEventQueue:
    """At most one run per container at a time; what finds every container busy is throttled
    and retried 1 s, 2 s, 4 s ... (at most 5 min, each with jitter) later; a run that fails is
    retried after 1 and 2 minutes, then goes to the on-failure destination."""

    def __init__(self, events: Sequence[dict[str, Any]], workers: Sequence[Connection]) -> None:
        self.rng = random.Random(7)
        now = time.monotonic()
        self.heap = [_Pending(now, i, event) for i, event in enumerate(events)]
        heapq.heapify(self.heap)
        self.free = list(workers)
        self.running: dict[Connection, _Pending] = {}
        self.throttles = 0
        self.retries = 0
        self.failed: list[_Pending] = []
        self.order = len(events)

    @property
    def finished(self) -> bool:
        return not self.heap and not self.running

    def step(self, timeout: float = 0.2) -> None:
        now = time.monotonic()
        while self.heap and self.heap[0].due <= now:
            pending = heapq.heappop(self.heap)
            if self.free:
                worker = self.free.pop()
                worker.send(pending.event)
                self.running[worker] = pending
                continue
            self.throttles += 1
            pending.throttles += 1
            delay = min(ASYNC_THROTTLE_MAX_DELAY, 2.0 ** (pending.throttles - 1))
            self._push(pending, now + delay * self.rng.uniform(0.5, 1.0))
        next_due = self.heap[0].due - now if self.heap else timeout
        for ready in wait(list(self.running), timeout=max(0.0, min(timeout, next_due))):
            assert isinstance(ready, Connection)
            answer = ready.recv()
            pending = self.running.pop(ready)
            self.free.append(ready)
            if answer == "ok":
                continue
            pending.errors += 1
            if pending.errors <= len(ASYNC_RETRY_DELAYS):
                self.retries += 1
                self._push(pending, time.monotonic() + ASYNC_RETRY_DELAYS[pending.errors - 1])
            else:
                self.failed.append(pending)

    def _push(self, pending: _Pending, due: float) -> None:
        self.order += 1
        pending.due, pending.order = due, self.order
        heapq.heappush(self.heap, pending)


def destination_record(event: dict[str, Any]) -> str:
    """What the on-failure destination receives for an event that failed its retries."""
    return json.dumps(
        {
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        }
    )


# -- one scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    shape: str
    outage_seconds: float


def _moto_server() -> Any:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 and SQS request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


def _fake_titan_stats(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/_fake/stats", timeout=10) as answer:
        stats: dict[str, Any] = json.loads(answer.read())
        return stats


def _fake_titan_outage(endpoint: str, seconds: float) -> None:
    order = json.dumps({"seconds": seconds, "error": "ServiceUnavailableException"}).encode()
    request = urllib.request.Request(f"{endpoint}/_fake/outage", data=order, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _jobs_in(engine: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM jobs WHERE deleted_at IS NULL")
            ).scalar_one()
        )


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _verify(engine: Any, expected: Mapping[str, int]) -> dict[str, Any]:
    """Every object of the bucket is one live job whose chunks are its description's chunks,
    indexed 0..n-1, once; nothing else is there."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                """
                SELECT j.source_key, j.description, j.deleted_at IS NULL AS live,
                       count(c.id) AS chunks, count(DISTINCT c.chunk_index) AS indexes,
                       coalesce(max(c.chunk_index), -1) AS last_index
                FROM jobs j LEFT JOIN job_chunks c ON c.job_id = j.id
                GROUP BY j.id
                """
            )
        ).all()
    stored = {row.source_key: row for row in rows}
    missing = sorted(key for key in expected if key not in stored or not stored[key].live)
    incomplete, duplicated = [], []
    for key, row in stored.items():
        if key not in expected:
            duplicated.append(key)
            continue
        want = expected[key]
        if row.chunks > want or row.indexes != row.chunks:
            duplicated.append(key)
        elif row.chunks < want or row.last_index != want - 1:
            incomplete.append(key)
    return {
        "objects_in_bucket": len(expected),
        "jobs_in_database": len(stored),
        "missing": len(missing),
        "incomplete": len(incomplete),
        "duplicated": len(duplicated),
        "examples": (missing + incomplete + duplicated)[:5],
        "chunks_in_database": sum(row.chunks for row in rows),
    }


def run_scenario(
    scenario: Scenario,
    *,
    documents: int,
    quota: float,
    deployment: Deployment,
    containers: int,
    duplicate_share: float,
    say: Any = print,
) -> dict[str, Any]:
    import boto3

    url = bench_db.ensure_database(DATABASE)
    engine = bench_db.engine_for(url)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE job_chunks, jobs RESTART IDENTITY CASCADE"))
    moto = _moto_server()
    host, port = moto.get_host_and_port()
    aws_endpoint = f"http://{host}:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": aws_endpoint,
        "AWS_ENDPOINT_URL_SQS": aws_endpoint,
    }
    try:
        with (
            serve_in_subprocess(
                latency=TITAN_LATENCY_SECONDS, jitter=TITAN_LATENCY_JITTER, quota_per_second=quota
            ) as titan,
            layer_environment(
                DATABASE_URL=url,
                EMBEDDING_PROVIDER="titan",
                AWS_ENDPOINT_URL_BEDROCK_RUNTIME=titan,
                POWERTOOLS_LOG_LEVEL="ERROR",
                POWERTOOLS_SERVICE_NAME="flex-bench-bulk",
                POWERTOOLS_METRICS_NAMESPACE="FlexBench",
                **credentials,
            ),
        ):
            return _run_with_services(
                scenario,
                documents=documents,
                quota=quota,
                deployment=deployment,
                containers=containers,
                duplicate_share=duplicate_share,
                engine=engine,
                titan=titan,
                boto3=boto3,
                say=say,
            )
    finally:
        moto.stop()
        engine.dispose()


def _run_with_services(
    scenario: Scenario,
    *,
    documents: int,
    quota: float,
    deployment: Deployment,
    containers: int,
    duplicate_share: float,
    engine: Any,
    titan: str,
    boto3: Any,
    say: Any,
) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    dead_letter_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]

    # The backlog, in the bucket; what each object must become.
    app = load_function("ingest_job")
    extract = sys.modules["flex_ingest.extract"]
    expected: dict[str, int] = {}
    bodies: list[str] = []
    say(f"  uploading {documents} job descriptions")
    for number in range(documents):
        key, title, description = job_description(number)
        body = object_body(key, title, description)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        expected[key] = len(chunk_text(extract.extract_job(key, body, {}).description))
        bodies.append(notification(key, number + 1, len(body)))
    rng = random.Random(11)
    bodies += [body for body in bodies if rng.random() < duplicate_share]
    rng.shuffle(bodies)  # delivered at least once, in no guaranteed order
    chunks_needed = sum(expected.values())
    lower_bound = chunks_needed / quota

    # The ingestion queue, in its own process; then the containers, warm.
    context = multiprocessing.get_context("spawn")
    authkey = os.urandom(16)
    manager = QueueManager(address=("127.0.0.1", 0), authkey=authkey, ctx=context)
    manager.start()
    queue = manager.queue(deployment.visibility_timeout, deployment.max_receive_count)  # type: ignore[attr-defined]
    ready, results = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    config = {
        "shape": scenario.shape,
        "env": {
            **{name: os.environ[name] for name in _CONTAINER_ENV if name in os.environ},
            "EMBEDDING_MAX_CONCURRENCY": str(deployment.embedding_max_concurrency),
        },
        "queue_address": manager.address,
        "queue_authkey": authkey,
        "visibility_timeout": deployment.visibility_timeout,
        "max_receive_count": deployment.max_receive_count,
        "batch_size": deployment.batch_size,
        "function_timeout": deployment.function_timeout,
    }
    pipes = [context.Pipe() for _ in range(containers)] if scenario.shape == "async" else []
    processes = [
        context.Process(
            target=_container,
            args=(n, config, ready, go, stop, results, pipes[n][1] if pipes else None),
            name=f"container-{n}",
        )
        for n in range(containers)
    ]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=180)
        say(f"  {containers} containers warm; {len(bodies)} notifications for {documents} objects")

        if scenario.shape == "sqs":
            queue.send(bodies)
        cpu_before = time.process_time()
        timeline, outage_at, completed_at, failed_async = _drive(
            scenario,
            go=go,
            pipes=[parent for parent, _ in pipes],
            bodies=bodies,
            documents=documents,
            lower_bound=lower_bound,
            engine=engine,
            queue=queue if scenario.shape == "sqs" else None,
            titan=titan,
            say=say,
        )
    finally:
        stop.set()
        container_stats = []
        for _ in processes:
            with contextlib.suppress(Exception):
                container_stats.append(results.get(timeout=60))
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    started = timeline[0][0]
    finished = completed_at if completed_at is not None else timeline[-1][0]
    orchestrator_cpu = time.process_time() - cpu_before
    elapsed = finished - started
    titan_stats = _fake_titan_stats(titan)

    # What reached the failure queue (moto SQS), replayed with the operator's command.
    left_in_queue = queue.depth() if scenario.shape == "sqs" else None
    failed_bodies = [destination_record(pending.event) for pending in failed_async]
    if scenario.shape == "sqs":
        failed_bodies += queue.dead_letters()
    manager.shutdown()
    for dead_letter in failed_bodies:
        sqs.send_message(QueueUrl=dead_letter_url, MessageBody=dead_letter)
    in_failure_queue = _queue_depth(sqs, dead_letter_url)
    replay: dict[str, Any] | None = None
    if in_failure_queue:
        say(f"  {in_failure_queue} message(s) in the failure queue: replaying them")
        invoker = HandlerInvoker(
            app.lambda_handler,
            lambda: FakeLambdaContext(
                function_name="flex-bench-ingest-job",
                remaining_ms=deployment.function_timeout * 1000,
            ),
        )
        report = replay_queue(sqs, dead_letter_url, invoker, out=io.StringIO())
        replay = {
            "replayed": report.replayed,
            "skipped_as_already_applied": report.already_applied,
            "nothing_to_apply": dict(report.nothing_to_apply),
            "failed_again": report.failed,
        }
    verification = _verify(engine, expected)
    chunks_written = verification["chunks_in_database"]
    result: dict[str, Any] = {
        "shape": scenario.shape,
        "outage_seconds": scenario.outage_seconds,
        "outage_started_after_seconds": round(outage_at - started, 1) if outage_at else None,
        "documents": documents,
        "notifications": len(bodies),
        "containers": containers,
        "quota_calls_per_second": quota,
        "titan_calls_needed": chunks_needed,
        "lower_bound_seconds": round(lower_bound, 1),
        "seconds": round(elapsed, 1),
        "ratio_to_lower_bound": round(elapsed / lower_bound, 3),
        # with an outage: what the quota allows plus the time Bedrock was down
        "ratio_to_lower_bound_plus_outage": round(
            elapsed / (lower_bound + scenario.outage_seconds), 3
        ),
        "chunks_per_second": round(chunks_written / elapsed, 1) if elapsed else None,
        "titan": titan_stats,
        "throttled_share": round(titan_stats["throttles"] / max(1, titan_stats["calls"]), 3),
        "extra_titan_successes": titan_stats["successes"] - chunks_needed,
        "reached_failure_queue": in_failure_queue,
        "left_in_failure_queue": _queue_depth(sqs, dead_letter_url),
        "left_in_queue": left_in_queue,
        "replay": replay,
        "verification": verification,
        "containers_detail": sorted(container_stats, key=lambda s: s["number"]),
        # Where the CPU went (the database server's own processes not counted): what a
        # 2-core machine shared with other work can sustain is the limit of this simulation.
        "cpu_seconds": {
            "containers": round(sum(s["cpu_seconds"] for s in container_stats), 1),
            "fake_titan": titan_stats["process_cpu_seconds"],
            "moto_and_this_process": round(orchestrator_cpu, 1),
        },
        "timeline": [
            (round(t - started, 1), jobs) for t, jobs in timeline[:: max(1, len(timeline) // 60)]
        ],
    }
    result["passed"] = (
        verification["missing"] == 0
        and verification["incomplete"] == 0
        and verification["duplicated"] == 0
        and result["left_in_failure_queue"] == 0
        and (scenario.outage_seconds > 0 or result["ratio_to_lower_bound"] <= 1.25)
    )
    return result


_CONTAINER_ENV = (
    "DATABASE_URL",
    "EMBEDDING_PROVIDER",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
)


def _drive(
    scenario: Scenario,
    *,
    go: Any,
    pipes: list[Connection],
    bodies: list[str],
    documents: int,
    lower_bound: float,
    engine: Any,
    queue: Any,
    titan: str,
    say: Any,
) -> tuple[list[tuple[float, int]], float | None, float | None, list[_Pending]]:
    """Start the containers and watch until every job is in, or nothing can change any more
    (the queue empty), or far past any reasonable time."""
    events = [json.loads(body) for body in bodies]
    dispatcher = AsyncEventQueue(events, pipes) if scenario.shape == "async" else None
    give_up = time.monotonic() + 4 * lower_bound + scenario.outage_seconds + 300
    timeline: list[tuple[float, int]] = []
    outage_at: float | None = None
    completed_at: float | None = None
    go.set()
    started = time.monotonic()
    timeline.append((started, 0))
    stop_dispatching = threading.Event()
    thread: threading.Thread | None = None
    if dispatcher is not None:

        def dispatch() -> None:
            while not dispatcher.finished and not stop_dispatching.is_set():
                dispatcher.step()

        thread = threading.Thread(target=dispatch, name="async-event-queue", daemon=True)
        thread.start()
    last_report = started
    while time.monotonic() < give_up:
        time.sleep(0.25)
        now, jobs = time.monotonic(), _jobs_in(engine)
        timeline.append((now, jobs))
        if scenario.outage_seconds and outage_at is None and jobs >= documents // 2:
            _fake_titan_outage(titan, scenario.outage_seconds)
            outage_at = now
            say(f"  Bedrock outage of {scenario.outage_seconds:.0f} s at {now - started:.0f} s")
        if jobs >= documents and completed_at is None:
            completed_at = now
        if now - last_report >= 30:
            last_report = now
            say(f"  {now - started:5.0f} s: {jobs}/{documents} jobs")
        if dispatcher is not None:
            if dispatcher.finished:
                break
        elif queue.depth() == 0:
            break
    stop_dispatching.set()
    if thread is not None:
        thread.join(timeout=30)
    failed = dispatcher.failed if dispatcher is not None else []
    if dispatcher is not None:
        say(f"  async: {dispatcher.throttles} throttled invocations, {dispatcher.retries} retries")
    return timeline, outage_at, completed_at, failed


# -- the whole benchmark ----------------------------------------------------------------------


def run(
    documents: int = 2000,
    quota: float = 50.0,
    shapes: Sequence[str] = ("sqs",),
    outage_seconds: float = 60.0,
    containers: int | None = None,
    duplicate_share: float = 0.01,
) -> dict[str, Any]:
    deployment = Deployment.from_template()
    containers = containers or deployment.max_concurrency
    scenarios = [Scenario(shape, 0.0) for shape in shapes]
    if outage_seconds:
        scenarios += [Scenario(shape, outage_seconds) for shape in shapes]
    outcome: dict[str, Any] = {
        "deployment": asdict(deployment),
        "titan_latency_seconds": [TITAN_LATENCY_SECONDS, TITAN_LATENCY_JITTER],
        "scenarios": [],
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    for scenario in scenarios:
        label = f"{scenario.shape}, outage {scenario.outage_seconds:.0f} s"
        print(f"scenario {label}: N={documents}, Q={quota}/s, K={containers}", flush=True)
        result = run_scenario(
            scenario,
            documents=documents,
            quota=quota,
            deployment=deployment,
            containers=containers,
            duplicate_share=duplicate_share,
            say=lambda line: print(line, flush=True),
        )
        outcome["scenarios"].append(result)
        _print_scenario(result)
    outcome["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    deployed = [s for s in outcome["scenarios"] if s["shape"] == "sqs"]
    outcome["passed"] = bool(deployed) and all(s["passed"] for s in deployed)
    return outcome


def _print_scenario(result: Mapping[str, Any]) -> None:
    check = result["verification"]
    replay = result["replay"]
    print(
        f"  done in {result['seconds']:.1f} s = {result['ratio_to_lower_bound']:.2f}x the quota's"
        f" lower bound ({result['titan_calls_needed']} calls / {result['quota_calls_per_second']:g}"
        f"/s = {result['lower_bound_seconds']:.1f} s), {result['chunks_per_second']} chunks/s"
    )
    if result["outage_seconds"]:
        print(
            f"  = {result['ratio_to_lower_bound_plus_outage']:.2f}x (lower bound + the"
            f" {result['outage_seconds']:g} s outage)"
        )
    print(
        f"  Titan: {result['titan']['calls']} calls, {result['titan']['throttles']} throttled"
        f" ({result['throttled_share']:.1%}), {result['titan']['outage_failures']} failed in the"
        f" outage; {result['extra_titan_successes']} embeddings beyond the chunks needed"
    )
    print(
        f"  failure queue: {result['reached_failure_queue']} reached,"
        f" {result['left_in_failure_queue']} left"
        + (
            f" (replayed {replay['replayed']}, skipped {replay['skipped_as_already_applied']}"
            " as already applied)"
            if replay
            else ""
        )
    )
    print(
        f"  against the bucket: {check['missing']} missing, {check['incomplete']} incomplete,"
        f" {check['duplicated']} duplicated ({check['jobs_in_database']} jobs for"
        f" {check['objects_in_bucket']} objects)  {'PASS' if result['passed'] else 'FAIL'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 documents")
    parser.add_argument("--quota", type=float, default=50.0, help="Titan calls/s let through")
    parser.add_argument("--shapes", default="sqs", help="sqs, async or sqs,async")
    parser.add_argument("--outage", type=float, default=60.0, help="0: no outage scenario")
    parser.add_argument("--containers", type=int, help="default: IngestMaxConcurrency")
    parser.add_argument("--duplicates", type=float, default=0.01, help="share delivered twice")
    args = parser.parse_args(argv)
    result = run(
        documents=200 if args.quick else args.documents,
        quota=args.quota,
        shapes=[shape.strip() for shape in args.shapes.split(",") if shape.strip()],
        outage_seconds=args.outage,
        containers=args.containers,
        duplicate_share=args.duplicates,
    )
    write_json(RESULT_FILE, result)
    print(f"wrote {RESULT_FILE.relative_to(REPO_ROOT)}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
