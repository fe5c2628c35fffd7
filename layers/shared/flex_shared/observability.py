"""What a function shows an operator: the layer's log lines in the function's own JSON logs,
and the embedding service's usage as CloudWatch metrics (embedded metric format).

Lambda's root logger sits at WARNING and Powertools formats only its own logger, so without
:func:`route_layer_logs` an INFO line of the layer ("retrying embedding") is dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from .embeddings import get_embedder

LAYER_LOGGER = "flex_shared"
"""The parent of every ``logging.getLogger(__name__)`` of the layer."""

EMBEDDING_METRICS = {
    "calls": "EmbeddingCalls",
    "retries": "EmbeddingRetries",
    "throttles": "EmbeddingThrottles",
    "input_tokens": "EmbeddingInputTokens",
}
"""``EmbeddingUsage`` counter -> the metric that publishes it (unit Count)."""


DEFAULT_METRICS_NAMESPACE = "Flex"


def function_metrics(service: str) -> Metrics:
    """The function's metrics: namespace ``POWERTOOLS_METRICS_NAMESPACE`` (the template sets
    it; Powertools cannot publish without one, so local runs get ``Flex``), dimension
    ``service``."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE
    return Metrics(namespace=namespace, service=service)


def route_layer_logs(logger: Logger) -> None:
    """Send the layer's standard-library log lines through ``logger``'s handler: the same JSON
    shape, level and keys (request id, correlation id) as the function's own lines."""
    logging.getLogger(LAYER_LOGGER)  # registered now, whichever layer modules have logged yet
    copy_config_to_registered_loggers(source_logger=logger, include={LAYER_LOGGER})


@contextmanager
def embedding_usage_metrics(metrics: Metrics) -> Iterator[None]:
    """Add to ``metrics`` what the container's embedder spent inside the block (calls,
    retries, throttles, input tokens), also when the block raises: a throttling storm that
    ends in a 503 or a failed ingestion is exactly what these metrics are for. The
    function's ``metrics.log_metrics`` publishes them when the invocation ends."""
    usage = get_embedder().usage
    before = usage.snapshot()
    try:
        yield
    finally:
        spent = usage.snapshot() - before
        for counter, name in EMBEDDING_METRICS.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=getattr(spent, counter))
