"""Real answers of the API for the reference page: the requests of ``events/`` (ids replaced
by those the run creates) and a few mistakes, sent to the local API with the sample jobs
ingested; each answer is written to ``docs/api-examples.json`` under its operation and status,
and ``make openapi`` puts them in ``openapi.json`` (the Swagger page shows them).

``make api-examples`` runs it on temporary directories and ports. The answers are what the code
says at that moment: re-run it when an answer's shape changes (a test checks every example
against its documented schema)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .demo import ApiClient
from .system import LocalOptions, LocalSystem

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
OUTPUT = REPO_ROOT / "docs" / "api-examples.json"


class Examples:
    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.captured: dict[str, dict[str, dict[str, Any]]] = {}

    def send(
        self,
        operation_id: str,
        name: str,
        summary: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int,
    ) -> Any:
        status, answer = self.api.call(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path} answered {status}, expected {expect}: {answer}")
        by_status = self.captured.setdefault(operation_id, {}).setdefault(str(status), {})
        by_status[name] = {"summary": summary, "value": answer}
        return answer


def _event_body(name: str) -> Any:
    event = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return json.loads(event["body"]) if event.get("body") else None


def capture(api: ApiClient) -> dict[str, dict[str, dict[str, Any]]]:
    examples = Examples(api)
    send = examples.send
    found = send(
        "search", "search_post", "events/search_post.json", "POST", "/search",
        _event_body("search_post"), expect=200,
    )  # fmt: skip
    send(
        "search", "search_post_hybrid", "events/search_post_hybrid.json: an exact skill",
        "POST", "/search", _event_body("search_post_hybrid"), expect=200,
    )  # fmt: skip
    send(
        "search", "search_bad_request", "events/search_bad_request.json", "POST", "/search",
        _event_body("search_bad_request"), expect=422,
    )  # fmt: skip
    job_id = found["results"][0]["job_id"]
    send("get_job", "job", "A job in search", "GET", f"/jobs/{job_id}", expect=200)
    send("get_job", "unknown_job", "No such job", "GET", "/jobs/999999", expect=404)

    interview = send(
        "create_interview", "interview", "events/interview_results_create_interview.json",
        "POST", "/interviews", {**_event_body("interview_results_create_interview"),
                                "job_id": job_id}, expect=201,
    )  # fmt: skip
    send(
        "create_interview", "unknown_job", "A job that is not in search", "POST",
        "/interviews", {"applicant_id": 123, "job_id": 999999}, expect=404,
    )  # fmt: skip
    path = f"/interviews/{interview['id']}"
    send(
        "record_result", "pending", "Before the session is started", "POST",
        f"{path}/results", _event_body("interview_results_post_result"), expect=409,
    )  # fmt: skip
    send(
        "update_interview", "start", "events/interview_results_update_interview.json",
        "PATCH", path, _event_body("interview_results_update_interview"), expect=200,
    )  # fmt: skip
    send(
        "update_interview", "repeated", "The same transition again", "PATCH", path,
        {"status": "in_progress"}, expect=409,
    )  # fmt: skip
    send(
        "update_interview", "nothing", "Nothing to change", "PATCH", path, {}, expect=422,
    )  # fmt: skip
    send("get_interview", "in_progress", "A started session", "GET", path, expect=200)
    send(
        "record_result", "new", "events/interview_results_post_result.json", "POST",
        f"{path}/results", _event_body("interview_results_post_result"), expect=201,
    )  # fmt: skip
    send(
        "record_result", "replaced", "The same question again: the result is replaced",
        "POST", f"{path}/results",
        {**_event_body("interview_results_post_result"), "overall_score": 90.0}, expect=200,
    )  # fmt: skip
    send(
        "list_results", "results", "events/interview_results_get_results.json", "GET",
        f"{path}/results", expect=200,
    )  # fmt: skip
    send("get_interview", "unknown", "No such session", "GET", "/interviews/999999", expect=404)

    question = send(
        "create_question", "question", "events/interview_results_create_question.json",
        "POST", "/questions", {**_event_body("interview_results_create_question"),
                               "job_id": job_id}, expect=201,
    )  # fmt: skip
    send(
        "list_questions", "questions", "events/interview_results_list_questions.json", "GET",
        f"/questions?job_id={job_id}&question_type=technical", expect=200,
    )  # fmt: skip
    send(
        "get_question", "question", "events/interview_results_get_question.json", "GET",
        f"/questions/{question['id']}", expect=200,
    )  # fmt: skip

    # The sample interviews (devtools/local/samples.py) are of the backend engineer's job.
    backend = next(hit["job_id"] for hit in found["results"] if "Backend" in hit["job_title"])
    first = send(
        "list_applicants", "applicants", "events/interview_results_get_applicants.json: the"
        " first page of 3", "GET", f"/jobs/{backend}/applicants?limit=3", expect=200,
    )  # fmt: skip
    send(
        "list_applicants", "next_page", "The next page, after the previous page's `next`",
        "GET", f"/jobs/{backend}/applicants?limit=3&after={first['next']}", expect=200,
    )  # fmt: skip
    send(
        "list_applicants", "bad_cursor", "A cursor this API did not give", "GET",
        f"/jobs/{backend}/applicants?after=not-a-cursor", expect=422,
    )  # fmt: skip
    send(
        "get_insights", "insights", "events/interview_results_get_insights.json", "GET",
        f"/jobs/{backend}/insights", expect=200,
    )  # fmt: skip
    send("get_insights", "unknown_job", "No such job", "GET", "/jobs/999999/insights", expect=404)
    send(
        "suggest_questions", "questions", "events/search_suggested_questions.json", "GET",
        f"/jobs/{backend}/questions/suggested?top_k=3", expect=200,
    )  # fmt: skip
    return examples.captured


def write_examples(options: LocalOptions, log: Callable[[str], None], output: Path) -> None:
    with LocalSystem(options, log=lambda message: None) as system:
        assert system.api is not None
        captured = capture(ApiClient(system.api.url))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(captured, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"{output.name}: {sum(len(s) for s in captured.values())} statuses of {len(captured)}"
        " operations")  # fmt: skip
