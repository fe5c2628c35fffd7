"""Text the database cannot store, sent to the APIs: a caller's mistake (4xx, nothing written),
never a 500 from the driver.

JSON escapes can spell unpaired UTF-16 surrogates (``"\\ud800"``); Python's ``json`` keeps them,
pydantic's ``JsonValue`` and plain ``str`` list items let them through, and PostgreSQL then
refuses the parameter. A NUL in a query string parameter is refused by PostgreSQL too."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event
from devtools.lambda_context import FakeLambdaContext


def _call(
    module: ModuleType,
    method: str,
    path: str,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    answer = module.lambda_handler(
        rest_event(method, path, raw_body=raw_body, query=query),
        FakeLambdaContext(function_name="interview_results"),
    )
    return int(answer["statusCode"]), json.loads(answer["body"])


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def interviews(load_function: Callable[[str], ModuleType], db_engine: Engine) -> ModuleType:
    return load_function("interview_results")


@pytest.fixture
def started_interview(interviews: ModuleType, db_engine: Engine) -> int:
    with db_engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (company_id, title, description)"
                " VALUES (1, 't', 'd') RETURNING id"
            )
        ).scalar_one()
    status, created = _call(
        interviews, "POST", "/interviews", json.dumps({"applicant_id": 7, "job_id": job_id})
    )
    assert status == 201
    status, _ = _call(
        interviews, "PATCH", f"/interviews/{created['id']}", json.dumps({"status": "in_progress"})
    )
    assert status == 200
    return int(created["id"])


LONE_SURROGATE_RESULTS = [
    '{"question_id": 1, "metadata": {"\\ud800": 1}}',
    '{"question_id": 1, "metadata": {"stt": {"model": "\\udc00"}}}',
    '{"question_id": 1, "strengths": ["good \\ud83d"]}',
    '{"question_id": 1, "ai_feedback": "\\ud800"}',
]


@pytest.mark.parametrize("raw_body", LONE_SURROGATE_RESULTS)
def test_result_with_an_unpaired_surrogate_is_refused_and_nothing_is_stored(
    interviews: ModuleType, db_engine: Engine, started_interview: int, raw_body: str
) -> None:
    # Given a started interview; when a result holds an unpaired surrogate escape
    status, body = _call(interviews, "POST", f"/interviews/{started_interview}/results", raw_body)
    # Then the caller is told the body is malformed, and no result was stored
    assert status == 400, body
    assert body["error"]["code"] == "validation_error"
    assert "surrogate" in body["error"]["message"]
    assert _count(db_engine, "interview_results") == 0


@pytest.mark.parametrize(
    "field", ["expected_keywords", "evaluation_criteria"], ids=["keywords", "criteria"]
)
def test_question_with_an_unpaired_surrogate_is_refused_and_nothing_is_stored(
    interviews: ModuleType, db_engine: Engine, field: str
) -> None:
    raw_body = '{"question_type": "technical", "question_text": "q", "%s": {"a": ["\\ud800"]}}'
    status, body = _call(interviews, "POST", "/questions", raw_body % field)
    assert status == 400, body
    assert _count(db_engine, "questions") == 0


def test_paired_surrogate_escapes_are_ordinary_text(
    interviews: ModuleType, db_engine: Engine, started_interview: int
) -> None:
    # "\ud83d\ude00" is one emoji spelt as a pair: valid JSON text, stored and read back.
    raw_body = '{"question_id": 2, "metadata": {"mood": "\\ud83d\\ude00"}, "strengths": ["ok"]}'
    status, body = _call(interviews, "POST", f"/interviews/{started_interview}/results", raw_body)
    assert status == 201, body
    assert body["metadata"] == {"mood": "\U0001f600"}


def test_question_list_filter_with_nul_is_refused(
    interviews: ModuleType, db_engine: Engine
) -> None:
    # Given a question; when the list is filtered by a question_type holding NUL
    status, _ = _call(
        interviews,
        "POST",
        "/questions",
        json.dumps({"question_type": "technical", "question_text": "q"}),
    )
    assert status == 201
    status, body = _call(interviews, "GET", "/questions", query={"question_type": "tech\x00nical"})
    # Then it is the caller's 422 naming the parameter, not the database's 500
    assert status == 422, body
    assert body["error"]["details"][0]["field"] == "question_type"
