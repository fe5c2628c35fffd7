"""S3 ObjectCreated / ObjectRemoved -> jobs + job_chunks (SPEC.md, "Ingestion").

Two shapes of event arrive here: S3's notification itself (a direct invocation), and a batch
from the SQS event source mapping whose messages each carry one notification (the deployed
wiring: S3 -> SQS -> this function, see template.yaml).

Every S3 record is processed. A bad object is logged with its key and reason and skipped
(retrying cannot fix it); a transient failure (database, S3, embedding service) of one record
does not stop the others. Then, for a direct event, the invocation raises so Lambda retries the
event; for a batch, only the messages holding a failed record are reported failed
(``batchItemFailures``), so only they come back after the queue's visibility timeout and, past
its ``maxReceiveCount``, move to the dead-letter queue. Retried records that were already
applied are recognised by their sequencer and skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from flex_ingest import service
from flex_ingest.events import (
    IgnoredRecord,
    ObjectChange,
    is_queue_event,
    is_test_event,
    notification_in_message,
    parse_records,
)
from flex_ingest.outcomes import Outcome
from flex_ingest.rejections import RejectedObject
from flex_shared.config import get_settings
from flex_shared.embeddings import deadline_from_context
from flex_shared.observability import embedding_usage_metrics, function_metrics, route_layer_logs

logger = Logger(service="ingest_job")
route_layer_logs(logger)
metrics = function_metrics("ingest_job")
get_settings()  # fail at start-up, naming the variable, when the configuration is wrong

# Time kept back from the embedder's deadline for the final transaction and the log flush.
DEADLINE_SAFETY_MARGIN_SECONDS = 5.0


class IngestionFailed(RuntimeError):
    """Some records failed transiently; raised after the others were processed, so Lambda
    retries the event, or the queue the message (records already applied are skipped by
    their sequencer)."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = deadline_from_context(context, reserve_seconds=DEADLINE_SAFETY_MARGIN_SECONDS)
    with embedding_usage_metrics(metrics):
        if is_queue_event(event):
            return _handle_queue_batch(event, deadline, context)
        outcomes, failures = _handle_notification(event, deadline, context)
    logger.set_correlation_id(context.aws_request_id)
    if failures:
        # Only a raised exception makes Lambda retry an event: say so here, where it is true.
        logger.error(
            "failing the invocation so that Lambda retries the event (after its last retry,"
            " it goes to the failure queue); records already applied are skipped then",
            extra={"failed_keys": failures, "records": len(outcomes)},
        )
        raise IngestionFailed(f"{len(failures)} of {len(outcomes)} records failed: {failures}")
    return {"records": len(outcomes), "outcomes": [outcome.value for outcome in outcomes]}


def _handle_queue_batch(
    event: dict[str, Any], deadline: float, context: LambdaContext
) -> dict[str, Any]:
    """Each message in turn; the answer names the messages to deliver again."""

    def handle_message(record: SQSRecord) -> list[str]:  # Powertools passes `record=`
        message = record
        notification = notification_in_message(message.body)
        if isinstance(notification, IgnoredRecord):
            logger.warning(
                "message ignored",
                extra={"reason": notification.reason, "message_id": message.message_id},
            )
            metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=0)
            return [Outcome.IGNORED.value]
        outcomes, failures = _handle_notification(notification, deadline, context)
        logger.set_correlation_id(context.aws_request_id)
        if failures:
            raise IngestionFailed(
                f"message {message.message_id}: {len(failures)} of {len(outcomes)} records"
                f" failed: {failures}"
            )
        return [outcome.value for outcome in outcomes]

    # One processor per batch: it keeps the batch's results until the answer is built. Not
    # raising when every message failed: the answer already says so, and a raised error
    # would only add an invocation error to the failed records.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response: dict[str, Any] = dict(
        process_partial_response(
            event=event, record_handler=handle_message, processor=processor, context=context
        )
    )
    logger.set_correlation_id(context.aws_request_id)
    if failed := response.get("batchItemFailures"):
        logger.error(
            "reporting failed messages so that the queue delivers them again after its"
            " visibility timeout (past maxReceiveCount, they go to the failure queue); records"
            " already applied are skipped then",
            extra={
                "failed_message_ids": [item["itemIdentifier"] for item in failed],
                "messages": len(event["Records"]),
            },
        )
    return response


def _handle_notification(
    notification: Mapping[str, Any], deadline: float, context: LambdaContext
) -> tuple[list[Outcome], list[str]]:
    """Every record of one S3 notification: their outcomes, and the keys that failed."""
    if is_test_event(notification):
        logger.info("S3 test event received", extra={"bucket": notification.get("Bucket")})
        metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=0)
        return [], []

    records = parse_records(notification)
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=len(records))
    outcomes: list[Outcome] = []
    failures: list[str] = []
    for record in records:
        if isinstance(record, IgnoredRecord):
            logger.info(
                "record ignored",
                extra={"reason": record.reason, "event_name": record.event_name, "key": record.key},
            )
            outcomes.append(Outcome.IGNORED)
            continue
        outcome = _process(record, deadline, context)
        outcomes.append(outcome)
        if outcome is Outcome.FAILED:
            failures.append(record.key)
    return outcomes, failures


def _process(change: ObjectChange, deadline: float, context: LambdaContext) -> Outcome:
    logger.set_correlation_id(change.request_id or context.aws_request_id)
    where = {
        "bucket": change.bucket,
        "key": change.key,
        "event_name": change.event_name,
        "sequencer": change.sequencer,
    }
    try:
        report = service.process_change(change, deadline)
    except RejectedObject as rejected:
        logger.warning(
            "object rejected",
            extra={**where, "reason": rejected.reason.value, "detail": rejected.detail},
        )
        metrics.add_metric(name="DocumentsRejected", unit=MetricUnit.Count, value=1)
        return Outcome.REJECTED
    except Exception:  # any failure of one record: logged here, raised for the event below
        logger.exception("record failed", extra=where)
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=1)
        return Outcome.FAILED

    logger.info(
        "record processed",
        extra={
            **where,
            "outcome": report.outcome,
            "job_id": report.job_id,
            "chunks_written": report.chunks_written,
        },
    )
    if report.outcome in (Outcome.WRITTEN, Outcome.KEPT_CHUNKS):
        metrics.add_metric(name="DocumentsIngested", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ChunksWritten", unit=MetricUnit.Count, value=report.chunks_written)
        if report.chunks_written:
            metrics.add_metric(
                name="EmbeddingTime",
                unit=MetricUnit.Milliseconds,
                value=round(report.embedding_seconds * 1000, 3),
            )
        else:
            metrics.add_metric(name="EmbeddingsReused", unit=MetricUnit.Count, value=1)
    elif report.outcome is Outcome.REMOVED:
        metrics.add_metric(name="DocumentsRemoved", unit=MetricUnit.Count, value=1)
    elif report.outcome in (Outcome.STALE, Outcome.GONE):
        metrics.add_metric(name="EventsSkipped", unit=MetricUnit.Count, value=1)
    return report.outcome
