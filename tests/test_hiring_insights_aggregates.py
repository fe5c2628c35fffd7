"""The per-job aggregates behind applicants and insights (migration 0004) stay equal to their
definitions (the ``*_computed`` views over the interview tables) through every kind of write:
inserts, replacements, status changes, deletes, erasure of an applicant, concurrent writers;
and the routes' SQL reads only them, never a job's results."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bench.bench_insights import StatementLog
from flex_shared import db
from tests.interview_aggregates import (
    AGGREGATES,
    aggregate_counts,
    assert_aggregates_match_their_definitions,
)
from tests.test_hiring_insights import interview, scored
from tests.test_interview_results_api import Api, add_job
from tests.test_interview_results_concurrency import run_containers


@pytest.fixture
def api(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> Api:
    return Api(load_function("interview_results"))


KEYWORDS = ["Python", "python", "Go", "SQL", "sql", "Kafka", "팀워크", "리더십", "AWS"]


def _random_result(rng: random.Random, question_id: int) -> dict[str, Any]:
    def score() -> float | None:
        return rng.choice([None, float(rng.randint(0, 100)), 72.5, 85.25])

    return {
        "question_id": question_id,
        "overall_score": score(),
        "logic_score": score(),
        "relevance_score": score(),
        "technical_score": score(),
        "communication_score": score(),
        "keywords": rng.choice(
            [
                None,
                {},
                {
                    rng.choice(["technical", "Technical", "soft"]): rng.sample(
                        KEYWORDS, rng.randint(0, 4)
                    )
                    for _ in range(rng.randint(1, 3))
                },
            ]
        ),
    }


def test_every_kind_of_write_keeps_the_aggregates_equal_to_their_definitions(
    api: Api, db_engine: Engine
) -> None:
    # Given two jobs with sessions in every state, results posted, replaced and completed
    rng = random.Random(18)
    jobs = [add_job(db_engine), add_job(db_engine)]
    sessions: list[tuple[int, int]] = []  # (interview id, applicant)
    for step in range(60):
        job = rng.choice(jobs)
        applicant = rng.randint(1, 6)
        status = rng.choice(["pending", "in_progress", "completed", "failed"])
        results = [_random_result(rng, q) for q in range(rng.randint(0, 3))]
        for result in results:
            result.pop("question_id")
        if status == "pending":
            results = []
        interview_id = interview(api, job, applicant, status, results)
        sessions.append((interview_id, applicant))
        if step % 5 == 0:  # a replacement, and a session completed after its results
            target, _ = rng.choice(sessions)
            replaced = api("POST", f"/interviews/{target}/results", _random_result(rng, 1))
            assert replaced.status in (200, 201, 409), replaced.body
            api("PATCH", f"/interviews/{target}", {"status": "in_progress"})
            api("PATCH", f"/interviews/{target}", {"status": "completed"})
        assert_aggregates_match_their_definitions(db_engine)

    # When results are deleted one by one, an applicant's results first then the sessions,
    # and another applicant's sessions with their results (cascade), as erasure may do
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "DELETE FROM interview_results WHERE id IN (SELECT id FROM interview_results"
                " ORDER BY id LIMIT 5)"
            )
        )
    assert_aggregates_match_their_definitions(db_engine)
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "DELETE FROM interview_results WHERE interview_id IN"
                " (SELECT id FROM interview_sessions WHERE applicant_id = 1)"
            )
        )
        connection.execute(text("DELETE FROM interview_sessions WHERE applicant_id = 1"))
    assert_aggregates_match_their_definitions(db_engine)
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM interview_sessions WHERE applicant_id = 2"))
    assert_aggregates_match_their_definitions(db_engine)

    # Then the erased applicants are nowhere in the aggregates
    with db_engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM job_applicant_stats WHERE applicant_id IN (1, 2)")
        ).scalar_one()
    assert left == 0


def test_erasing_every_interview_of_a_job_leaves_no_keyword_or_count_behind(
    api: Api, db_engine: Engine, job_id_with_interviews: int
) -> None:
    with db_engine.begin() as connection:
        connection.execute(
            text("DELETE FROM interview_sessions WHERE job_id = :job"),
            {"job": job_id_with_interviews},
        )

    assert aggregate_counts(db_engine) == dict.fromkeys(AGGREGATES, 0)
    body = api("GET", f"/jobs/{job_id_with_interviews}/insights").body
    assert body["results"] == 0
    assert body["top_keywords"] == []


@pytest.fixture
def job_id_with_interviews(api: Api, db_engine: Engine) -> int:
    job_id = add_job(db_engine)
    for applicant in (1, 2, 3):
        interview(
            api,
            job_id,
            applicant,
            "completed",
            [
                {**scored(70.0 + applicant, logic=60.0), "keywords": {"t": ["Python", "김철수"]}},
                {**scored(None), "keywords": {"s": ["teamwork"]}},
            ],
        )
    return job_id


def test_a_sessions_job_and_applicant_never_change(db_engine: Engine, api: Api) -> None:
    job_id = add_job(db_engine)
    other = add_job(db_engine)
    interview_id = interview(api, job_id, 1, "completed", [scored(50.0)])

    for change in ("job_id = :other", "applicant_id = 99"):
        with pytest.raises(Exception, match="never change"), db_engine.begin() as connection:
            connection.execute(
                text(f"UPDATE interview_sessions SET {change} WHERE id = :id"),
                {"other": other, "id": interview_id},
            )
    assert_aggregates_match_their_definitions(db_engine)


# --- concurrent writers ------------------------------------------------------------------


def test_concurrent_containers_writing_one_job_keep_the_aggregates_exact(
    db_engine: Engine, api: Api
) -> None:
    # Given one job, four applicants each with a running session
    job_id = add_job(db_engine)
    sessions = [interview(api, job_id, applicant, "in_progress", []) for applicant in (1, 2, 3, 4)]
    shared_session = sessions[0]

    # When four containers at once post results with the same keywords and scores (to their
    # own session and to a shared one), replace them, and complete the sessions
    requests = []
    for worker, own in enumerate(sessions):
        steps: list[tuple[str, str, Any]] = []
        for question in range(1, 5):
            body = {
                "question_id": question,
                "overall_score": 80.0,
                "logic_score": float(worker * 10 + question),
                "keywords": {"technical": ["Python", "SQL"], "soft": ["Teamwork"]},
            }
            steps.append(("POST", f"/interviews/{own}/results", body))
            steps.append(("POST", f"/interviews/{shared_session}/results", body))
        steps.append(("PATCH", f"/interviews/{own}", {"status": "completed"}))
        requests.append(steps)
    answers = [statuses for statuses, _audit in run_containers(requests)]

    # Then every request succeeded, and the aggregates are exactly their definitions
    for worker_answers in answers:
        assert all(status < 300 for status, _ in worker_answers), worker_answers
    assert_aggregates_match_their_definitions(db_engine)
    ranking = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert [row["completed_sessions"] for row in ranking] == [1, 1, 1, 1]


def _backend_pid(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _wait_until_blocked(engine: Engine, pid: int) -> None:
    """Until backend ``pid`` waits for a lock another transaction holds."""
    with engine.connect() as watcher:
        for _ in range(3000):
            blockers = watcher.execute(
                text("SELECT cardinality(pg_blocking_pids(:pid))"), {"pid": pid}
            ).scalar_one()
            if blockers:
                return
            watcher.execute(text("SELECT pg_sleep(0.01)"))
            watcher.rollback()
    raise AssertionError(f"backend {pid} never waited for a lock")


class Writer(threading.Thread):
    """Runs ``statements`` in one transaction on its own connection, and reports its pid
    before the first one."""

    def __init__(self, engine: Engine, statements: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.statements = statements
        self.pid: int | None = None
        self.started_transaction = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.begin() as connection:
                self.pid = _backend_pid(connection)
                self.started_transaction.set()
                for sql, params in self.statements:
                    connection.execute(text(sql), params)
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.started_transaction.set()


@pytest.fixture
def running(db_engine: Engine, api: Api) -> tuple[int, int]:
    job_id = add_job(db_engine)
    return job_id, interview(api, job_id, 1, "in_progress", [])


RESULT_INSERT = (
    "INSERT INTO interview_results (interview_id, question_id, overall_score, keywords)"
    " VALUES (:interview, :question, :score, CAST(:keywords AS jsonb))"
)


def _result_params(interview_id: int, question: int, score: float) -> dict[str, Any]:
    keywords = json.dumps({"technical": ["Python"]})
    return {"interview": interview_id, "question": question, "score": score, "keywords": keywords}


@pytest.mark.parametrize("first", ["completion", "result"])
def test_a_result_racing_its_sessions_completion_is_never_lost(
    db_engine: Engine, api: Api, running: tuple[int, int], first: str
) -> None:
    # Given a running session, one transaction completing it and another posting a result,
    # the second started while the first holds the applicant's row
    job_id, interview_id = running
    completion = (
        "UPDATE interview_sessions SET status = 'completed',"
        " completed_at = timezone('utc', now()) WHERE id = :interview",
        {"interview": interview_id},
    )
    result = (RESULT_INSERT, _result_params(interview_id, 1, 90.0))
    holder, waiter = (completion, result) if first == "completion" else (result, completion)
    engine = db.get_engine()
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text(holder[0]), holder[1])
        blocked = Writer(engine, [waiter])
        blocked.start()
        assert blocked.started_transaction.wait(timeout=30)
        assert blocked.pid is not None, blocked.error
        _wait_until_blocked(engine, blocked.pid)
        transaction.commit()
    blocked.join(timeout=30)
    assert blocked.error is None

    # Then the completed session's result is in the applicant's average
    (row,) = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert (row["completed_sessions"], row["results"], row["average_overall_score"]) == (1, 1, 90)
    assert_aggregates_match_their_definitions(db_engine)


def test_erasure_racing_a_result_of_the_same_job_leaves_exact_counts(
    db_engine: Engine, api: Api
) -> None:
    # Given two applicants of one job whose results share keywords and scores
    job_id = add_job(db_engine)
    erased = interview(
        api, job_id, 1, "completed", [{**scored(80.0), "keywords": {"technical": ["Python"]}}]
    )
    kept = interview(api, job_id, 2, "in_progress", [])
    assert erased

    # When applicant 1 is erased while applicant 2's result with the same keyword is written
    engine = db.get_engine()
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("DELETE FROM interview_sessions WHERE applicant_id = 1"))
        writer = Writer(engine, [(RESULT_INSERT, _result_params(kept, 1, 80.0))])
        writer.start()
        assert writer.started_transaction.wait(timeout=30)
        assert writer.pid is not None, writer.error
        _wait_until_blocked(engine, writer.pid)
        transaction.commit()
    writer.join(timeout=30)
    assert writer.error is None

    # Then only applicant 2's result is counted
    assert_aggregates_match_their_definitions(db_engine)
    body = api("GET", f"/jobs/{job_id}/insights").body
    assert body["results"] == 1
    assert body["top_keywords"] == [{"category": "technical", "keyword": "python", "count": 1}]


# --- what the routes read ----------------------------------------------------------------


def _plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN of every query among ``statements``, as they ran (same parameters)."""
    plans = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")  # small tables: show the path a large one takes
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        raw.rollback()
    finally:
        raw.close()
    return plans


def test_applicants_and_insights_read_only_the_jobs_aggregates_by_index(
    api: Api, db_engine: Engine, job_id_with_interviews: int
) -> None:
    # Given a second job with interviews too, and the planner's statistics
    other = add_job(db_engine)
    interview(api, other, 9, "completed", [scored(10.0)])
    with db_engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine = db.get_engine()

    # When both routes run, with a cursor
    with StatementLog(engine) as log:
        first = api("GET", f"/jobs/{job_id_with_interviews}/applicants", query={"limit": "1"})
        api(
            "GET",
            f"/jobs/{job_id_with_interviews}/applicants",
            query={"after": first.body["next"]},
        )
        api("GET", f"/jobs/{job_id_with_interviews}/insights")
    plans = _plans(engine, log.statements)

    # Then no statement reads the sessions or results, and each aggregate is reached through
    # an index on the job
    assert len(plans) == 3  # each route is one statement
    for plan in plans:
        assert "interview_results" not in plan, plan
        assert "interview_sessions" not in plan, plan
        assert "Seq Scan" not in plan, plan
        for table in AGGREGATES:
            if f" on {table} " in plan:
                assert "job_id = " in plan, plan


def test_truncating_the_interview_tables_empties_their_aggregates(
    api: Api, db_engine: Engine, job_id_with_interviews: int
) -> None:
    assert all(aggregate_counts(db_engine).values())

    with db_engine.begin() as connection:
        connection.execute(text("TRUNCATE interview_sessions CASCADE"))

    assert aggregate_counts(db_engine) == dict.fromkeys(AGGREGATES, 0)


def test_a_score_just_under_a_whole_point_is_counted_in_the_bucket_below(
    api: Api, db_engine: Engine
) -> None:
    # Given results whose scores sit a rounding error from a whole point (a model's 80 - 1e-14
    # as a double; numeric would round it up to 80 before taking the floor)
    job = add_job(db_engine)
    just_under = 79.99999999999999
    interview(
        api,
        job,
        7,
        "completed",
        [scored(just_under), scored(80.0), scored(just_under, logic=0.30000000000000004)],
    )
    assert_aggregates_match_their_definitions(db_engine)

    # When the job's insights are read
    answer = api("GET", f"/jobs/{job}/insights")

    # Then they are answered, with the exact order statistics
    assert answer.status == 200, answer.body
    overall = answer.body["scores"]["overall"]
    assert (overall["count"], overall["p25"], overall["median"]) == (3, just_under, just_under)
    assert overall["p75"] == pytest.approx(just_under + (80.0 - just_under) / 2, abs=1e-12)

    # and erasing the applicant empties the job's buckets (each is found to be locked)
    assert api("DELETE", "/applicants/7").status == 204
    assert_aggregates_match_their_definitions(db_engine)
    assert api("GET", f"/jobs/{job}/insights").body["scores"]["overall"]["count"] == 0
