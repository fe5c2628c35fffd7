"""S3 ObjectCreated / ObjectRemoved -> jobs + job_chunks (SPEC.md, "Ingestion").

Every record of the event is processed. A bad object is logged with its key and reason and
skipped (retrying cannot fix it); a transient failure (database, S3, embedding service) of one
record does not stop the others, and the invocation then raises so Lambda retries the event.
Retried records that were already applied are recognised by their sequencer and skipped.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from flex_ingest import service
from flex_ingest.events import IgnoredRecord, ObjectChange, is_test_event, parse_records
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
    retries the event (records already applied are skipped by their sequencer)."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_test_event(event):
        logger.info("S3 test event received", extra={"bucket": event.get("Bucket")})
        metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=0)
        return {"records": 0, "outcomes": []}

    records = parse_records(event)
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=len(records))
    deadline = deadline_from_context(context, reserve_seconds=DEADLINE_SAFETY_MARGIN_SECONDS)
    outcomes: list[Outcome] = []
    failures: list[str] = []
    with embedding_usage_metrics(metrics):
        for record in records:
            if isinstance(record, IgnoredRecord):
                logger.info(
                    "record ignored",
                    extra={
                        "reason": record.reason,
                        "event_name": record.event_name,
                        "key": record.key,
                    },
                )
                outcomes.append(Outcome.IGNORED)
                continue
            outcome = _process(record, deadline, context)
            outcomes.append(outcome)
            if outcome is Outcome.FAILED:
                failures.append(record.key)
    logger.set_correlation_id(context.aws_request_id)
    if failures:
        # Only a raised exception makes Lambda retry an event: say so here, where it is true.
        logger.error(
            "failing the invocation so that Lambda retries the event (after its last retry,"
            " it goes to the failure queue); records already applied are skipped then",
            extra={"failed_keys": failures, "records": len(records)},
        )
        raise IngestionFailed(f"{len(failures)} of {len(records)} records failed: {failures}")
    return {"records": len(records), "outcomes": [outcome.value for outcome in outcomes]}


def _process(change: ObjectChange, deadline: float | None, context: LambdaContext) -> Outcome:
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
