"""Hiring insights through the interview API's handler, on the real database:
``GET /jobs/{job_id}/applicants`` (the ranking, its pages, its cursor) and
``GET /jobs/{job_id}/insights`` (counts, score statistics against Python's ``statistics``,
keywords, the expected keywords' coverage), and the bad requests both refuse."""

from __future__ import annotations

import base64
import importlib
import random
import statistics
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.test_interview_results_api import Api, add_job, fields_named

SCORE_FIELDS = ("overall", "logic", "relevance", "technical", "communication")


@pytest.fixture
def api(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> Api:
    return Api(load_function("interview_results"))


@pytest.fixture
def job_id(db_engine: Engine) -> int:
    return add_job(db_engine)


def interview(
    api: Api, job_id: int, applicant_id: int, status: str, results: list[dict[str, Any]]
) -> int:
    """A session of ``applicant_id`` for the job with ``results`` posted while it ran, then
    brought to ``status`` through the API (a pending session has no results)."""
    created = api("POST", "/interviews", {"applicant_id": applicant_id, "job_id": job_id})
    assert created.status == 201, created.body
    interview_id = int(created.body["id"])
    if status != "pending":
        assert api("PATCH", f"/interviews/{interview_id}", {"status": "in_progress"}).status == 200
    for question_id, result in enumerate(results, start=1):
        posted = api(
            "POST", f"/interviews/{interview_id}/results", {"question_id": question_id, **result}
        )
        assert posted.status == 201, posted.body
    if status in ("completed", "failed"):
        assert api("PATCH", f"/interviews/{interview_id}", {"status": status}).status == 200
    return interview_id


def scored(overall: float | None, **components: float) -> dict[str, Any]:
    return {"overall_score": overall, **{f"{name}_score": v for name, v in components.items()}}


def all_pages(api: Api, job_id: int, limit: int) -> list[list[dict[str, Any]]]:
    pages = []
    query: dict[str, str] = {"limit": str(limit)}
    while True:
        answer = api("GET", f"/jobs/{job_id}/applicants", query=query)
        assert answer.status == 200, answer.body
        pages.append(answer.body["applicants"])
        if answer.body["next"] is None:
            return pages
        query = {"limit": str(limit), "after": answer.body["next"]}


# --- applicants: the ranking -------------------------------------------------------------


def test_applicants_are_ranked_by_average_with_ties_by_id_across_page_boundaries(
    api: Api, job_id: int
) -> None:
    # Given applicants whose averages tie three ways (ids out of order), and one without a
    # completed session
    averages = {50: [90.0], 31: [80.0, 80.0], 12: [70.0, 90.0], 27: [85.0, 75.0], 40: [60.0]}
    for applicant, overall_scores in averages.items():
        interview(api, job_id, applicant, "completed", [scored(s) for s in overall_scores])
    interview(api, job_id, 5, "in_progress", [scored(99.0)])
    expected = [50, 12, 27, 31, 40, 5]

    # When the ranking is read in pages of every size, boundaries inside the tie included
    for limit in range(1, len(expected) + 2):
        pages = all_pages(api, job_id, limit)

        # Then the pages concatenate to the whole ranking: nobody skipped or repeated
        ranking = [row for page in pages for row in page]
        assert [row["applicant_id"] for row in ranking] == expected, limit
        assert [row["rank"] for row in ranking] == list(range(1, len(expected) + 1))
        assert all(len(page) <= limit for page in pages)
        assert len(pages) == max(1, -(-len(expected) // limit))

    first = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert [row["average_overall_score"] for row in first] == [90.0, 80.0, 80.0, 80.0, 60.0, None]


def test_a_page_boundary_holds_while_the_ranking_changes_between_pages(
    api: Api, job_id: int
) -> None:
    # Given four tied applicants and a first page of two
    for applicant in (1, 2, 3, 4):
        interview(api, job_id, applicant, "completed", [scored(75.0)])
    first = api("GET", f"/jobs/{job_id}/applicants", query={"limit": "2"}).body
    assert [row["applicant_id"] for row in first["applicants"]] == [1, 2]

    # When someone new ranks before the boundary, and then the next page is read
    interview(api, job_id, 1000, "completed", [scored(95.0)])
    following = api(
        "GET", f"/jobs/{job_id}/applicants", query={"limit": "2", "after": first["next"]}
    ).body

    # Then it continues right after applicant 2, numbered after the page the caller has seen
    assert [row["applicant_id"] for row in following["applicants"]] == [3, 4]
    assert [row["rank"] for row in following["applicants"]] == [3, 4]
    assert following["next"] is None


def test_pending_and_failed_sessions_are_counted_but_not_averaged(api: Api, job_id: int) -> None:
    # Given one applicant with a session in every state (results where a state allows them)
    done = interview(
        api,
        job_id,
        7,
        "completed",
        [scored(80.0, logic=70.0, technical=90.0), scored(90.0, logic=80.0)],
    )
    interview(api, job_id, 7, "failed", [scored(10.0, logic=10.0, relevance=10.0)])
    running = interview(api, job_id, 7, "in_progress", [scored(20.0, communication=20.0)])
    interview(api, job_id, 7, "pending", [])

    # When the job's applicants are read
    (row,) = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]

    # Then all four sessions count, but only the completed one's results are averaged
    assert row["sessions"] == 4
    assert row["completed_sessions"] == 1
    assert row["results"] == 2
    assert row["average_overall_score"] == 85.0
    assert row["average_scores"] == {
        "logic": 75.0,
        "relevance": None,
        "technical": 90.0,
        "communication": None,
    }
    assert row["last_completed_at"] == api("GET", f"/interviews/{done}").body["completed_at"]

    # And when the running session completes, its results join the average
    assert api("PATCH", f"/interviews/{running}", {"status": "completed"}).status == 200
    (row,) = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert row["completed_sessions"] == 2
    assert row["results"] == 3
    assert row["average_overall_score"] == pytest.approx((80 + 90 + 20) / 3)
    assert row["average_scores"]["communication"] == 20.0
    assert row["last_completed_at"] == api("GET", f"/interviews/{running}").body["completed_at"]


def test_applicants_without_a_completed_session_follow_with_null_averages(
    api: Api, job_id: int
) -> None:
    interview(api, job_id, 9, "pending", [])
    interview(api, job_id, 3, "failed", [scored(100.0)])
    interview(api, job_id, 6, "completed", [scored(1.0)])
    interview(api, job_id, 4, "completed", [])  # completed, nothing analysed yet

    rows = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]

    assert [row["applicant_id"] for row in rows] == [6, 3, 4, 9]
    for row in rows[1:]:
        assert row["average_overall_score"] is None
        assert set(row["average_scores"].values()) == {None}
    assert rows[1]["last_completed_at"] is None  # failed is not completed
    assert rows[2]["last_completed_at"] is not None


def test_a_later_post_replacing_a_result_moves_the_applicant(api: Api, job_id: int) -> None:
    first = interview(api, job_id, 1, "completed", [scored(60.0)])
    interview(api, job_id, 2, "completed", [scored(70.0)])
    assert api("GET", f"/jobs/{job_id}/applicants").body["applicants"][0]["applicant_id"] == 2

    replaced = api("POST", f"/interviews/{first}/results", {"question_id": 1, **scored(99.0)})

    assert replaced.status == 200
    rows = api("GET", f"/jobs/{job_id}/applicants").body["applicants"]
    assert [(row["applicant_id"], row["average_overall_score"]) for row in rows] == [
        (1, 99.0),
        (2, 70.0),
    ]


def test_a_job_taken_out_of_search_still_answers_and_an_unknown_job_is_404(
    api: Api, db_engine: Engine, job_id: int
) -> None:
    interview(api, job_id, 1, "completed", [scored(70.0)])
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET deleted_at = timezone('utc', now()) WHERE id = :id"),
            {"id": job_id},
        )

    applicants = api("GET", f"/jobs/{job_id}/applicants")
    insights = api("GET", f"/jobs/{job_id}/insights")

    assert applicants.status == 200
    assert [row["applicant_id"] for row in applicants.body["applicants"]] == [1]
    assert insights.status == 200
    assert insights.body["results"] == 1
    for path in ("/jobs/999/applicants", "/jobs/999/insights", "/jobs/0/insights"):
        missing = api("GET", path)
        assert missing.status == 404, path
        assert missing.body["error"]["code"] == "not_found"
    assert api("GET", "/jobs/99999999999/applicants").status == 404


def test_a_job_without_interviews_has_an_empty_ranking(api: Api, job_id: int) -> None:
    answer = api("GET", f"/jobs/{job_id}/applicants")

    assert answer.status == 200
    assert answer.body == {"job_id": job_id, "applicants": [], "next": None}


# --- applicants: bad requests ------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", ""])
def test_limit_outside_1_to_100_is_422_naming_limit(api: Api, job_id: int, limit: str) -> None:
    answer = api("GET", f"/jobs/{job_id}/applicants", query={"limit": limit})

    assert answer.status == 422, answer.body
    assert fields_named(answer) == {"limit"}


def _next_cursor(api: Api, job_id: int) -> str:
    answer = api("GET", f"/jobs/{job_id}/applicants", query={"limit": "1"})
    cursor = answer.body["next"]
    assert isinstance(cursor, str)
    return cursor


def _flip(cursor: str, index: int) -> str:
    replacement = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + replacement + cursor[index + 1 :]


def test_malformed_tampered_or_foreign_cursors_are_422_naming_after(
    api: Api, db_engine: Engine, job_id: int
) -> None:
    for applicant in (1, 2, 3):
        interview(api, job_id, applicant, "completed", [scored(50.0 + applicant)])
    other_job = add_job(db_engine)
    for applicant in (1, 2):
        interview(api, other_job, applicant, "completed", [scored(60.0)])
    cursor = _next_cursor(api, job_id)
    payload = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    forged_rank = payload.replace(b",1]", b",2]")  # without fixing the checksum
    assert forged_rank != payload

    bad = {
        "garbage": "not-a-cursor",
        "not base64": "%%%%",
        "truncated": cursor[:-3],
        "one character changed": _flip(cursor, len(cursor) // 2),
        "payload edited": base64.urlsafe_b64encode(forged_rank).decode().rstrip("="),
        "empty JSON": base64.urlsafe_b64encode(b"[]" + b"\0" * 8).decode(),
        "too long": cursor * 10,
    }
    for name, after in bad.items():
        answer = api("GET", f"/jobs/{job_id}/applicants", query={"after": after})
        assert answer.status == 422, (name, answer.body)
        assert fields_named(answer) == {"after"}, name

    foreign = api(
        "GET", f"/jobs/{job_id}/applicants", query={"after": _next_cursor(api, other_job)}
    )
    assert foreign.status == 422
    assert f"job {other_job}'s applicants, not job {job_id}'s" in foreign.body["error"]["message"]

    # and the untouched cursor still works
    assert api("GET", f"/jobs/{job_id}/applicants", query={"after": cursor}).status == 200


def test_unknown_query_parameters_are_422(api: Api, job_id: int) -> None:
    misspelt = api("GET", f"/jobs/{job_id}/applicants", query={"limt": "5"})
    assert misspelt.status == 422
    assert fields_named(misspelt) == {"limt"}
    assert api("GET", f"/jobs/{job_id}/insights", query={"top": "5"}).status == 422


# --- insights ----------------------------------------------------------------------------


def _insert_results(engine: Engine, job_id: int, rows: list[dict[str, Any]]) -> None:
    """Results in completed sessions of one applicant each, written by SQL (the triggers keep
    the aggregates whatever writes the rows)."""
    with engine.begin() as connection:
        for applicant_id, row in enumerate(rows, start=1):
            interview_id = connection.execute(
                text(
                    "INSERT INTO interview_sessions (applicant_id, job_id, status, completed_at)"
                    " VALUES (:applicant, :job, 'completed', timezone('utc', now()))"
                    " RETURNING id"
                ),
                {"applicant": applicant_id, "job": job_id},
            ).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO interview_results (interview_id, question_id, overall_score,"
                    " logic_score, relevance_score, technical_score, communication_score,"
                    " keywords) VALUES (:interview, :question, :overall, :logic, :relevance,"
                    " :technical, :communication, CAST(:keywords AS jsonb))"
                ),
                {
                    "interview": interview_id,
                    "question": row.get("question_id", 1),
                    "keywords": row.get("keywords"),
                    **{name: row.get(name) for name in SCORE_FIELDS},
                },
            )


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 333])
def test_score_statistics_agree_with_pythons_statistics(
    api: Api, db_engine: Engine, job_id: int, count: int
) -> None:
    # Given scores with repeats, decimals and nulls
    rng = random.Random(count)
    rows = [
        {
            "overall": rng.choice([round(rng.uniform(0, 100), 3), 70.0, 85.5, 100.0, 0.0]),
            "logic": rng.choice([None, rng.randint(0, 100) / 10 * 10, 33.3]),
            "relevance": rng.uniform(0, 100),
            "technical": None,
            "communication": 0.1 * rng.randint(0, 1000),
        }
        for _ in range(count)
    ]
    _insert_results(db_engine, job_id, rows)

    # When the job's insights are read
    answer = api("GET", f"/jobs/{job_id}/insights")

    # Then each score's statistics are Python's on the same data, nulls skipped
    assert answer.status == 200, answer.body
    for name in SCORE_FIELDS:
        values = [float(value) for row in rows if (value := row[name]) is not None]
        got = answer.body["scores"][name]
        assert got["count"] == len(values), name
        if not values:
            assert got == {"count": 0, "mean": None, "p25": None, "median": None, "p75": None}
            continue
        assert got["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-12)
        assert got["median"] == statistics.median(values), name
        if len(values) >= 2:
            p25, _, p75 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            p25 = p75 = values[0]
        assert (got["p25"], got["p75"]) == (p25, p75), name

    # and the database read exactly the order statistics those formulas need, no more
    insights = importlib.import_module("flex_interviews.insights")
    store = importlib.import_module("flex_interviews.store")
    with db_engine.connect() as connection:
        read = store.job_insights(connection, job_id, 20).order_statistics
    for name in SCORE_FIELDS:
        expected = insights.quartile_positions(answer.body["scores"][name]["count"])
        assert sorted(read[name]) == expected, name


def test_insights_count_every_session_and_result_of_the_job(api: Api, job_id: int) -> None:
    interview(api, job_id, 1, "completed", [scored(80.0), scored(60.0)])
    interview(api, job_id, 2, "failed", [scored(10.0)])
    interview(api, job_id, 2, "in_progress", [scored(30.0)])
    interview(api, job_id, 3, "pending", [])
    interview(api, job_id, 4, "pending", [])

    body = api("GET", f"/jobs/{job_id}/insights").body

    assert body["sessions"] == {"pending": 2, "in_progress": 1, "completed": 1, "failed": 1}
    assert body["results"] == 4
    assert body["scores"]["overall"]["count"] == 4
    assert body["scores"]["overall"]["mean"] == 45.0
    assert body["scores"]["logic"]["count"] == 0


def test_a_job_without_interviews_has_zero_counts_and_null_statistics(
    api: Api, job_id: int
) -> None:
    answer = api("GET", f"/jobs/{job_id}/insights")

    assert answer.status == 200
    empty = {"count": 0, "mean": None, "p25": None, "median": None, "p75": None}
    assert answer.body == {
        "job_id": job_id,
        "sessions": {"pending": 0, "in_progress": 0, "completed": 0, "failed": 0},
        "results": 0,
        "scores": {name: empty for name in SCORE_FIELDS},
        "top_keywords": [],
        "expected_keyword_coverage": None,
    }


def test_keywords_are_counted_case_insensitively_once_per_result(api: Api, job_id: int) -> None:
    # Given results naming the same keywords in different cases, some twice in one result
    interview(
        api,
        job_id,
        1,
        "completed",
        [
            {"keywords": {"technical": ["Python", "python", "Django"], "soft": ["Teamwork"]}},
            {"keywords": {"technical": ["PYTHON", "FastAPI"], "Soft": ["teamwork"]}},
        ],
    )
    interview(api, job_id, 2, "in_progress", [{"keywords": {"technical": ["pyThon", "django"]}}])

    keywords = api("GET", f"/jobs/{job_id}/insights").body["top_keywords"]

    # Then each is counted once per result that mentions it, whatever its case
    assert keywords == [
        {"category": "soft", "keyword": "teamwork", "count": 2},
        {"category": "technical", "keyword": "python", "count": 3},
        {"category": "technical", "keyword": "django", "count": 2},
        {"category": "technical", "keyword": "fastapi", "count": 1},
    ]


def test_only_the_20_most_frequent_keywords_of_each_category_are_listed(
    api: Api, job_id: int
) -> None:
    # Given 25 keywords: keyword k mentioned in k results (k = 1..25), and ties at the cut
    results = [
        {"keywords": {"skills": [f"kw{k:02d}" for k in range(1, 26) if k >= i] + ["tie-b"]}}
        for i in range(1, 26)
    ]
    results[0]["keywords"]["skills"].append("tie-a")
    results[1]["keywords"]["skills"].append("tie-a")
    interview(api, job_id, 1, "completed", results)

    keywords = api("GET", f"/jobs/{job_id}/insights").body["top_keywords"]

    names = [k["keyword"] for k in keywords]
    counts = [k["count"] for k in keywords]
    assert names[:2] == ["kw25", "tie-b"]  # 25 results each: ties by keyword
    assert len(keywords) == 20
    assert counts == sorted(counts, reverse=True)
    assert names[-1] == "kw07"
    assert "tie-a" not in names


def _question(api: Api, job_id: int | None, expected: Any) -> int:
    body: dict[str, Any] = {"job_id": job_id, "question_type": "technical", "question_text": "Q?"}
    if expected is not None:
        body["expected_keywords"] = expected
    created = api("POST", "/questions", body)
    assert created.status == 201, created.body
    return int(created.body["id"])


def _results_for(api: Api, job_id: int, answers: list[tuple[int, dict[str, list[str]]]]) -> None:
    session = interview(api, job_id, 1, "in_progress", [])
    for question_id, keywords in answers:
        posted = api(
            "POST",
            f"/interviews/{session}/results",
            {"question_id": question_id, "keywords": keywords},
        )
        assert posted.status == 201, posted.body


def test_coverage_is_null_when_no_question_has_expected_keywords(api: Api, job_id: int) -> None:
    plain = _question(api, job_id, None)
    empty = _question(api, None, [])
    _results_for(api, job_id, [(plain, {"t": ["Python"]}), (empty, {"t": ["Go"]}), (9999, {})])

    body = api("GET", f"/jobs/{job_id}/insights").body

    assert body["results"] == 3
    assert body["expected_keyword_coverage"] is None


def test_coverage_is_the_mean_share_of_expected_keywords_found(api: Api, job_id: int) -> None:
    # Given questions expecting keywords (a list, an object of lists) and results answering them
    listed = _question(api, job_id, ["Python", "Django", "REST"])
    grouped = _question(api, None, {"must": ["SQL"], "nice": ["Indexes", "sql"]})
    unrelated = _question(api, job_id, None)
    _results_for(
        api,
        job_id,
        [
            (listed, {"technical": ["python", "DJANGO"], "soft": ["Python"]}),  # 2/3
            (grouped, {"technical": ["Sql", "indexes"]}),  # 2/2
            (unrelated, {"technical": ["Python"]}),  # not counted
            (4242, {"technical": ["SQL"]}),  # no such question: not counted
        ],
    )
    second = interview(api, job_id, 2, "in_progress", [])
    posted = api("POST", f"/interviews/{second}/results", {"question_id": listed, "keywords": {}})
    assert posted.status == 201  # 0/3

    coverage = api("GET", f"/jobs/{job_id}/insights").body["expected_keyword_coverage"]

    assert coverage == pytest.approx((2 / 3 + 1 + 0) / 3)
