"""Replay what failed to ingest: the S3 notifications waiting in a failure queue, through the
ingest function, in order, exactly once.

    make replay-failures QUEUE_URL=<the stack's IngestFailureQueueUrl>
    python -m devtools.replay_failures <queue URL> [--function NAME] [--dry-run] [--limit N]

The queue is the ingestion queue's dead-letter queue (each message one S3 notification) or an
asynchronous invocation's on-failure destination (the notification under ``requestPayload``);
both are read. The function is ``flex-<stage>-ingest-job`` for a queue named
``flex-<stage>-ingest-failures`` (``--function`` names another); it is invoked synchronously,
one S3 record at a time, with the operator's AWS credentials (``sqs:ReceiveMessage``,
``sqs:DeleteMessage``, ``sqs:ChangeMessageVisibility`` on the queue, ``lambda:InvokeFunction``
on the function, ``kms:Decrypt`` when the queue has its own key).

In order: the records of one S3 key are replayed oldest first, by their ``sequencer`` (the
rule the function itself applies). Exactly once: the function skips a record whose event (or a
newer one) is already applied, and answers ``stale``; that is what "skipped as already
applied" counts. A message is deleted only once every record it holds was applied or skipped;
one that failed again, or that holds no readable notification, stays in the queue (visible
again at once) and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import unquote_plus, urlparse

_REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (_REPO_ROOT / "functions" / "ingest_job", _REPO_ROOT / "layers" / "shared"):
    if str(_path) not in sys.path:  # `python -m devtools.replay_failures` from a checkout
        sys.path.insert(0, str(_path))

from flex_ingest.events import is_newer, is_test_event  # noqa: E402 -- the function's own order

APPLIED = frozenset({"written", "kept_chunks", "removed"})
"""Outcomes that changed the database: the record was replayed."""
ALREADY_APPLIED = "stale"
"""The function found this event, or a newer one for the key, already applied."""
RECEIVE_BATCH = 10  # SQS's maximum per ReceiveMessage


class ReplayFailed(Exception):
    """The function failed on the record (again): it stays in the queue."""


Apply = Callable[[dict[str, Any]], str]
"""Runs the ingest function on an S3 event of one record; answers that record's outcome."""


@dataclass
class Message:
    message_id: str
    receipt_handle: str
    records: list[dict[str, Any]]
    test_event: bool = False
    unreadable: str | None = None
    failed: bool = False


@dataclass
class Report:
    replayed: int = 0
    already_applied: int = 0
    nothing_to_apply: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    test_events: int = 0
    unreadable: int = 0
    messages_deleted: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unreadable == 0

    def summary(self) -> str:
        nothing = sum(self.nothing_to_apply.values())
        detail = ", ".join(
            f"{name} {count}" for name, count in sorted(self.nothing_to_apply.items())
        )
        return (
            f"replayed {self.replayed}, skipped {self.already_applied} as already applied,"
            f" {nothing} with nothing to apply{f' ({detail})' if detail else ''},"
            f" {self.failed} failed again (left in the queue);"
            f" {self.test_events} S3 test event(s) dropped,"
            f" {self.unreadable} unreadable message(s) left in the queue;"
            f" {self.messages_deleted} message(s) deleted"
        )


# -- reading the queue ------------------------------------------------------------------------


def read_messages(
    sqs: Any, queue_url: str, *, limit: int, visibility_timeout: int
) -> list[Message]:
    """Up to ``limit`` messages, each hidden from other readers for ``visibility_timeout``
    seconds while this pass replays them."""
    messages: list[Message] = []
    seen: set[str] = set()
    while len(messages) < limit:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_BATCH, limit - len(messages)),
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=1,  # long polling: an empty answer means the queue is empty
            AttributeNames=["All"],
        )
        received = answer.get("Messages") or []
        if not received:
            break
        for raw in received:
            if raw["MessageId"] in seen:  # at-least-once: SQS may hand one out twice
                continue
            seen.add(raw["MessageId"])
            messages.append(parse_message(raw["MessageId"], raw["ReceiptHandle"], raw["Body"]))
    return messages


def parse_message(message_id: str, receipt_handle: str, body: str) -> Message:
    """A failure queue's message: an S3 notification (the dead-letter queue of the ingestion
    queue, or a function's DLQ), or an on-failure destination's record holding the event."""
    try:
        document = json.loads(body)
    except ValueError:
        return Message(message_id, receipt_handle, [], unreadable="not JSON")
    if isinstance(document, dict) and isinstance(document.get("requestPayload"), dict):
        document = document["requestPayload"]
    if isinstance(document, dict) and is_test_event(document):
        return Message(message_id, receipt_handle, [], test_event=True)
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return Message(message_id, receipt_handle, [], unreadable="no S3 notification in it")
    return Message(message_id, receipt_handle, records)


# -- the order ------------------------------------------------------------------------------


def _location(record: Mapping[str, Any]) -> tuple[str, str]:
    s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
    bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3, dict) else None
    key = (s3.get("object") or {}).get("key") if isinstance(s3, dict) else None
    return str(bucket or ""), unquote_plus(str(key or ""))


def _sequencer(record: Mapping[str, Any]) -> str | None:
    s3 = record.get("s3")
    s3_object = s3.get("object") if isinstance(s3, dict) else None
    sequencer = s3_object.get("sequencer") if isinstance(s3_object, dict) else None
    return sequencer if isinstance(sequencer, str) and sequencer else None


def _older_first(left: dict[str, Any], right: dict[str, Any]) -> int:
    a, b = _sequencer(left), _sequencer(right)
    if a is None or b is None or a == b:
        return 0
    return 1 if is_newer(a, b) else -1


def replay_order(messages: Sequence[Message]) -> list[tuple[Message, dict[str, Any]]]:
    """Every record, grouped by S3 key, each key's records oldest first by sequencer; the
    keys in the order of their first event's time."""
    by_location: dict[tuple[str, str], list[tuple[Message, dict[str, Any]]]] = {}
    for message in messages:
        for record in message.records:
            by_location.setdefault(_location(record), []).append((message, record))

    def older_first(
        left: tuple[Message, dict[str, Any]], right: tuple[Message, dict[str, Any]]
    ) -> int:
        return _older_first(left[1], right[1])

    groups = [sorted(entries, key=cmp_to_key(older_first)) for entries in by_location.values()]
    groups.sort(key=lambda entries: min(str(r.get("eventTime", "")) for _, r in entries))
    return [entry for group in groups for entry in group]


# -- the replay -----------------------------------------------------------------------------


def replay(
    messages: Sequence[Message],
    apply: Apply,
    *,
    delete: Callable[[Message], None],
    release: Callable[[Message], None],
    dry_run: bool = False,
    out: TextIO = sys.stdout,
) -> Report:
    """Apply every record in order; delete what landed, release (make visible) the rest."""
    report = Report()
    for message, record in replay_order(messages):
        bucket, key = _location(record)
        where = f"{record.get('eventName', '?')} s3://{bucket}/{key} {_sequencer(record) or '-'}"
        if dry_run:
            print(f"  would replay {where}", file=out)
            continue
        try:
            outcome = apply({"Records": [record]})
        except ReplayFailed as error:
            message.failed = True
            report.failed += 1
            print(f"  failed   {where}: {error}", file=out)
            continue
        if outcome in APPLIED:
            report.replayed += 1
        elif outcome == ALREADY_APPLIED:
            report.already_applied += 1
        else:
            report.nothing_to_apply[outcome] += 1
        print(f"  {outcome:<8} {where}", file=out)
    for message in messages:
        report.test_events += message.test_event
        if message.unreadable is not None:
            report.unreadable += 1
            print(
                f"  left in the queue: message {message.message_id}: {message.unreadable}", file=out
            )
        if dry_run or message.failed or message.unreadable is not None:
            release(message)
        else:
            delete(message)
            report.messages_deleted += 1
    return report


def run(
    sqs: Any,
    queue_url: str,
    apply: Apply,
    *,
    limit: int = 1000,
    visibility_timeout: int = 3600,
    dry_run: bool = False,
    out: TextIO = sys.stdout,
) -> Report:
    """Read the queue, replay, delete what landed; print each record and the summary."""
    messages = read_messages(sqs, queue_url, limit=limit, visibility_timeout=visibility_timeout)
    records = sum(len(message.records) for message in messages)
    print(f"{len(messages)} message(s), {records} S3 record(s) in {queue_url}", file=out)

    def delete(message: Message) -> None:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message.receipt_handle)

    def release(message: Message) -> None:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )

    report = replay(messages, apply, delete=delete, release=release, dry_run=dry_run, out=out)
    print(("dry run, nothing changed: " if dry_run else "") + report.summary(), file=out)
    return report


# -- invoking the function --------------------------------------------------------------------


class LambdaInvoker:
    """The deployed function, invoked synchronously (the answer carries the outcome)."""

    def __init__(self, client: Any, function_name: str) -> None:
        self.client = client
        self.function_name = function_name

    def __call__(self, event: dict[str, Any]) -> str:
        answer = self.client.invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode("utf-8"),
        )
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            detail = payload if not isinstance(payload, dict) else payload.get("errorMessage")
            raise ReplayFailed(f"{answer['FunctionError']}: {detail}")
        return single_outcome(payload)


class HandlerInvoker:
    """The function's handler in this process (the local runner, tests, the benchmarks)."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], context: Callable[[], Any]):
        self.handler = handler
        self.context = context

    def __call__(self, event: dict[str, Any]) -> str:
        try:
            payload = self.handler(event, self.context())
        except Exception as error:  # the function's failure, as Lambda would report it
            raise ReplayFailed(f"{type(error).__name__}: {error}") from error
        return single_outcome(payload)


def single_outcome(payload: Any) -> str:
    outcomes = payload.get("outcomes") if isinstance(payload, dict) else None
    if not isinstance(outcomes, list) or len(outcomes) != 1:
        raise ReplayFailed(f"unexpected answer {payload!r}")
    return str(outcomes[0])


_QUEUE_NAME = re.compile(r"^flex-(?P<stage>[a-z][a-z0-9-]{0,11})-ingest-failures$")


def queue_location(queue_url: str) -> tuple[str, str | None]:
    """The queue's name and, for an AWS URL, its region."""
    parsed = urlparse(queue_url)
    name = parsed.path.rstrip("/").rsplit("/", 1)[-1]
    host = parsed.hostname or ""
    match = re.match(r"^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$", host) or re.match(
        r"^([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$", host
    )
    return name, match.group(1) if match else None


def function_for(queue_name: str) -> str | None:
    """The stack's ingest function for its failure queue."""
    match = _QUEUE_NAME.match(queue_name)
    return f"flex-{match.group('stage')}-ingest-job" if match else None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.replay_failures", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("queue_url", help="the failure queue (output IngestFailureQueueUrl)")
    parser.add_argument("--function", help="the ingest function (default: from the queue name)")
    parser.add_argument("--region", help="default: from the queue URL, else the AWS profile")
    parser.add_argument("--limit", type=int, default=1000, help="messages per run")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=3600,
        help="seconds the messages of this run stay hidden from other readers",
    )
    parser.add_argument("--dry-run", action="store_true", help="list, change nothing")
    args = parser.parse_args(list(argv) if argv is not None else None)

    import boto3
    from botocore.config import Config

    queue_name, url_region = queue_location(args.queue_url)
    function = args.function or function_for(queue_name)
    if function is None:
        parser.error(f"cannot tell the function from the queue name {queue_name!r}: --function")
    session = boto3.session.Session(region_name=args.region or url_region)
    sqs = session.client("sqs")
    # One try per record, and time for the function's whole run: a retried invoke would be
    # harmless (the function skips what is applied) but would count as a second replay.
    lambda_client = session.client(
        "lambda", config=Config(read_timeout=910, retries={"total_max_attempts": 1})
    )
    print(f"replaying through {function}")
    report = run(
        sqs,
        args.queue_url,
        LambdaInvoker(lambda_client, function),
        limit=args.limit,
        visibility_timeout=args.visibility_timeout,
        dry_run=args.dry_run,
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
