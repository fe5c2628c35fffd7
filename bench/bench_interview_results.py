"""Latency of the interview API's handler per route, warm container, on a real database.

    PYTHONPATH=layers/shared .venv/bin/python -m bench.bench_interview_results [--requests 200]

Prints a table (p50/p95/max in ms) and writes bench/results/interview_results.json. The
database is the benchmark server (see bench_db); the numbers include the handler, validation,
one transaction and the JSON answer, not API Gateway or the network to RDS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from typing import Any

from sqlalchemy import text

from bench import bench_db
from bench.output import RESULTS_DIR, write_json
from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured

FUNCTION_DIR = bench_db.REPO_ROOT / "functions" / "interview_results"


def _result(question_id: int) -> dict[str, Any]:
    return {
        "question_id": question_id,
        "question_text": "Tell me about your experience with Python",
        "stt_full_text": "I have been working with Python for 5 years... " * 40,
        "logic_score": 85.5,
        "relevance_score": 90.0,
        "technical_score": 88.0,
        "communication_score": 82.0,
        "keywords": {"technical": ["Python", "Django"], "soft_skills": ["teamwork"]},
        "strengths": ["Strong Python expertise"],
        "weaknesses": ["Limited async experience"],
        "ai_feedback": "Solid technical knowledge. " * 20,
        "metadata": {"stt_model": "whisper"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    n = args.requests

    url = bench_db.ensure_database("bench_interview_results")
    engine = bench_db.engine_for(url)
    with engine.begin() as connection:
        connection.execute(
            text("TRUNCATE interview_results, interview_sessions, questions, jobs CASCADE")
        )
        job_id = connection.scalar(
            text(
                "INSERT INTO jobs (company_id, title, description) VALUES (1, 'Bench', 'x')"
                " RETURNING id"
            )
        )

    timings: dict[str, list[float]] = {}
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "interview_results")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # one "result saved" per post
    with layer_configured(url):
        app = load_function("interview_results")

        def call(route: str, event: dict[str, Any], expect: int) -> dict[str, Any]:
            started = time.perf_counter()
            response = app.lambda_handler(
                event, FakeLambdaContext(function_name="interview_results")
            )
            timings.setdefault(route, []).append((time.perf_counter() - started) * 1000)
            assert response["statusCode"] == expect, response
            return json.loads(response["body"])  # type: ignore[no-any-return]

        app.lambda_handler(
            rest_event("GET", "/questions"), FakeLambdaContext(function_name="interview_results")
        )  # connect (warm container)
        created = call(
            "POST /interviews",
            rest_event("POST", "/interviews", {"applicant_id": 1, "job_id": job_id}),
            201,
        )
        interview = created["id"]
        call(
            "PATCH /interviews/{id}",
            rest_event("PATCH", f"/interviews/{interview}", {"status": "in_progress"}),
            200,
        )
        for i in range(n):
            call(
                "POST /interviews/{id}/results (insert)",
                rest_event("POST", f"/interviews/{interview}/results", _result(i)),
                201,
            )
        for i in range(n):
            call(
                "POST /interviews/{id}/results (replace)",
                rest_event("POST", f"/interviews/{interview}/results", _result(i)),
                200,
            )
        for i in range(n):
            call(
                "PATCH /interviews/{id}",
                rest_event("PATCH", f"/interviews/{interview}", {"current_question_index": i}),
                200,
            )
            call("GET /interviews/{id}", rest_event("GET", f"/interviews/{interview}"), 200)
        small = call(
            "POST /interviews",
            rest_event("POST", "/interviews", {"applicant_id": 2, "job_id": job_id}),
            201,
        )["id"]
        call(
            "PATCH /interviews/{id}",
            rest_event("PATCH", f"/interviews/{small}", {"status": "in_progress"}),
            200,
        )
        for i in range(20):
            call(
                "POST /interviews/{id}/results (insert)",
                rest_event("POST", f"/interviews/{small}/results", _result(i)),
                201,
            )
        for _ in range(min(n, 100)):
            call(
                "GET /interviews/{id}/results (20 results)",
                rest_event("GET", f"/interviews/{small}/results"),
                200,
            )
            call(
                f"GET /interviews/{{id}}/results ({n} results)",
                rest_event("GET", f"/interviews/{interview}/results"),
                200,
            )
        for i in range(n):
            question = call(
                "POST /questions",
                rest_event(
                    "POST",
                    "/questions",
                    {
                        "job_id": job_id,
                        "question_type": "technical",
                        "question_text": f"Q{i}",
                        "difficulty_level": 3,
                    },
                ),
                201,
            )
            call("GET /questions/{id}", rest_event("GET", f"/questions/{question['id']}"), 200)
            call(
                "GET /questions?job_id&question_type (limit 100)",
                rest_event(
                    "GET", "/questions", query={"job_id": str(job_id), "question_type": "technical"}
                ),
                200,
            )

    rows: list[dict[str, Any]] = []
    for route, samples in timings.items():
        ordered = sorted(samples)
        rows.append(
            {
                "route": route,
                "requests": len(samples),
                "p50_ms": round(statistics.median(ordered), 2),
                "p95_ms": round(ordered[math.ceil(len(ordered) * 0.95) - 1], 2),  # nearest rank
                "max_ms": round(ordered[-1], 2),
            }
        )
    width = max(len(row["route"]) for row in rows)
    print(f"{'route':<{width}}  {'n':>5}  {'p50 ms':>8}  {'p95 ms':>8}  {'max ms':>8}")
    for row in rows:
        print(
            f"{row['route']:<{width}}  {row['requests']:>5}  {row['p50_ms']:>8}"
            f"  {row['p95_ms']:>8}  {row['max_ms']:>8}"
        )
    output = write_json(RESULTS_DIR / "interview_results.json", {"requests": n, "routes": rows})
    print(f"written {output.relative_to(bench_db.REPO_ROOT)}")


if __name__ == "__main__":
    main()
