"""Several Lambda containers (here: processes, each with its own engine and connections) write
the same interview at the same instant, on the real database."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from flex_shared.models import InterviewSession, InterviewStatus, Job

FUNCTION_DIR = Path(__file__).resolve().parents[1] / "functions" / "interview_results"
PROCESSES = 4
ROUNDS = 6


def _container(
    worker: int,
    requests: list[tuple[str, str, Any]],
    barrier: Any,
    answers: Any,
) -> None:
    """One 'container': a fresh process and engine; every request starts on the barrier so
    all containers hit the database together."""
    try:
        app = load_function("interview_results")
        app.lambda_handler(
            rest_event("GET", "/questions", None),
            FakeLambdaContext(function_name="interview_results"),
        )  # connect first
        statuses = []
        for method, path, body in requests:
            barrier.wait(timeout=60)
            response = app.lambda_handler(
                rest_event(method, path, body), FakeLambdaContext(function_name="interview_results")
            )
            statuses.append((response["statusCode"], json.loads(response["body"])))
        answers.put((worker, statuses))
    except BaseException as exc:
        answers.put((worker, repr(exc)))
        raise


def run_containers(requests_per_worker: list[list[tuple[str, str, Any]]]) -> list[list[Any]]:
    """Run each request list in its own spawned process; the answers per worker, in order."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(requests_per_worker))
    answers = context.Queue()
    processes = [
        context.Process(target=_container, args=(worker, requests, barrier, answers))
        for worker, requests in enumerate(requests_per_worker)
    ]
    for process in processes:
        process.start()
    collected = dict(answers.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    failures = {w: a for w, a in collected.items() if isinstance(a, str)}
    assert not failures, failures
    return [collected[worker] for worker in range(len(processes))]


def _interview(engine: Engine, job_id: int) -> int:
    with Session(engine) as session, session.begin():
        interview = InterviewSession(
            applicant_id=1, job_id=job_id, status=InterviewStatus.IN_PROGRESS
        )
        session.add(interview)
        session.flush()
        return interview.id


@pytest.fixture
def job_id(db_engine: Engine) -> int:
    with Session(db_engine) as session, session.begin():
        job = Job(company_id=1, title="Engineer", description="Python")
        session.add(job)
        session.flush()
        return job.id


def test_concurrent_writes_for_one_question_leave_one_row_and_no_5xx(
    db_engine: Engine, job_id: int
) -> None:
    # Given one running interview, when 4 containers post a result for the same question at
    # the same instant, round after round (a new question each round)
    interview_id = _interview(db_engine, job_id)
    path = f"/interviews/{interview_id}/results"
    requests = [
        [
            ("POST", path, {"question_id": question, "logic_score": worker * 10 + question})
            for question in range(ROUNDS)
        ]
        for worker in range(PROCESSES)
    ]

    answers = run_containers(requests)

    # Then every request succeeded, exactly one per question was the insert (201)
    for question in range(ROUNDS):
        statuses = sorted(answers[worker][question][0] for worker in range(PROCESSES))
        assert statuses == [200] * (PROCESSES - 1) + [201], (question, answers)
    # and each question has exactly one row, holding one of the posted results
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT question_id, logic_score, overall_score FROM interview_results"
                " WHERE interview_id = :id ORDER BY question_id"
            ),
            {"id": interview_id},
        ).all()
    assert [row.question_id for row in rows] == list(range(ROUNDS))
    for row in rows:
        posted = {worker * 10 + row.question_id for worker in range(PROCESSES)}
        assert row.logic_score in posted
        assert row.overall_score == row.logic_score


def test_concurrent_transitions_from_one_state_let_exactly_one_win(
    db_engine: Engine, job_id: int
) -> None:
    # Given running interviews, when 4 containers try to end each at the same instant, half
    # as completed and half as failed
    interviews = [_interview(db_engine, job_id) for _ in range(ROUNDS)]
    targets = ["completed", "failed"] * (PROCESSES // 2)
    requests = [
        [
            ("PATCH", f"/interviews/{interview}", {"status": targets[worker]})
            for interview in interviews
        ]
        for worker in range(PROCESSES)
    ]

    answers = run_containers(requests)

    # Then exactly one wins each race; the others get 409 naming the state it left behind
    with db_engine.connect() as connection:
        final: dict[int, str] = dict(
            connection.execute(
                text("SELECT id, status FROM interview_sessions WHERE id = ANY(:ids)"),
                {"ids": interviews},
            ).all()
        )
    for round_, interview in enumerate(interviews):
        results = [answers[worker][round_] for worker in range(PROCESSES)]
        winners = [body for status, body in results if status == 200]
        losers = [body for status, body in results if status == 409]
        assert len(winners) == 1, results
        assert len(losers) == PROCESSES - 1, results
        assert final[interview] == winners[0]["status"]
        for body in losers:
            assert f"from {winners[0]['status']} to" in body["error"]["message"]
