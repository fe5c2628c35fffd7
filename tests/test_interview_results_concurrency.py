"""Several Lambda containers (here: processes, each with its own engine and connections) write
the same interview at the same instant, on the real database."""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from flex_shared.models import InterviewSession, InterviewStatus, Job
from tests.interview_aggregates import assert_aggregates_match_their_definitions
from tests.test_interview_results_api import Api

FUNCTION_DIR = Path(__file__).resolve().parents[1] / "functions" / "interview_results"
PROCESSES = 4
ROUNDS = 6


class _AuditLines(logging.Handler):
    """Keeps the erasure audit lines a container writes: (applicant, sessions, results)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, int, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        extra = record.__dict__
        self.lines.append(
            (extra["applicant_id"], extra["sessions_deleted"], extra["results_deleted"])
        )


def _start_container() -> tuple[ModuleType, _AuditLines]:
    """A fresh 'container': the function loaded, its engine connected, its audit lines kept."""
    app = load_function("interview_results")
    app.lambda_handler(
        rest_event("GET", "/questions", None), FakeLambdaContext(function_name="interview_results")
    )  # connect first
    audit = _AuditLines()
    importlib.import_module("flex_interviews.handler").audit_logger.addHandler(audit)
    return app, audit


def _call(app: ModuleType, method: str, path: str, body: Any) -> tuple[int, Any]:
    response = app.lambda_handler(
        rest_event(method, path, body), FakeLambdaContext(function_name="interview_results")
    )
    return response["statusCode"], json.loads(response["body"] or "null")


def _container(
    worker: int,
    requests: list[tuple[str, str, Any]],
    barrier: Any,
    answers: Any,
) -> None:
    """One 'container': a fresh process and engine; every request starts on the barrier so
    all containers hit the database together."""
    try:
        app, audit = _start_container()
        statuses = []
        for method, path, body in requests:
            barrier.wait(timeout=60)
            statuses.append(_call(app, method, path, body))
        answers.put((worker, (statuses, audit.lines)))
    except BaseException as exc:
        answers.put((worker, repr(exc)))
        raise


def run_containers(
    requests_per_worker: list[list[tuple[str, str, Any]]],
) -> list[tuple[list[tuple[int, Any]], list[tuple[int, int, int]]]]:
    """Run each request list in its own spawned process; per worker, its answers in order and
    the erasure audit lines it wrote."""
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


def _interview(engine: Engine, job_id: int, applicant_id: int = 1) -> int:
    with Session(engine) as session, session.begin():
        interview = InterviewSession(
            applicant_id=applicant_id, job_id=job_id, status=InterviewStatus.IN_PROGRESS
        )
        session.add(interview)
        session.flush()
        return interview.id


def _job(engine: Engine) -> int:
    with Session(engine) as session, session.begin():
        job = Job(company_id=1, title="Engineer", description="Python")
        session.add(job)
        session.flush()
        return job.id


@pytest.fixture
def job_id(db_engine: Engine) -> int:
    return _job(db_engine)


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

    answers = [statuses for statuses, _audit in run_containers(requests)]

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

    answers = [statuses for statuses, _audit in run_containers(requests)]

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


# --- erasure racing result writes --------------------------------------------------------

ERASURE_ROUNDS = 30
SEEDED_QUESTION = 1
NEW_QUESTION = 2


SEEDED_KEYWORDS = {"technical": ["Python", "SQL", "Django"], "soft_skills": ["teamwork"]}
WRITTEN_KEYWORDS = {"soft_skills": ["clarity", "teamwork"], "technical": ["Django", "Python"]}
"""Shared keywords in other orders: whatever the job keeps per keyword, erased and written
results touch the same entries."""


def _written(question_id: int) -> dict[str, Any]:
    """A result posted while an erasure runs."""
    return {
        "question_id": question_id,
        "stt_full_text": "written during the erasure",
        "logic_score": 70,
        "technical_score": 90,
        "keywords": WRITTEN_KEYWORDS,
    }


def _result(engine: Engine, interview_id: int, question_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO interview_results (interview_id, question_id, stt_full_text,"
                " logic_score, overall_score, keywords) VALUES (:interview_id, :question_id,"
                " 'an answer', 80, 80, CAST(:keywords AS JSONB))"
            ),
            {
                "interview_id": interview_id,
                "question_id": question_id,
                "keywords": json.dumps(SEEDED_KEYWORDS),
            },
        )


def _applicant_with_results(engine: Engine, applicant_id: int, jobs: list[int]) -> list[int]:
    """One running interview of the applicant per job, each with a result for SEEDED_QUESTION."""
    interviews = [_interview(engine, job, applicant_id) for job in jobs]
    for interview_id in interviews:
        _result(engine, interview_id, SEEDED_QUESTION)
    return interviews


def _left_behind(engine: Engine, applicant_ids: list[int]) -> dict[str, int]:
    """What survives of these applicants, and results without a session anywhere."""
    with engine.connect() as connection:
        return {
            "sessions": connection.scalar(
                text("SELECT count(*) FROM interview_sessions WHERE applicant_id = ANY(:ids)"),
                {"ids": applicant_ids},
            ),
            "results": connection.scalar(text("SELECT count(*) FROM interview_results")),
            "orphans": connection.scalar(
                text(
                    "SELECT count(*) FROM interview_results r WHERE NOT EXISTS"
                    " (SELECT 1 FROM interview_sessions s WHERE s.id = r.interview_id)"
                )
            ),
        }


def test_results_written_while_the_applicant_is_erased_are_erased_with_them_or_refused(
    db_engine: Engine, job_id: int
) -> None:
    # Given, for each round, an applicant with three running interviews for two jobs, each with
    # a result, and another applicant interviewing for the same job
    jobs = [job_id, job_id, _job(db_engine)]
    applicants = [1000 + round_ for round_ in range(ERASURE_ROUNDS)]
    interviews = {a: _applicant_with_results(db_engine, a, jobs) for a in applicants}
    bystander = _interview(db_engine, job_id, applicant_id=9999)

    # When, round after round, one container erases the applicant while three others, at the
    # same instant, write a new result, replace a result, and write a new result for the
    # other job, and a fourth writes the other applicant's next result for the same job
    writes = [
        (0, NEW_QUESTION, {201, 404}),
        (1, SEEDED_QUESTION, {200, 404}),
        (2, NEW_QUESTION, {201, 404}),
    ]
    requests = [[("DELETE", f"/applicants/{a}", None) for a in applicants]] + [
        [
            ("POST", f"/interviews/{interviews[a][session]}/results", _written(question))
            for a in applicants
        ]
        for session, question, _allowed in writes
    ]
    requests.append(
        [
            ("POST", f"/interviews/{bystander}/results", _written(100 + round_))
            for round_ in range(ERASURE_ROUNDS)
        ]
    )

    (erasures, audit), *writers, (bystanders, _) = run_containers(requests)

    # Then every erasure answered 204 and every write either happened before it (201/200) or
    # found the interview gone (404): never a conflict, never a 5xx
    assert [status for status, _ in erasures] == [204] * ERASURE_ROUNDS
    outcomes = {"written before the erasure": 0, "refused after it": 0}
    for round_, applicant in enumerate(applicants):
        written = 0
        for (session, question, allowed), (answers, _) in zip(writes, writers, strict=True):
            status, body = answers[round_]
            assert status in allowed, (round_, session, status, body)
            if status == 404:
                assert body["error"]["code"] == "not_found"
                outcomes["refused after it"] += 1
            else:
                outcomes["written before the erasure"] += 1
                written += question == NEW_QUESTION
        # and the erasure deleted and counted exactly the results that existed: the seeded
        # ones plus every new one that was written before it
        assert audit[round_] == (applicant, 3, 3 + written), round_
    # The other applicant's writes all went through, untouched by the erasures
    assert [status for status, _ in bystanders] == [201] * ERASURE_ROUNDS
    # Nothing of any erased applicant is left, and no result outlived its session
    assert _left_behind(db_engine, applicants) == {
        "sessions": 0,
        "results": ERASURE_ROUNDS,  # the other applicant's
        "orphans": 0,
    }
    # The jobs' aggregates are exactly their definitions, and the job's applicants and
    # insights, read through the handler, count the other applicant's results alone
    assert_aggregates_match_their_definitions(db_engine)
    api = Api(load_function("interview_results"))
    ranking = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert [(row["applicant_id"], row["sessions"]) for row in ranking] == [(9999, 1)]
    insights = api("GET", f"/jobs/{job_id}/insights").body
    assert insights["sessions"] == {"pending": 0, "in_progress": 1, "completed": 0, "failed": 0}
    assert insights["results"] == ERASURE_ROUNDS
    scores = insights["scores"]
    assert [scores[name]["count"] for name in ("overall", "logic", "technical", "relevance")] == [
        ERASURE_ROUNDS,
        ERASURE_ROUNDS,
        ERASURE_ROUNDS,
        0,
    ]
    assert (scores["logic"]["mean"], scores["technical"]["mean"]) == (70, 90)  # none of the 80s
    assert {(k["category"], k["keyword"], k["count"]) for k in insights["top_keywords"]} == {
        (category, keyword.lower(), ERASURE_ROUNDS)
        for category, keywords in WRITTEN_KEYWORDS.items()
        for keyword in keywords
    }  # "sql" was only ever the erased applicants'
    other_job = api("GET", f"/jobs/{jobs[2]}/insights").body
    assert (other_job["results"], other_job["top_keywords"]) == (0, [])
    assert api("GET", f"/jobs/{jobs[2]}/applicants").body["applicants"] == []
    print(f"erasure race over {ERASURE_ROUNDS} rounds: {outcomes}")


def _scripted_container(
    request: tuple[str, str, Any],
    marker: str,
    hold: bool,
    reached: Any,
    resume: Any,
    answers: Any,
) -> None:
    """A container that makes one request and tells the test when its transaction reaches
    the statement containing ``marker``: with ``hold``, once that statement has run (its locks
    held) it waits for ``resume``; without, it signals just before sending it."""
    from sqlalchemy import event

    from flex_shared import db

    try:
        app, audit = _start_container()
        engine = db.get_engine()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not hold and marker in statement:
                reached.set()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if hold and marker in statement:
                reached.set()
                assert resume.wait(timeout=60), "the test never let the transaction go on"

        status, body = _call(app, *request)
        answers.put((status, body, audit.lines))
    except BaseException as exc:
        answers.put((0, repr(exc), []))
        raise


# The statements the scripted containers stop at or announce (flex_interviews.store's SQL).
WRITER_HOLDS_ITS_SESSION = "FOR KEY SHARE"
WRITER_READS_ITS_SESSION = "FROM interview_sessions WHERE id"
ERASER_LOCKS_THE_SESSIONS = "FOR UPDATE"


@pytest.mark.parametrize(
    ("question", "written"), [(NEW_QUESTION, 201), (SEEDED_QUESTION, 200)], ids=["new", "replace"]
)
@pytest.mark.parametrize("first", ["writer", "eraser"])
def test_whichever_locks_the_session_first_the_erasure_leaves_nothing_behind(
    db_engine: Engine, job_id: int, first: str, question: int, written: int
) -> None:
    # Given an applicant with two interviews, each with a result
    interviews = _applicant_with_results(db_engine, 77, [job_id, _job(db_engine)])
    write = ("POST", f"/interviews/{interviews[0]}/results", _written(question))
    erase = ("DELETE", "/applicants/77", None)
    second = "eraser" if first == "writer" else "writer"
    scripts = {
        "writer": (
            write,
            WRITER_HOLDS_ITS_SESSION if first == "writer" else WRITER_READS_ITS_SESSION,
        ),
        "eraser": (erase, ERASER_LOCKS_THE_SESSIONS),
    }
    context = multiprocessing.get_context("spawn")
    holding, going_on = context.Event(), context.Event()
    asking = context.Event()
    answers = {name: context.Queue() for name in scripts}
    # When the first holds the session's lock mid-transaction, and lets go only once the
    # second is asking for it
    first_process = context.Process(
        target=_scripted_container,
        args=(*scripts[first], True, holding, going_on, answers[first]),
    )
    second_process = context.Process(
        target=_scripted_container,
        args=(*scripts[second], False, asking, going_on, answers[second]),
    )
    try:
        first_process.start()
        assert holding.wait(timeout=60), "the first transaction never took its lock"
        second_process.start()
        assert asking.wait(timeout=60), "the second transaction never reached its session"
        going_on.set()
        outcome = {name: queue.get(timeout=120) for name, queue in answers.items()}
    finally:
        going_on.set()
        for process in (first_process, second_process):
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()

    # Then the erasure is 204 and the write either went first and was erased and counted
    # with the rest, or came second and found the interview gone (404, not a conflict)
    erase_status, _, audit = outcome["eraser"]
    write_status, write_body, _ = outcome["writer"]
    assert erase_status == 204, outcome
    if first == "writer":
        assert write_status == written, write_body
        assert audit == [(77, 2, 2 + (question == NEW_QUESTION))]
    else:
        assert (write_status, write_body["error"]["code"]) == (404, "not_found")
        assert audit == [(77, 2, 2)]
    assert _left_behind(db_engine, [77]) == {"sessions": 0, "results": 0, "orphans": 0}
