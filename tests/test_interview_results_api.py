"""The interview API (functions/interview_results) through its Lambda handler, on the real
embedded database: sessions and their lifecycle, results (insert/replace, summary), question
templates, and how every bad request is refused without changing anything."""

from __future__ import annotations

import importlib
import io
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event as make_event
from devtools.lambda_context import FakeLambdaContext
from flex_shared import config, db
from flex_shared.models import Job
from flex_shared.observability import LAYER_LOGGER

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

SEED_RESULT: dict[str, Any] = {
    "question_id": 1,
    "question_text": "Tell me about your experience with Python",
    "stt_full_text": "I have been working with Python for 5 years...",
    "logic_score": 85.5,
    "relevance_score": 90.0,
    "technical_score": 88.0,
    "communication_score": 82.0,
    "keywords": {
        "technical": ["Python", "Django", "REST API"],
        "soft_skills": ["teamwork", "communication"],
        "domain": ["web development", "microservices"],
    },
    "strengths": ["Strong Python expertise", "Good understanding of microservices architecture"],
    "weaknesses": ["Limited experience with async programming"],
    "ai_feedback": "The candidate demonstrated solid technical knowledge...",
    "metadata": {"stt_model": "whisper", "answer_seconds": 94},
}


@dataclass
class Answer:
    status: int
    body: Any
    raw: str


class Api:
    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def invoke(self, event: dict[str, Any]) -> Answer:
        response = self.module.lambda_handler(
            event, FakeLambdaContext(function_name="interview_results")
        )
        raw = response["body"]
        headers = response.get("multiValueHeaders") or {
            name: [value] for name, value in response["headers"].items()
        }
        assert headers["Content-Type"] == ["application/json"]
        return Answer(response["statusCode"], json.loads(raw), raw)

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.invoke(make_event(method, path, body, **kwargs))


@pytest.fixture
def api(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> Api:
    return Api(load_function("interview_results"))


def add_job(engine: Engine, *, deleted: bool = False) -> int:
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        job = Job(company_id=7, title="Backend engineer", description="Python, PostgreSQL")
        if deleted:
            job.deleted_at = text("timezone('utc', now())")  # type: ignore[assignment]
        session.add(job)
        session.flush()
        return job.id


@pytest.fixture
def job_id(db_engine: Engine) -> int:
    return add_job(db_engine)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("interview_sessions", "interview_results", "questions")
        }


def session_row(engine: Engine, interview_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM interview_sessions WHERE id = :id"), {"id": interview_id}
        ).one()
        return dict(row._mapping)


def new_interview(api: Api, job_id: int, status: str = "pending") -> int:
    """A session brought to ``status`` through the API's own transitions."""
    created = api("POST", "/interviews", {"applicant_id": 123, "job_id": job_id})
    assert created.status == 201, created.body
    interview_id = int(created.body["id"])
    path = {
        "pending": [],
        "in_progress": ["in_progress"],
        "completed": ["in_progress", "completed"],
        "failed": ["failed"],
    }[status]
    for step in path:
        assert api("PATCH", f"/interviews/{interview_id}", {"status": step}).status == 200
    return interview_id


def fields_named(answer: Answer) -> set[str]:
    return {detail["field"] for detail in answer.body["error"].get("details", [])}


# --- the sample events -------------------------------------------------------------------


def test_every_sample_event_is_answered_by_the_handler(api: Api, job_id: int) -> None:
    # Given job 1 (identities restart at 1 per test), when the sample events run in order
    assert job_id == 1
    expected = [
        ("create_interview", 201),
        ("get_interview", 200),
        ("update_interview", 200),
        ("post_result", 201),
        ("post_result", 200),
        ("get_results", 200),
        ("create_question", 201),
        ("list_questions", 200),
        ("get_question", 200),
        ("get_applicants", 200),
        ("get_insights", 200),
    ]
    answers = {}
    for name, status in expected:
        event = json.loads((EVENTS_DIR / f"interview_results_{name}.json").read_text())
        answer = api.invoke(event)
        assert answer.status == status, (name, answer.body)
        answers[name] = answer.body
    # Then each did what its route promises
    assert answers["update_interview"]["status"] == "in_progress"
    assert answers["get_results"]["summary"]["count"] == 1
    assert answers["get_results"]["results"][0]["overall_score"] == 86.375
    assert [q["id"] for q in answers["list_questions"]["questions"]] == [1]
    assert answers["get_question"]["question_type"] == "technical"
    # the session is still running: applicant 123 is counted, not yet averaged
    (applicant,) = answers["get_applicants"]["applicants"]
    assert (applicant["applicant_id"], applicant["sessions"]) == (123, 1)
    assert applicant["average_overall_score"] is None
    assert answers["get_insights"]["sessions"]["in_progress"] == 1
    assert answers["get_insights"]["scores"]["overall"]["median"] == 86.375


# --- sessions ----------------------------------------------------------------------------


def test_create_interview_starts_pending_at_question_zero(api: Api, job_id: int) -> None:
    created = api("POST", "/interviews", {"applicant_id": 123, "job_id": job_id})

    assert created.status == 201
    body = created.body
    assert body["applicant_id"] == 123
    assert body["job_id"] == job_id
    assert body["status"] == "pending"
    assert body["current_question_index"] == 0
    assert body["started_at"] is None
    assert body["completed_at"] is None
    assert ISO_UTC.match(body["created_at"])
    assert ISO_UTC.match(body["updated_at"])
    assert api("GET", f"/interviews/{body['id']}").body == body


def test_creates_answer_the_created_resource_location(api: Api, job_id: int) -> None:
    # API Gateway's request context has the path as the client asked for it (the stage first,
    # on the execute-api host): Location is that path plus the new id.
    for path, body in (
        ("/interviews", {"applicant_id": 5, "job_id": job_id}),
        ("/questions", {**QUESTION, "job_id": job_id}),
    ):
        response = api.module.lambda_handler(
            make_event("POST", path, body), FakeLambdaContext(function_name="interview_results")
        )
        created = json.loads(response["body"])
        assert response["statusCode"] == 201
        assert response["multiValueHeaders"]["Location"] == [f"/Prod{path}/{created['id']}"]
        assert api("GET", f"{path}/{created['id']}").body == created


def test_integers_written_with_a_zero_fraction_are_integers(api: Api, job_id: int) -> None:
    # OpenAPI 3.1 (JSON Schema) counts 3.0 as an integer; a generated client may send it so.
    interview_id = new_interview(api, job_id, "in_progress")

    moved = api("PATCH", f"/interviews/{interview_id}", {"current_question_index": 2.0})
    question = api("POST", "/questions", {**QUESTION, "difficulty_level": 3.0})
    result = api("POST", f"/interviews/{interview_id}/results", {"question_id": 7.0})

    assert moved.body["current_question_index"] == 2
    assert question.status == 201
    assert question.body["difficulty_level"] == 3
    assert result.status == 201
    assert result.body["question_id"] == 7
    assert '"question_id":7,' in result.raw


def test_create_interview_for_missing_or_removed_job_is_404_naming_job_id(
    api: Api, db_engine: Engine
) -> None:
    removed = add_job(db_engine, deleted=True)

    missing = api("POST", "/interviews", {"applicant_id": 1, "job_id": 999})
    gone = api("POST", "/interviews", {"applicant_id": 1, "job_id": removed})

    assert missing.status == 404
    assert missing.body["error"]["code"] == "not_found"
    assert fields_named(missing) == {"job_id"}
    assert "job 999 does not exist" in missing.body["error"]["message"]
    assert gone.status == 404
    assert f"job {removed} has been removed" in gone.body["error"]["message"]
    assert counts(db_engine)["interview_sessions"] == 0


@pytest.mark.parametrize(
    ("raw_body", "status", "field"),
    [
        ('{"applicant_id": 1}', 422, "job_id"),
        ('{"job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": "1", "job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": true, "job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": 1.5, "job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": 0, "job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": 2147483648, "job_id": 1}', 422, "applicant_id"),
        ('{"applicant_id": 1, "job_id": 1, "status": "completed"}', 422, "status"),
        ('{"applicant_id": 1, "job_id": NaN}', 400, "body"),
        ('{"applicant_id": 1, "job_id": 1', 400, "body"),
        ("[1, 2]", 422, "body"),
        ("", 422, "body"),
    ],
)
def test_bad_create_interview_is_refused_and_changes_nothing(
    api: Api, job_id: int, db_engine: Engine, raw_body: str, status: int, field: str
) -> None:
    answer = api("POST", "/interviews", raw_body=raw_body)

    assert answer.status == status, answer.body
    assert field in fields_named(answer)
    assert counts(db_engine)["interview_sessions"] == 0


def test_unknown_interview_is_404_and_bad_id_is_422(api: Api, db_engine: Engine) -> None:
    assert api("GET", "/interviews/42").status == 404
    assert api("GET", "/interviews/42").body["error"]["message"] == "interview 42 not found"
    assert api("GET", "/interviews/0").status == 404
    assert api("GET", "/interviews/99999999999").status == 404
    assert api("PATCH", "/interviews/42", {"status": "failed"}).status == 404
    not_a_number = api("GET", "/interviews/abc")
    assert not_a_number.status == 422
    assert "interview_id" in fields_named(not_a_number)
    assert api("DELETE", "/interviews/1").status == 404  # no such route


VALID = {
    ("pending", "in_progress"),
    ("pending", "failed"),
    ("in_progress", "completed"),
    ("in_progress", "failed"),
}
STATES = ("pending", "in_progress", "completed", "failed")


@pytest.mark.parametrize(("start", "target"), [(a, b) for a in STATES for b in STATES])
def test_every_transition_is_allowed_or_409_naming_both_states(
    api: Api, job_id: int, db_engine: Engine, start: str, target: str
) -> None:
    interview_id = new_interview(api, job_id, start)
    before = session_row(db_engine, interview_id)

    answer = api("PATCH", f"/interviews/{interview_id}", {"status": target})

    after = session_row(db_engine, interview_id)
    if (start, target) in VALID:
        assert answer.status == 200, answer.body
        assert answer.body["status"] == target == after["status"]
        if target == "in_progress":
            assert after["started_at"] is not None
            assert ISO_UTC.match(answer.body["started_at"])
        if target == "completed":
            assert after["completed_at"] is not None
            assert after["completed_at"] >= after["started_at"]
        if target == "failed":
            assert after["completed_at"] is None
    else:
        assert answer.status == 409
        message = answer.body["error"]["message"]
        assert f"from {start} to {target}" in message
        assert after == before


def test_question_index_moves_while_running_and_never_goes_negative(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    path = f"/interviews/{interview_id}"

    assert api("PATCH", path, {"current_question_index": 3}).body["current_question_index"] == 3
    negative = api("PATCH", path, {"current_question_index": -1})
    null = api("PATCH", path, {"current_question_index": None})
    text_index = api("PATCH", path, {"current_question_index": "4"})
    empty = api("PATCH", path, {})
    unknown = api("PATCH", path, {"current_question": 4})

    assert negative.status == 422
    assert fields_named(negative) == {"current_question_index"}
    assert null.status == 422
    assert fields_named(null) == {"current_question_index"}
    assert text_index.status == 422
    assert empty.status == 422
    assert "nothing to change" in empty.body["error"]["message"]
    assert unknown.status == 422
    assert fields_named(unknown) == {"current_question"}
    assert session_row(db_engine, interview_id)["current_question_index"] == 3


def test_status_and_index_change_together_or_not_at_all(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    path = f"/interviews/{interview_id}"

    done = api("PATCH", path, {"status": "completed", "current_question_index": 5})
    late_index = api("PATCH", path, {"current_question_index": 6})
    bad_pair = api("PATCH", path, {"status": "in_progress", "current_question_index": 7})

    assert done.status == 200
    assert (done.body["status"], done.body["current_question_index"]) == ("completed", 5)
    assert late_index.status == 409
    assert "completed" in late_index.body["error"]["message"]
    assert bad_pair.status == 409
    row = session_row(db_engine, interview_id)
    assert (row["status"], row["current_question_index"]) == ("completed", 5)


def test_bad_status_value_is_422(api: Api, job_id: int) -> None:
    interview_id = new_interview(api, job_id)

    answer = api("PATCH", f"/interviews/{interview_id}", {"status": "IN_PROGRESS"})

    assert answer.status == 422
    assert fields_named(answer) == {"status"}


# --- results -----------------------------------------------------------------------------


def test_first_result_is_201_with_overall_score_the_mean(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")

    answer = api("POST", f"/interviews/{interview_id}/results", SEED_RESULT)

    assert answer.status == 201, answer.body
    body = answer.body
    assert body["overall_score"] == 86.375
    assert body["interview_id"] == interview_id
    for name, value in SEED_RESULT.items():
        assert body[name] == value
    assert ISO_UTC.match(body["created_at"])
    with db_engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT overall_score, metadata, keywords -> 'technical' AS technical"
                " FROM interview_results WHERE id = :id"
            ),
            {"id": body["id"]},
        ).one()
    assert stored.overall_score == 86.375
    assert stored.metadata == SEED_RESULT["metadata"]
    assert stored.technical == ["Python", "Django", "REST API"]


def test_second_result_for_the_question_replaces_the_first_with_200(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    path = f"/interviews/{interview_id}/results"
    first = api("POST", path, SEED_RESULT)

    second = api("POST", path, {"question_id": 1, "logic_score": 50, "ai_feedback": "revised"})

    assert second.status == 200
    assert second.body["id"] == first.body["id"]
    assert second.body["created_at"] == first.body["created_at"]
    assert second.body["updated_at"] >= first.body["updated_at"]
    # Replace, not merge: what the second post left out is gone.
    assert second.body["logic_score"] == 50
    assert second.body["overall_score"] == 50
    assert second.body["stt_full_text"] is None
    assert second.body["keywords"] is None
    assert second.body["metadata"] is None
    assert counts(db_engine)["interview_results"] == 1
    with db_engine.connect() as connection:
        sql_nulls = connection.scalar(
            text(
                "SELECT keywords IS NULL AND strengths IS NULL AND metadata IS NULL"
                " FROM interview_results"
            )
        )
    assert sql_nulls is True  # SQL NULL, not the JSON value null


@pytest.mark.parametrize(
    ("scores", "overall"),
    [
        ({}, None),
        ({"logic_score": None, "technical_score": None}, None),
        ({"logic_score": 80, "technical_score": None, "relevance_score": 91}, 85.5),
        ({"logic_score": 80, "overall_score": 10}, 10),
        ({"logic_score": 80, "overall_score": None}, None),
        ({"logic_score": 0, "relevance_score": 100}, 50),
    ],
)
def test_overall_score_defaults_to_the_mean_of_given_scores(
    api: Api, job_id: int, scores: dict[str, Any], overall: float | None
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")

    answer = api("POST", f"/interviews/{interview_id}/results", {"question_id": 2, **scores})

    assert answer.status == 201
    assert answer.body["overall_score"] == overall


def test_results_are_accepted_after_the_session_ends_but_not_before_it_starts(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    pending = new_interview(api, job_id, "pending")
    completed = new_interview(api, job_id, "completed")
    failed = new_interview(api, job_id, "failed")

    before_start = api("POST", f"/interviews/{pending}/results", SEED_RESULT)
    after_end = api("POST", f"/interviews/{completed}/results", SEED_RESULT)
    after_failure = api("POST", f"/interviews/{failed}/results", SEED_RESULT)
    missing = api("POST", "/interviews/999/results", SEED_RESULT)

    assert before_start.status == 409
    assert "pending" in before_start.body["error"]["message"]
    assert after_end.status == 201
    assert after_failure.status == 201
    assert missing.status == 404
    assert counts(db_engine)["interview_results"] == 2


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"logic_score": 100.5}, "logic_score", 422),
        ({"relevance_score": -0.1}, "relevance_score", 422),
        ({"technical_score": "90"}, "technical_score", 422),
        ({"communication_score": True}, "communication_score", 422),
        ({"overall_score": 101}, "overall_score", 422),
        ({"keywords": ["Python"]}, "keywords", 422),
        ({"keywords": {"technical": "Python"}}, "keywords.technical", 422),
        ({"keywords": {"technical": [1]}}, "keywords.technical.0", 422),
        ({"keywords": {"technical": [""]}}, "keywords.technical.0", 422),
        ({"strengths": "Strong"}, "strengths", 422),
        ({"weaknesses": [None]}, "weaknesses.0", 422),
        ({"metadata": ["x"]}, "metadata", 422),
        ({"metadata": {"note": "a\u0000b"}}, "metadata", 422),
        ({"stt_full_text": "nul \u0000 inside"}, "stt_full_text", 422),
        ({"ai_feedback": 5}, "ai_feedback", 422),
        ({"question_id": -1}, "question_id", 422),
        ({"question_id": "1"}, "question_id", 422),
        ({"question_id": 2**31}, "question_id", 422),
        ({"score": 50}, "score", 422),
    ],
)
def test_bad_result_is_refused_naming_the_field_and_changes_nothing(
    api: Api, job_id: int, db_engine: Engine, change: dict[str, Any], field: str, status: int
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    api("POST", f"/interviews/{interview_id}/results", {**SEED_RESULT, "question_id": 9})
    before = counts(db_engine)

    answer = api("POST", f"/interviews/{interview_id}/results", {**SEED_RESULT, **change})

    assert answer.status == status, answer.body
    assert field in fields_named(answer), answer.body
    assert counts(db_engine) == before


@pytest.mark.parametrize(
    "raw_body",
    [
        '{"question_id": 1, "logic_score": NaN}',
        '{"question_id": 1, "logic_score": Infinity}',
        '{"question_id": 1, "logic_score": -Infinity}',
        '{"question_id": 1, "logic_score": 1e400}',
        '{"question_id": 1, "metadata": {"x": NaN}}',
        '{"question_id": 1, "keywords": {"t": ["a"]}',
        '{"question_id": 1' + ', "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"question_id": 1' + "0" * 5000 + "}",
    ],
    ids=["nan", "inf", "minus-inf", "overflow", "nested-nan", "truncated", "deep", "huge-int"],
)
def test_non_json_numbers_and_malformed_bodies_are_400(
    api: Api, job_id: int, db_engine: Engine, raw_body: str
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")

    answer = api("POST", f"/interviews/{interview_id}/results", raw_body=raw_body)

    assert answer.status == 400, answer.body
    assert answer.body["error"]["message"].startswith("body: malformed JSON")
    assert "NaN" not in answer.raw.replace("NaN is not valid JSON", "")
    assert counts(db_engine)["interview_results"] == 0


def test_results_come_in_question_order_with_a_summary(api: Api, job_id: int) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    path = f"/interviews/{interview_id}/results"
    api("POST", path, {**SEED_RESULT, "question_id": 3})
    api(
        "POST",
        path,
        {
            "question_id": 1,
            "logic_score": 70,
            "technical_score": None,
            "keywords": {"technical": ["Python", "Python", "Go"], "domain": ["Python"]},
        },
    )
    api("POST", path, {"question_id": 2, "overall_score": 60.5})

    answer = api("GET", path)

    assert answer.status == 200
    assert answer.body["interview_id"] == interview_id
    assert [r["question_id"] for r in answer.body["results"]] == [1, 2, 3]
    summary = answer.body["summary"]
    assert summary["count"] == 3
    assert summary["average_overall_score"] == pytest.approx((70 + 60.5 + 86.375) / 3)
    assert summary["average_logic_score"] == pytest.approx((70 + 85.5) / 2)
    assert summary["average_technical_score"] == 88
    assert summary["average_relevance_score"] == 90
    frequencies = summary["keyword_frequencies"]
    # Counted once per result, most frequent first; overall merges categories.
    assert list(frequencies["overall"].items())[:2] == [("Python", 2), ("Django", 1)]
    assert frequencies["overall"]["Go"] == 1
    assert frequencies["by_category"]["technical"]["Python"] == 2
    assert frequencies["by_category"]["domain"] == {
        "Python": 1,
        "microservices": 1,
        "web development": 1,
    }


def test_results_of_an_empty_or_missing_interview(api: Api, job_id: int) -> None:
    interview_id = new_interview(api, job_id, "in_progress")

    empty = api("GET", f"/interviews/{interview_id}/results")
    missing = api("GET", "/interviews/999/results")

    assert empty.status == 200
    assert empty.body["results"] == []
    assert empty.body["summary"]["count"] == 0
    assert empty.body["summary"]["average_overall_score"] is None
    assert empty.body["summary"]["keyword_frequencies"] == {"overall": {}, "by_category": {}}
    assert missing.status == 404


# --- question templates ------------------------------------------------------------------

QUESTION: dict[str, Any] = {
    "question_type": "technical",
    "question_text": "How do you index vectors in PostgreSQL?",
    "expected_keywords": ["pgvector", "HNSW"],
    "evaluation_criteria": {"depth": "names index parameters"},
    "difficulty_level": 4,
}


def test_question_is_created_read_and_listed_by_filters(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    other_job = add_job(db_engine)
    created = api("POST", "/questions", {**QUESTION, "job_id": job_id})
    api("POST", "/questions", {**QUESTION, "job_id": job_id, "question_type": "behavioral"})
    api("POST", "/questions", {**QUESTION, "job_id": other_job})
    generic = api("POST", "/questions", {"question_type": "technical", "question_text": "Why?"})

    assert created.status == 201
    assert isinstance(created.body["id"], int)
    assert ISO_UTC.match(created.body["created_at"])
    assert api("GET", f"/questions/{created.body['id']}").body == created.body
    assert generic.body["job_id"] is None
    assert generic.body["difficulty_level"] is None
    assert generic.body["expected_keywords"] is None

    def listed(**query: str) -> list[int]:
        answer = api("GET", "/questions", query=query or None)
        assert answer.status == 200, answer.body
        return [q["id"] for q in answer.body["questions"]]

    assert listed() == [1, 2, 3, 4]
    assert listed(job_id=str(job_id)) == [1, 2]
    assert listed(question_type="technical") == [1, 3, 4]
    assert listed(job_id=str(job_id), question_type="technical") == [1]
    assert listed(job_id="999") == []
    first_page = api("GET", "/questions", query={"limit": "3"}).body
    assert [q["id"] for q in first_page["questions"]] == [1, 2, 3]
    assert first_page["next_after_id"] == 3
    last_page = api("GET", "/questions", query={"limit": "3", "after_id": "3"}).body
    assert [q["id"] for q in last_page["questions"]] == [4]
    assert last_page["next_after_id"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"difficulty_level": 0}, "difficulty_level"),
        ({"difficulty_level": 6}, "difficulty_level"),
        ({"difficulty_level": "3"}, "difficulty_level"),
        ({"difficulty_level": 2.5}, "difficulty_level"),
        ({"question_type": "x" * 51}, "question_type"),
        ({"question_type": "   "}, "question_type"),
        ({"question_text": ""}, "question_text"),
        ({"question_text": None}, "question_text"),
        ({"job_id": "1"}, "job_id"),
        ({"expected_keywords": {"k": "\u0000"}}, "expected_keywords"),
        ({"difficulty": 3}, "difficulty"),
    ],
)
def test_bad_question_is_refused_naming_the_field_and_changes_nothing(
    api: Api, job_id: int, db_engine: Engine, change: dict[str, Any], field: str
) -> None:
    answer = api("POST", "/questions", {**QUESTION, "job_id": job_id, **change})

    assert answer.status == 422, answer.body
    assert field in fields_named(answer), answer.body
    assert counts(db_engine)["questions"] == 0


def test_question_for_a_missing_or_removed_job_is_404_naming_job_id(
    api: Api, db_engine: Engine
) -> None:
    removed = add_job(db_engine, deleted=True)

    missing = api("POST", "/questions", {**QUESTION, "job_id": 999})
    gone = api("POST", "/questions", {**QUESTION, "job_id": removed})

    for answer in (missing, gone):
        assert answer.status == 404
        assert answer.body["error"]["code"] == "not_found"
        assert fields_named(answer) == {"job_id"}
    assert counts(db_engine)["questions"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"job_id": "abc"}, "job_id"),
        ({"job_id": ""}, "job_id"),
        ({"job_id": "0"}, "job_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"after_id": "-1"}, "after_id"),
        ({"question_type": "x" * 51}, "question_type"),
        ({"jobid": "1"}, "jobid"),
    ],
)
def test_bad_question_query_is_422_naming_the_parameter(
    api: Api, query: dict[str, str], field: str
) -> None:
    answer = api("GET", "/questions", query=query)

    assert answer.status == 422, answer.body
    assert field in fields_named(answer), answer.body


def test_unknown_question_is_404(api: Api) -> None:
    assert api("GET", "/questions/5").status == 404
    assert api("GET", "/questions/5").body["error"]["message"] == "question 5 not found"
    assert api("GET", "/questions/x").status == 422


# --- personal data and dependencies ------------------------------------------------------

SECRET = "SECRET-TRANSCRIPT-7f3a"


@pytest.fixture
def captured_logs(api: Api) -> Iterator[io.StringIO]:
    """Everything any logger writes during the test, at DEBUG, formatted as Lambda would."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LambdaPowertoolsFormatter())
    handler_module = importlib.import_module("flex_interviews.handler")
    service_logger = logging.getLogger(handler_module.logger.service)
    # The layer's lines go through the function's handler (flex_shared.observability), not root.
    layer_logger = logging.getLogger(LAYER_LOGGER)
    targets = [logging.getLogger(), service_logger, layer_logger]
    levels = [target.level for target in targets]
    for target in targets:
        target.addHandler(handler)
        target.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.removeHandler(handler)
            target.setLevel(level)


def test_transcripts_and_feedback_never_reach_logs_or_error_bodies(
    api: Api, job_id: int, db_engine: Engine, captured_logs: io.StringIO
) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    path = f"/interviews/{interview_id}/results"
    private = {**SEED_RESULT, "stt_full_text": SECRET, "ai_feedback": SECRET}
    answers = [
        api("POST", path, private),  # stored: the answer itself may hold it
        api("POST", path, {**private, "logic_score": 500}),
        api("POST", path, {**private, "stt_full_text": [SECRET]}),
        api("POST", path, {**private, "ai_feedback": {"text": SECRET}}),
        api("POST", path, {**private, "transcript": SECRET}),
        api("POST", path, {"question_id": SECRET}),
        api("POST", path, raw_body='{"stt_full_text": "' + SECRET + '", "x": NaN}'),
        api("POST", path, raw_body='{"stt_full_text": "' + SECRET + '"'),
    ]

    assert [a.status for a in answers] == [201, 422, 422, 422, 422, 422, 400, 400]
    for answer in answers[1:]:
        assert SECRET not in answer.raw
    assert "result saved" in captured_logs.getvalue()  # the capture does see the logs
    assert SECRET not in captured_logs.getvalue()


def test_a_database_error_mid_statement_logs_no_personal_data(
    api: Api, job_id: int, db_engine: Engine, captured_logs: io.StringIO
) -> None:
    # Given a database that fails the INSERT itself (the statement's parameters are then
    # part of the driver's exception)
    interview_id = new_interview(api, job_id, "in_progress")
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$;"
                " CREATE TRIGGER fail_insert BEFORE INSERT ON interview_results"
                " FOR EACH ROW EXECUTE FUNCTION fail_insert();"
            )
        )
    try:
        answer = api(
            "POST",
            f"/interviews/{interview_id}/results",
            {**SEED_RESULT, "stt_full_text": SECRET, "ai_feedback": SECRET},
        )
    finally:
        with db_engine.begin() as connection:
            connection.execute(
                text("DROP TRIGGER fail_insert ON interview_results; DROP FUNCTION fail_insert();")
            )

    assert answer.status == 500
    assert SECRET not in answer.raw
    logs = captured_logs.getvalue()
    assert "disk on fire" in logs  # the failure itself is logged...
    assert SECRET not in logs  # ...without the statement's parameters


def test_unreachable_database_is_503_naming_it(
    api: Api, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://flex@127.0.0.1:9/flex?connect_timeout=2")
    config.reset_settings()
    db.reset_engine()
    try:
        answers = [
            api("GET", "/interviews/1"),
            api("POST", "/interviews", {"applicant_id": 1, "job_id": 1}),
            api("POST", "/interviews/1/results", SEED_RESULT),
            api("GET", "/questions"),
        ]
    finally:
        monkeypatch.setenv("DATABASE_URL", database_url)
        config.reset_settings()
        db.reset_engine()

    for answer in answers:
        assert answer.status == 503
        assert answer.body["error"]["code"] == "database_unavailable"
        assert "database" in answer.body["error"]["message"]
    assert api("GET", "/questions").status == 200  # and it recovers once restored


def test_scores_are_always_finite_json(api: Api, job_id: int) -> None:
    interview_id = new_interview(api, job_id, "in_progress")
    api("POST", f"/interviews/{interview_id}/results", {"question_id": 1, "logic_score": 0})

    answer = api("GET", f"/interviews/{interview_id}/results")

    assert all(
        value is None or math.isfinite(value)
        for value in answer.body["summary"].values()
        if not isinstance(value, dict)
    )
    json.loads(answer.raw, parse_constant=lambda token: pytest.fail(f"{token} in response"))


def test_bodies_that_are_not_json_text_are_4xx_and_change_nothing(
    api: Api, job_id: int, db_engine: Engine
) -> None:
    import base64

    plain = make_event("POST", "/interviews", {"applicant_id": 1, "job_id": job_id})
    plain["headers"] = {"Content-Type": "text/plain"}
    not_base64 = make_event("POST", "/interviews", raw_body="!!not base64")
    not_base64["isBase64Encoded"] = True
    not_utf8 = make_event("POST", "/interviews", raw_body=base64.b64encode(b"\xff\xfe").decode())
    not_utf8["isBase64Encoded"] = True
    encoded = make_event(
        "POST",
        "/interviews",
        raw_body=base64.b64encode(
            json.dumps({"applicant_id": 1, "job_id": job_id}).encode()
        ).decode(),
    )
    encoded["isBase64Encoded"] = True

    assert api.invoke(plain).status == 415
    assert api.invoke(not_base64).status == 400
    assert api.invoke(not_utf8).status == 400
    assert counts(db_engine)["interview_sessions"] == 0
    assert api.invoke(encoded).status == 201  # a well-formed base64 body is fine
