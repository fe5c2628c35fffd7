"""Hiring insights at realistic volume: ``GET /jobs/{job_id}/applicants`` and
``GET /jobs/{job_id}/insights`` for a job with 10,000 sessions and 100,000 results, through the
interview function's handler (warm container), on the embedded database.

    python -m bench.bench_insights              # 10,000 sessions, 100,000 results (built once)
    python -m bench.bench_insights --quick      # 1,000 sessions, 10,000 results

The data is generated in SQL with the triggers off, and the aggregates are built from their
views as migration 0004 backfills a database (the tests prove the triggers keep them equal to
those views); what the triggers cost per request is measured by posting results to the big job.
Three other jobs hold 10,000 results each: "all results of all jobs" is more than the measured
job's. Besides the
latency, it records ``EXPLAIN (ANALYZE, BUFFERS)`` of every statement each route runs, and
checks that none reads ``interview_results`` or ``interview_sessions`` or scans a table; for
contrast it times the same answers computed directly from the job's results. Writes
bench/results/insights.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from bench import bench_db
from bench.output import RESULTS_DIR, write_json
from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured

RESULT_FILE = RESULTS_DIR / "insights.json"
GOAL_P95_MS = 50.0
POSTED_QUESTION_IDS = 100_000_000
"""The benchmark's own posts use question ids from here on, and are deleted at the end."""
QUESTIONS_PER_JOB = 40
QUESTIONS_WITH_EXPECTED_KEYWORDS = 15
OTHER_JOBS = 3

_TECH_HEAD = [
    "Python",
    "Java",
    "Kotlin",
    "Go",
    "TypeScript",
    "JavaScript",
    "React",
    "Vue",
    "Spring",
    "Django",
    "FastAPI",
    "Flask",
    "SQL",
    "PostgreSQL",
    "MySQL",
    "Redis",
    "Kafka",
    "Docker",
    "Kubernetes",
    "AWS",
    "GCP",
    "Terraform",
    "Airflow",
    "Spark",
    "Pandas",
    "PyTorch",
    "TensorFlow",
    "GraphQL",
    "REST",
    "gRPC",
    "Linux",
    "Git",
    "CI/CD",
    "Jenkins",
    "Prometheus",
    "Grafana",
    "Elasticsearch",
    "MongoDB",
    "DynamoDB",
    "Lambda",
]
_SOFT_HEAD = [
    "teamwork",
    "communication",
    "leadership",
    "ownership",
    "curiosity",
    "소통",
    "협업",
    "책임감",
    "리더십",
    "문제해결",
]
_DOMAIN_HEAD = [
    "fintech",
    "e-commerce",
    "healthcare",
    "security",
    "payments",
    "채용",
    "물류",
    "게임",
    "광고",
    "교육",
]


def _vocabulary(head: list[str], size: int, stem: str) -> list[str]:
    return head + [f"{stem}-{n}" for n in range(size - len(head))]


TECHNICAL = _vocabulary(_TECH_HEAD, 1500, "library")
SOFT = _vocabulary(_SOFT_HEAD, 200, "trait")
DOMAIN = _vocabulary(_DOMAIN_HEAD, 500, "domain")


@dataclass(frozen=True)
class Scale:
    sessions: int
    results: int
    applicants: int

    @property
    def title(self) -> str:
        return f"bench-insights {self.sessions} sessions {self.results} results"


# -- data -------------------------------------------------------------------------------------

_KEYWORDS_SQL = """
jsonb_build_object(
    'technical', (SELECT jsonb_agg(
        CASE WHEN random() < 0.2 THEN upper(w) WHEN random() < 0.4 THEN lower(w) ELSE w END)
        FROM (SELECT (CAST(:technical AS text[]))[1 + floor(:n_technical * random() ^ 3)::int]
              FROM generate_series(1, 1 + mod(k + s.n, 4))) AS t(w)),
    'soft_skills', (SELECT jsonb_agg(w)
        FROM (SELECT (CAST(:soft AS text[]))[1 + floor(:n_soft * random() ^ 2)::int]
              FROM generate_series(1, 1 + mod(k + s.n, 2))) AS t(w)),
    'domain', (SELECT jsonb_agg(w)
        FROM (SELECT (CAST(:domain AS text[]))[1 + floor(:n_domain * random() ^ 2)::int]
              FROM generate_series(1, 1 + mod(k, 2))) AS t(w)))
"""


def _score_sql() -> str:
    return "round(least(100, greatest(0, random_normal(72, 12)))::numeric, 1)::float8"


def _insert_job(connection: Connection, scale: Scale, seed: float) -> tuple[int, int]:
    """The job, its question templates (15 of 40 with expected keywords) and its sessions (the
    first 10% pending, the others running); the job id and its first question id."""
    connection.execute(text("SELECT setseed(:seed)"), {"seed": seed})
    job_id = int(
        connection.execute(
            text(
                "INSERT INTO jobs (company_id, title, description)"
                " VALUES (1, :title, 'bench') RETURNING id"
            ),
            {"title": scale.title},
        ).scalar_one()
    )
    first_question = min(
        connection.execute(
            text(
                """
INSERT INTO questions (job_id, question_type, question_text, expected_keywords)
SELECT :job, 'technical', 'Bench question ' || q,
       CASE WHEN q <= :with_expected THEN to_jsonb(ARRAY[
           (CAST(:technical AS text[]))[1 + q], (CAST(:technical AS text[]))[2 + q],
           (CAST(:technical AS text[]))[3 + 2 * q]]) END
FROM generate_series(1, :questions) AS q
RETURNING id"""
            ),
            {
                "job": job_id,
                "with_expected": QUESTIONS_WITH_EXPECTED_KEYWORDS,
                "questions": QUESTIONS_PER_JOB,
                "technical": _TECH_HEAD,
            },
        )
        .scalars()
        .all()
    )
    connection.execute(
        text(
            """
INSERT INTO interview_sessions (applicant_id, job_id, status, started_at)
SELECT 1 + floor(random() * :applicants)::int, :job,
       CAST(CASE WHEN g <= :pending THEN 'pending' ELSE 'in_progress' END AS interview_status),
       CASE WHEN g > :pending THEN timezone('utc', now()) END
FROM generate_series(1, :sessions) AS g"""
        ),
        {
            "applicants": scale.applicants,
            "job": job_id,
            "pending": scale.sessions // 10,
            "sessions": scale.sessions,
        },
    )
    return job_id, first_question


def load_job(connection: Connection, scale: Scale, seed: float) -> int:
    """One job with ``scale.sessions`` sessions (10% pending, 70% completed, 10% failed, 10%
    still running) and ``scale.results`` results in the non-pending ones. Returns the job id."""
    job_id, first_question = _insert_job(connection, scale, seed)
    running = scale.sessions - scale.sessions // 10
    per_session, extra = divmod(scale.results, running)
    score = _score_sql()
    connection.execute(
        text(
            f"""
INSERT INTO interview_results (interview_id, job_id, question_id, logic_score, relevance_score,
    technical_score, communication_score, overall_score, keywords)
SELECT s.id, :job, :first_question + mod(s.id * 7 + k * 13, :questions),
       sc.l, sc.r, sc.t, sc.c, (sc.l + sc.r + sc.t + sc.c) / 4, {_KEYWORDS_SQL}
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM interview_sessions
      WHERE job_id = :job AND status = 'in_progress') AS s
CROSS JOIN LATERAL generate_series(0, :per_session - 1 + CASE WHEN s.n <= :extra THEN 1 ELSE 0 END)
    AS k
CROSS JOIN LATERAL (SELECT {score} AS l, {score} AS r, {score} AS t, {score} AS c
                    WHERE k >= 0) AS sc"""
        ),
        {
            "job": job_id,
            "first_question": first_question,
            "questions": QUESTIONS_PER_JOB,
            "per_session": per_session,
            "extra": extra,
            "technical": TECHNICAL,
            "n_technical": len(TECHNICAL),
            "soft": SOFT,
            "n_soft": len(SOFT),
            "domain": DOMAIN,
            "n_domain": len(DOMAIN),
        },
    )
    # 70% of all sessions end completed, 10% failed, the last 10% stay running.
    connection.execute(
        text(
            """
UPDATE interview_sessions AS u
SET status = CAST(CASE WHEN s.n <= :completed THEN 'completed' ELSE 'failed' END
                  AS interview_status),
    completed_at = CASE WHEN s.n <= :completed THEN timezone('utc', now())
                        - make_interval(mins => CAST(s.n AS integer)) END
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM interview_sessions
      WHERE job_id = :job AND status = 'in_progress') AS s
WHERE u.id = s.id AND s.n <= :ended"""
        ),
        {
            "job": job_id,
            "completed": scale.sessions * 7 // 10,
            "ended": scale.sessions * 8 // 10,
        },
    )
    return job_id


AGGREGATE_TABLES = (
    "job_applicant_stats",
    "job_score_counts",
    "job_keyword_counts",
    "job_question_counts",
    "job_question_keyword_counts",
)


def rebuild_aggregates(connection: Connection) -> None:
    """Every aggregate from its ``*_computed`` view, as migration 0004 backfills a database."""
    for table in AGGREGATE_TABLES:
        columns = ", ".join(
            connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = :view ORDER BY ordinal_position"
                ),
                {"view": f"{table}_computed"},
            ).scalars()
        )
        connection.execute(text(f"TRUNCATE {table}"))
        connection.execute(
            text(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_computed")
        )


def ensure_data(engine: Engine, scale: Scale) -> tuple[int, dict[str, Any]]:
    """The measured job (built once per scale and reused), and how the load went."""
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT j.id, (SELECT count(*) FROM interview_results r WHERE r.job_id = j.id)"
                " FROM jobs AS j WHERE j.title = :title"
            ),
            {"title": scale.title},
        ).first()
    if found is not None and found[1] == scale.results:
        return int(found[0]), {"reused": True}
    with engine.begin() as connection:
        connection.execute(
            text("TRUNCATE interview_results, interview_sessions, questions, jobs CASCADE")
        )
    # Generated with the triggers off (one INSERT ... SELECT per table), then every aggregate
    # built from its view, as the migration backfills an existing database: minutes of
    # per-row triggers saved. Tests prove the triggers keep the tables equal to the views;
    # the writes below measure what they cost per request.
    started = time.perf_counter()
    other = Scale(scale.sessions // 10, scale.results // 10, scale.applicants // 10)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for n in range(OTHER_JOBS):
            load_job(connection, other, seed=0.1 * (n + 1))
        job_id = load_job(connection, scale, seed=0.5)
    generated = time.perf_counter()
    with engine.begin() as connection:
        rebuild_aggregates(connection)
    rebuilt = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return job_id, {
        "reused": False,
        "generate_seconds": round(generated - started, 1),
        "aggregates_from_views_seconds": round(rebuilt - generated, 1),
    }


def describe_data(engine: Engine, job_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(
            text(
                """
SELECT (SELECT count(*) FROM interview_sessions WHERE job_id = :job),
       (SELECT count(*) FROM interview_results WHERE job_id = :job),
       (SELECT count(*) FROM interview_results),
       (SELECT count(*) FROM job_applicant_stats WHERE job_id = :job),
       (SELECT count(*) FROM job_score_counts WHERE job_id = :job),
       (SELECT count(*) FROM job_keyword_counts WHERE job_id = :job),
       (SELECT count(*) FROM job_question_keyword_counts WHERE job_id = :job)"""
            ),
            {"job": job_id},
        ).one()
    names = (
        "sessions",
        "results",
        "results_all_jobs",
        "applicants",
        "distinct_score_values",
        "distinct_keywords",
        "question_keyword_rows",
    )
    return dict(zip(names, (int(value) for value in row), strict=True))


# -- measuring --------------------------------------------------------------------------------


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[math.ceil(len(ordered) * 0.95) - 1], 2),  # nearest rank
        "max_ms": round(ordered[-1], 2),
    }


class StatementLog:
    """The statements (and parameters) an engine runs while active."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def explain(engine: Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of each query among ``statements``, and what it reads."""
    plans = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = [row[0] for row in cursor.fetchall()]
            joined = "\n".join(plan)
            plans.append(
                {
                    "statement": " ".join(statement.split())[:160],
                    "plan": plan,
                    "reads_results_or_sessions": "interview_results" in joined
                    or "interview_sessions" in joined,
                    # a small aggregate table, or one mostly of this job, may be read whole
                    "sequentially_scanned": sorted(set(re.findall(r"Seq Scan on (\w+)", joined))),
                }
            )
        raw.rollback()
    finally:
        raw.close()
    return plans


DIRECT_APPLICANTS = """
SELECT s.applicant_id, avg(r.overall_score) FILTER (WHERE s.status = 'completed') AS average
FROM interview_sessions AS s LEFT JOIN interview_results AS r ON r.interview_id = s.id
WHERE s.job_id = :job GROUP BY s.applicant_id
ORDER BY average DESC NULLS LAST, s.applicant_id LIMIT 20"""
DIRECT_INSIGHTS = """
SELECT count(r.overall_score), avg(r.overall_score),
       percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY r.overall_score)
FROM interview_results AS r JOIN interview_sessions AS s ON s.id = r.interview_id
WHERE s.job_id = :job"""


def time_direct(engine: Engine, job_id: int, repeats: int) -> dict[str, float]:
    """The same answers computed from the job's results (one score, one page): what the
    aggregates save."""
    timings: dict[str, list[float]] = {"applicants_page": [], "overall_score_quartiles": []}
    with engine.connect() as connection:
        for _ in range(repeats):
            for name, sql in (
                ("applicants_page", DIRECT_APPLICANTS),
                ("overall_score_quartiles", DIRECT_INSIGHTS),
            ):
                started = time.perf_counter()
                connection.execute(text(sql), {"job": job_id}).all()
                timings[name].append((time.perf_counter() - started) * 1000)
    return {f"{name}_median_ms": round(statistics.median(v), 1) for name, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sessions, 10,000 results")
    parser.add_argument("--requests", type=int, default=300, help="requests per route")
    args = parser.parse_args()
    scale = Scale(1_000, 10_000, 400) if args.quick else Scale(10_000, 100_000, 4_000)
    requests = min(args.requests, 60) if args.quick else args.requests

    url = bench_db.ensure_database("bench_insights")
    engine = bench_db.engine_for(url)
    job_id, load = ensure_data(engine, scale)
    data = describe_data(engine, job_id)
    print(f"job {job_id}: {json.dumps(data)}; load {json.dumps(load)}", flush=True)

    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "interview_results")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    timings: dict[str, list[float]] = {}
    with layer_configured(url):
        from flex_shared import db

        app = load_function("interview_results")
        context = FakeLambdaContext(function_name="interview_results")

        def call(route: str | None, event: dict[str, Any]) -> dict[str, Any]:
            started = time.perf_counter()
            response = app.lambda_handler(event, context)
            if route is not None:
                timings.setdefault(route, []).append((time.perf_counter() - started) * 1000)
            assert response["statusCode"] in (200, 201), response
            return json.loads(response["body"])  # type: ignore[no-any-return]

        applicants_path = f"/jobs/{job_id}/applicants"
        insights_path = f"/jobs/{job_id}/insights"
        # Walk the whole ranking once (warms the container): every page's cursor.
        cursors: list[str] = []
        page = call(None, rest_event("GET", applicants_path, query={"limit": "100"}))
        ranked = len(page["applicants"])
        while page["next"] is not None:
            cursors.append(page["next"])
            page = call(
                None,
                rest_event("GET", applicants_path, query={"limit": "100", "after": page["next"]}),
            )
            ranked += len(page["applicants"])
        assert ranked == data["applicants"], (ranked, data)
        call(None, rest_event("GET", insights_path))

        # Interleaved: first page, a random page (a cursor anywhere in the ranking), insights.
        rng = random.Random(18)
        for _ in range(requests):
            call("applicants, first page (limit 20)", rest_event("GET", applicants_path))
            call(
                "applicants, any page (limit 100, cursor)",
                rest_event(
                    "GET", applicants_path, query={"limit": "100", "after": rng.choice(cursors)}
                ),
            )
            call("insights", rest_event("GET", insights_path))

        # Writes on the big job: the triggers' cost does not grow with the job.
        with engine.connect() as connection:
            completed = (
                connection.execute(
                    text(
                        "SELECT id FROM interview_sessions WHERE job_id = :job"
                        " AND status = 'completed' ORDER BY id LIMIT :n"
                    ),
                    {"job": job_id, "n": min(requests, 100)},
                )
                .scalars()
                .all()
            )
        for interview_id in completed:
            call(
                "POST /interviews/{id}/results (new result, completed session)",
                rest_event(
                    "POST",
                    f"/interviews/{interview_id}/results",
                    {
                        "question_id": POSTED_QUESTION_IDS + rng.randint(0, 1_000_000),
                        "logic_score": round(rng.uniform(40, 100), 1),
                        "relevance_score": round(rng.uniform(40, 100), 1),
                        "technical_score": round(rng.uniform(40, 100), 1),
                        "communication_score": round(rng.uniform(40, 100), 1),
                        "keywords": {"technical": rng.sample(TECHNICAL[:200], 3)},
                    },
                ),
            )

        layer_engine = db.get_engine()
        with StatementLog(layer_engine) as log:
            call(None, rest_event("GET", applicants_path))
            call(
                None,
                rest_event(
                    "GET",
                    applicants_path,
                    query={"limit": "100", "after": cursors[len(cursors) // 2]},
                ),
            )
            call(None, rest_event("GET", insights_path))
        plans = explain(layer_engine, log.statements)

    direct = time_direct(engine, job_id, repeats=5)
    with engine.begin() as connection:  # the posted results go (the triggers count them out)
        connection.execute(
            text("DELETE FROM interview_results WHERE job_id = :job AND question_id >= :first"),
            {"job": job_id, "first": POSTED_QUESTION_IDS},
        )
    engine.dispose()
    routes: list[dict[str, Any]] = [
        {"route": route, **_percentiles(samples)} for route, samples in timings.items()
    ]
    reads_only_aggregates = not any(plan["reads_results_or_sessions"] for plan in plans)
    reads = [route for route in routes if not route["route"].startswith("POST")]
    result = {
        "scale": {"sessions": scale.sessions, "results": scale.results},
        "data": data,
        "load": load,
        "routes": routes,
        "goal_p95_ms": GOAL_P95_MS,
        "meets_goal": all(route["p95_ms"] <= GOAL_P95_MS for route in reads),
        "direct_from_results": direct,
        "plans_read_only_aggregates": reads_only_aggregates,
        "plans": plans,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }

    width = max(len(route["route"]) for route in routes)
    print(f"{'route':<{width}}  {'n':>5}  {'p50 ms':>8}  {'p95 ms':>8}  {'max ms':>8}")
    for route in routes:
        print(
            f"{route['route']:<{width}}  {route['requests']:>5}  {route['p50_ms']:>8}"
            f"  {route['p95_ms']:>8}  {route['max_ms']:>8}"
        )
    print(f"goal: reads p95 <= {GOAL_P95_MS} ms: {'met' if result['meets_goal'] else 'NOT met'}")
    print(f"the same answers computed from the job's results: {json.dumps(direct)}")
    print("\nEXPLAIN (ANALYZE, BUFFERS) of every statement the two routes ran:")
    for plan in plans:
        print(f"\n-- {plan['statement']}")
        print("\n".join(plan["plan"]))
    print(f"\nno statement reads interview_results or interview_sessions: {reads_only_aggregates}")
    output = write_json(RESULT_FILE, result)
    print(f"written {output.relative_to(bench_db.REPO_ROOT)}")


if __name__ == "__main__":
    main()
