"""What an operator sees at 3 a.m.: the layer's log lines in the function's JSON logs, the
embedding service's usage as CloudWatch metrics, the constraint behind a 409."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event
from devtools.fake_titan import FakeTitan
from devtools.lambda_context import FakeLambdaContext
from flex_shared.observability import LAYER_LOGGER
from tests.conftest import REPO_ROOT
from tests.lambda_container import RESPONSE_PREFIX


@dataclass(frozen=True)
class ContainerRun:
    """One invocation in a fresh process: the handler's answer and every line it printed."""

    response: dict[str, Any]
    lines: list[dict[str, Any]]

    def logs(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("message") == message]

    def metrics(self) -> dict[str, float]:
        """Each metric's sum over the EMF documents printed (a value may be a list)."""
        sums: dict[str, float] = {}
        for line in self.lines:
            if "_aws" in line:
                for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                    value = line[metric["Name"]]
                    values = value if isinstance(value, list) else [value]
                    sums[metric["Name"]] = sums.get(metric["Name"], 0.0) + sum(values)
        return sums


def run_in_fresh_container(
    function: str, event: dict[str, Any], environment: dict[str, str]
) -> ContainerRun:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.lambda_container", function, json.dumps(event)],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "shared"), str(REPO_ROOT)]),
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = completed.stdout.splitlines()
    assert printed[-1].startswith(RESPONSE_PREFIX), completed.stdout[-3000:]
    lines = [json.loads(line) for line in printed[:-1] if line.startswith("{")]
    return ContainerRun(json.loads(printed[-1].removeprefix(RESPONSE_PREFIX)), lines)


@pytest.fixture
def titan() -> Iterator[FakeTitan]:
    with FakeTitan() as fake:
        yield fake


def test_a_throttled_query_embedding_is_logged_and_counted(
    titan: FakeTitan, database_url: str
) -> None:
    # Given Bedrock throttling the first call of a search container logging at INFO
    titan.fail_next("ThrottlingException")
    event = rest_event("POST", "/search", {"query": "python backend"}, request_id="req-3am")

    # When a search arrives
    run = run_in_fresh_container(
        "search",
        event,
        {
            **titan.environ(),
            "DATABASE_URL": database_url,
            "EMBEDDING_PROVIDER": "titan",
            "POWERTOOLS_SERVICE_NAME": "search",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "Flex",
        },
    )

    # Then it is answered after one retry; the layer's retry line is in the function's JSON
    # log with the request's correlation id, and the usage is published as metrics
    assert run.response["statusCode"] == 200, run.response
    (retry,) = run.logs("retrying embedding")
    assert retry["level"] == "INFO"
    assert retry["reason"] == "ThrottlingException"
    assert retry["correlation_id"] == "req-3am"
    assert retry["service"] == "search"
    metrics = run.metrics()
    assert metrics["EmbeddingCalls"] == 2
    assert metrics["EmbeddingRetries"] == 1
    assert metrics["EmbeddingThrottles"] == 1
    assert metrics["EmbeddingInputTokens"] > 0
    assert titan.calls == 2


@pytest.fixture
def interviews(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> ModuleType:
    return load_function("interview_results")


@pytest.fixture
def layer_log(interviews: ModuleType) -> Iterator[list[logging.LogRecord]]:
    """The layer's log records during the test (after loading the function, which routes the
    layer's logger to its own handler)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    layer = logging.getLogger(LAYER_LOGGER)
    layer.addHandler(handler)
    try:
        yield records
    finally:
        layer.removeHandler(handler)


def test_an_integrity_violation_answered_409_logs_the_constraint(
    db_engine: Engine, interviews: ModuleType, layer_log: list[logging.LogRecord]
) -> None:
    # Given a constraint the domain does not check before writing
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "ALTER TABLE questions ADD CONSTRAINT ck_questions_not_retired"
                " CHECK (question_type <> 'retired')"
            )
        )
    try:
        # When a write violates it
        response = interviews.lambda_handler(
            rest_event("POST", "/questions", {"question_type": "retired", "question_text": "Why?"}),
            FakeLambdaContext(),
        )
    finally:
        with db_engine.begin() as connection:
            connection.execute(
                text("ALTER TABLE questions DROP CONSTRAINT ck_questions_not_retired")
            )

    # Then the caller gets a 409 and the operator the constraint's name
    assert response["statusCode"] == 409
    (violation,) = [r for r in layer_log if r.getMessage() == "integrity violation answered 409"]
    assert violation.__dict__["constraint"] == "ck_questions_not_retired"
    assert violation.__dict__["sqlstate"] == "23514"
