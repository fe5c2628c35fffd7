"""One-shot demo: start everything on temporary directories and free ports, ingest the
samples through S3 notifications, upload one more file, search in English and Korean, across
languages and for an exact skill, run an interview end to end over the local HTTP API, read the
sample interviews' applicants, insights and suggested questions, print it, stop everything.
Embeddings are the offline multilingual model (``EMBEDDING_PROVIDER=local``).

Every step checks what it got; any surprise raises ``DemoFailure`` (exit status 1)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from .system import LocalOptions, LocalSystem, list_jobs

ENGLISH_QUERY = "backend engineer with Python, PostgreSQL and AWS experience"
KOREAN_QUERY = "머신러닝 엔지니어 딥러닝 모델 개발"
CROSS_LINGUAL_QUERY = "machine learning engineer building recommendation models"
EXACT_SKILL_QUERY = "Appium"
# The sample each query must put first (the file name ends the S3 key).
ENGLISH_SAMPLE = "backend-engineer-en.md"
KOREAN_SAMPLE = "ml-engineer-ko.txt"
EXACT_SKILL_SAMPLE = "qa-engineer-cp949.txt"
UPLOADED_KEY = "jobs/77/site reliability engineer.txt"
UPLOADED_TEXT = (
    "Site Reliability Engineer\n\n"
    "Keep our Kubernetes clusters and PostgreSQL databases healthy. You automate incident "
    "response, tune observability (Prometheus, Grafana) and run game days.\n\n"
    "사이트 신뢰성 엔지니어: 쿠버네티스 클러스터 운영과 장애 대응 자동화를 담당합니다."
)


class DemoFailure(RuntimeError):
    """The system did not do what the demo expected."""


class ApiClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(  # noqa: S310 (the local API on 127.0.0.1)
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None

    def expect(self, method: str, path: str, body: Any, *statuses: int) -> Any:
        status, answer = self.call(method, path, body)
        if status not in statuses:
            raise DemoFailure(
                f"{method} {path} answered {status}, expected {'/'.join(map(str, statuses))}:"
                f" {json.dumps(answer, ensure_ascii=False)[:500]}"
            )
        return answer


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_results(say: Callable[[str], None], results: list[dict[str, Any]]) -> None:
    for rank, hit in enumerate(results, 1):
        say(
            f"    {rank}. score {hit['score']:.3f} sim {hit['similarity']:.3f}"
            f"  job {hit['job_id']} "
            f"(company {hit['company_id']}) {_short(hit['job_title'], 40)!r}"
            f" chunk {hit['chunk_index']}: {_short(hit['chunk_text'], 60)}"
        )


def _search(api: ApiClient, say: Callable[[str], None], body: dict[str, Any]) -> list[Any]:
    answer = api.expect("POST", "/search", body, 200)
    results: list[dict[str, Any]] = answer["results"]
    say(f"  POST /search {json.dumps(body, ensure_ascii=False)} -> {len(results)} results")
    _print_results(say, results)
    if not results:
        raise DemoFailure(f"search for {body['query']!r} found nothing")
    scores = [hit["score"] for hit in results]
    if scores != sorted(scores, reverse=True):
        raise DemoFailure("search results are not ordered best first")
    return results


def _expect_first(results: list[dict[str, Any]], job_ids: dict[str, int], sample: str) -> None:
    """The first result must come from ``sample`` (a file name under devtools/samples)."""
    expected = [job_id for key, job_id in job_ids.items() if key.endswith("/" + sample)]
    if results[0]["job_id"] not in expected:
        raise DemoFailure(
            f"expected the {sample} job first, got job {results[0]['job_id']}"
            f" ({results[0]['job_title']!r})"
        )


def _wait_for_job(system: LocalSystem, source_key: str, timeout_seconds: float = 30.0) -> int:
    """The job id of ``source_key`` once the notification bridge has ingested it."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for job in list_jobs(system.database_url):
            if job.source_key == source_key:
                return job.id
        time.sleep(0.2)
    raise DemoFailure(f"{source_key} was uploaded but not ingested within {timeout_seconds:.0f} s")


def _job_of(job_ids: dict[str, int], sample: str) -> int:
    return next(job_id for key, job_id in job_ids.items() if key.endswith("/" + sample))


def _hiring_insights(api: ApiClient, say: Callable[[str], None], job_ids: dict[str, int]) -> None:
    """Applicants, insights and suggested questions of the sample interviews."""
    backend = _job_of(job_ids, ENGLISH_SAMPLE)
    say(f"\n== Hiring insights: the sample interviews of job {backend} (backend engineer)")
    first = api.expect("GET", f"/jobs/{backend}/applicants?limit=3", None, 200)
    rest = api.expect("GET", f"/jobs/{backend}/applicants?after={first['next']}", None, 200)
    ranking = first["applicants"] + rest["applicants"]
    say(f"  GET /jobs/{backend}/applicants?limit=3, then ?after=<next>: {len(ranking)} applicants")
    for row in ranking:
        average = row["average_overall_score"]
        say(
            f"    {row['rank']}. applicant {row['applicant_id']}: average "
            + ("-" if average is None else f"{average:.2f}")
            + f", {row['completed_sessions']}/{row['sessions']} sessions completed,"
            f" {row['results']} results"
        )
    if [row["rank"] for row in ranking] != list(range(1, len(ranking) + 1)):
        raise DemoFailure("the pages do not continue each other's ranks")
    averages = [row["average_overall_score"] for row in ranking]
    scored = [average for average in averages if average is not None]
    if scored != sorted(scored, reverse=True) or averages[: len(scored)] != scored:
        raise DemoFailure(f"applicants are not ranked by average, nulls last: {averages}")

    insights = api.expect("GET", f"/jobs/{backend}/insights", None, 200)
    overall = insights["scores"]["overall"]
    say(
        f"  GET /jobs/{backend}/insights -> sessions {insights['sessions']},"
        f" {insights['results']} results"
    )
    say(
        f"    overall score: n={overall['count']} mean {overall['mean']:.2f},"
        f" p25 {overall['p25']:.2f}, median {overall['median']:.2f}, p75 {overall['p75']:.2f}"
    )
    keywords = ", ".join(
        f"{k['category']}/{k['keyword']} x{k['count']}" for k in insights["top_keywords"][:6]
    )
    say(f"    top keywords: {keywords}")
    say(f"    expected keyword coverage: {insights['expected_keyword_coverage']:.2f}")
    if sum(insights["sessions"].values()) != sum(row["sessions"] for row in ranking):
        raise DemoFailure("insights and applicants disagree on the number of sessions")

    fitting = {
        ENGLISH_SAMPLE: ("REST API", "PostgreSQL"),
        KOREAN_SAMPLE: ("recommendation", "추천"),
    }
    for sample, words in fitting.items():
        job_id = _job_of(job_ids, sample)
        answer = api.expect("GET", f"/jobs/{job_id}/questions/suggested?top_k=3", None, 200)
        say(f"\n  GET /jobs/{job_id}/questions/suggested?top_k=3 ({sample})")
        for entry in answer["questions"]:
            say(
                f"    sim {entry['similarity']:.3f} (chunk {entry['chunk_index']})"
                f"  {_short(entry['question']['question_text'], 70)}"
            )
        first = answer["questions"][0]["question"]["question_text"] if answer["questions"] else ""
        if not any(word in first for word in words):
            raise DemoFailure(f"job {job_id}'s first suggestion should be about {words}: {first!r}")


def run_demo(say: Callable[[str], None] = print, options: LocalOptions | None = None) -> None:
    options = options or LocalOptions(data_dir=None, api_port=0)
    started = time.monotonic()
    with LocalSystem(options) as system:
        assert system.api is not None
        api = ApiClient(system.api.url)
        say(f"\n== Local system up in {time.monotonic() - started:.1f} s ({system.api.url})")

        say("\n== Sample job descriptions, ingested through S3 notifications")
        jobs = list_jobs(system.database_url)
        by_key = {job.source_key: job for job in jobs}
        for sample in system.samples:
            job = by_key.get(sample.key)
            where = f"{sample.path.parent.name}/{sample.path.name}"
            if job is None:
                raise DemoFailure(f"sample {where} ({sample.key}) was not ingested")
            say(
                f"  job {job.id:>3}  company {job.company_id:>4}  {job.chunks} chunk(s)  "
                f"{_short(job.title, 45)!r}  <- s3://…/{sample.key}"
            )
        if not system.samples:
            raise DemoFailure("no samples in devtools/samples")

        say("\n== Upload a new file to the bucket (as `aws s3 cp` would); ingestion follows")
        bucket = system.template.buckets[system.template.subscriptions[0].bucket_resource]
        system.s3.put_object(
            Bucket=bucket.name,
            Key=UPLOADED_KEY,
            Body=UPLOADED_TEXT.encode(),
            ContentType="text/plain; charset=utf-8",
        )
        new_job_id = _wait_for_job(system, UPLOADED_KEY)
        job = api.expect("GET", f"/jobs/{new_job_id}", None, 200)
        say(f"  s3://{bucket.name}/{UPLOADED_KEY}")
        say(
            f"  GET /jobs/{new_job_id} -> {job['title']!r}, company {job['company_id']},"
            f" {job['chunk_count']} chunk(s)"
        )
        found = _search(
            api, say, {"query": "Kubernetes incident response", "top_k": 3, "job_id": new_job_id}
        )
        if any(hit["job_id"] != new_job_id for hit in found):
            raise DemoFailure("the job_id filter let another job through")

        job_ids = {key: job.id for key, job in by_key.items() if key is not None}
        say("\n== Search by meaning, in English")
        english = _search(api, say, {"query": ENGLISH_QUERY, "top_k": 3})
        _expect_first(english, job_ids, ENGLISH_SAMPLE)
        say("\n== Search by meaning, in Korean")
        korean = _search(api, say, {"query": KOREAN_QUERY, "top_k": 3})
        _expect_first(korean, job_ids, KOREAN_SAMPLE)
        say("\n== Across languages: an English query finds the Korean job")
        across = _search(api, say, {"query": CROSS_LINGUAL_QUERY, "top_k": 3})
        _expect_first(across, job_ids, KOREAN_SAMPLE)
        say("\n== An exact skill: hybrid mode (meaning + the chunks that name it)")
        skill = _search(api, say, {"query": EXACT_SKILL_QUERY, "top_k": 3, "mode": "hybrid"})
        _expect_first(skill, job_ids, EXACT_SKILL_SAMPLE)
        nearest = api.expect("POST", "/search", {"query": EXACT_SKILL_QUERY, "top_k": 1}, 200)
        say(
            f"  (vector mode alone puts {nearest['results'][0]['job_title']!r} first: a rare"
            " tool name carries little meaning)"
        )

        say("\n== Interview, end to end")
        job_id = korean[0]["job_id"]
        question = api.expect(
            "POST",
            "/questions",
            {
                "job_id": job_id,
                "question_type": "technical",
                "difficulty_level": 3,
                "question_text": "과적합을 줄이기 위해 어떤 방법을 사용해 보셨나요?",
                "expected_keywords": ["regularization", "dropout", "교차 검증"],
            },
            201,
        )
        say(f"  POST /questions -> question {question['id']} for job {job_id}")
        session = api.expect("POST", "/interviews", {"applicant_id": 1001, "job_id": job_id}, 201)
        interview = session["id"]
        say(f"  POST /interviews -> interview {interview}, status {session['status']}")
        if session["status"] != "pending":
            raise DemoFailure(f"a new interview should be pending, got {session['status']}")
        started_session = api.expect(
            "PATCH", f"/interviews/{interview}", {"status": "in_progress"}, 200
        )
        say(f"  PATCH status=in_progress -> started_at {started_session['started_at']}")
        if not started_session.get("started_at"):
            raise DemoFailure("in_progress did not set started_at")
        api.expect(
            "POST",
            f"/interviews/{interview}/results",
            {
                "question_id": question["id"],
                "question_text": question["question_text"],
                "stt_full_text": "드롭아웃과 L2 정규화, 그리고 교차 검증으로 과적합을 줄였습니다.",
                "logic_score": 85.5,
                "relevance_score": 90,
                "technical_score": 88,
                "communication_score": 82,
                "keywords": {"technical": ["dropout", "L2"], "soft_skills": ["clear"]},
                "strengths": ["concrete techniques"],
                "weaknesses": ["no metrics"],
                "ai_feedback": "Good answer; quantify the improvement next time.",
            },
            201,
        )
        api.expect(
            "POST",
            f"/interviews/{interview}/results",
            {
                "question_id": question["id"] + 1000,
                "question_text": "Tell us about a hard bug.",
                "logic_score": 70,
                "relevance_score": 75,
                "technical_score": 80,
                "communication_score": 90,
            },
            201,
        )
        say(f"  POST /interviews/{interview}/results x2 -> 201")
        results = api.expect("GET", f"/interviews/{interview}/results", None, 200)
        summary = results["summary"]
        say(
            f"  GET /interviews/{interview}/results -> {len(results['results'])} results, "
            f"summary {json.dumps(summary, ensure_ascii=False)}"
        )
        first = next(r for r in results["results"] if r["question_id"] == question["id"])
        if abs(first["overall_score"] - 86.375) > 1e-9:
            raise DemoFailure(f"overall_score should be 86.375, got {first['overall_score']}")
        if summary["count"] != 2:
            raise DemoFailure(f"summary count should be 2, got {summary['count']}")
        done = api.expect("PATCH", f"/interviews/{interview}", {"status": "completed"}, 200)
        say(f"  PATCH status=completed -> completed_at {done['completed_at']}")
        if not done.get("completed_at"):
            raise DemoFailure("completed did not set completed_at")
        status, conflict = api.call("PATCH", f"/interviews/{interview}", {"status": "in_progress"})
        say(f"  PATCH completed -> in_progress -> {status} {conflict['error']['code']}")
        if status != 409:
            raise DemoFailure(f"an illegal transition should be 409, got {status}")

        _hiring_insights(api, say, job_ids)

        if system.bridge is not None and system.bridge.failed:
            raise DemoFailure(f"{len(system.bridge.failed)} S3 notification(s) failed")
        say(f"\n== Demo passed in {time.monotonic() - started:.1f} s; stopping everything")
