"""What the API functions' pre-serialised answers save: a Powertools route answering
``Response[str]`` with ``model.model_dump_json()`` (what the handlers do) against the same route
returning the model and letting Powertools validate and serialise it (``-> Model``: what would
document the schema by itself), both through ``resolve()`` with validation on, as deployed.

    PYTHONPATH=layers/shared .venv/bin/python -m bench.bench_api_serialisation [--requests 300]

Two answers of realistic size: a search at ``top_k`` 100 (chunks of about 1,500 characters) and
the results of a 30-question interview (transcripts of about 2,000 characters). No database:
only the answer's path differs. Prints a table and writes bench/results/api_serialisation.json.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
from datetime import UTC, datetime
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from pydantic import BaseModel

from bench.output import RESULTS_DIR, write_json
from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured

CHUNK = (
    "We are looking for a backend engineer with five years of Python, PostgreSQL and AWS "
    "experience: you design schemas, tune queries, run services on Lambda and RDS Proxy. "
) * 9
TRANSCRIPT = "I have been working with Python for five years, mostly on web services. " * 28


def _search_answer(search_schemas: Any) -> BaseModel:
    return cast(
        BaseModel,
        search_schemas.SearchResponse(
            results=[
                search_schemas.SearchResult(
                    chunk_id=rank,
                    job_id=rank // 4 + 1,
                    company_id=7,
                    job_title="Senior Backend Engineer (Python, AWS)",
                    chunk_index=rank % 4,
                    chunk_text=CHUNK,
                    distance=0.2 + rank / 1000,
                    similarity=0.8 - rank / 1000,
                    score=0.8 - rank / 1000,
                )
                for rank in range(100)
            ]
        ),
    )


def _results_answer(interview_schemas: Any, summary: Any) -> BaseModel:
    now = datetime.now(UTC)
    results = [
        interview_schemas.ResultOut(
            id=question,
            interview_id=1,
            question_id=question,
            question_text="Tell me about your experience with Python",
            stt_full_text=TRANSCRIPT,
            logic_score=85.5,
            relevance_score=90.0,
            technical_score=88.0,
            communication_score=82.0,
            overall_score=86.375,
            keywords={"technical": ["Python", "Django"], "soft_skills": ["teamwork"]},
            strengths=["Strong Python expertise"],
            weaknesses=["Limited async experience"],
            ai_feedback="Solid technical knowledge; could give more examples.",
            metadata={"stt_model": "whisper-large-v3", "answer_seconds": 94},
            created_at=now,
            updated_at=now,
        )
        for question in range(30)
    ]
    return cast(
        BaseModel,
        interview_schemas.InterviewResultsOut(
            interview_id=1, results=results, summary=summary.summarize(results)
        ),
    )


def _resolver(answer: BaseModel) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    model = type(answer)

    def pre_serialised() -> Response[str]:
        return Response(200, "application/json", answer.model_dump_json())

    def by_powertools() -> Any:
        return answer

    by_powertools.__annotations__["return"] = model  # the route's documented answer
    app.get("/pre-serialised")(pre_serialised)
    app.get("/by-powertools")(by_powertools)
    return app


def _time(app: APIGatewayRestResolver, path: str) -> float:
    event = rest_event("GET", path)
    context = cast(Any, FakeLambdaContext(function_name="bench"))
    started = time.perf_counter()
    response = app.resolve(event, context)
    elapsed = time.perf_counter() - started
    assert response["statusCode"] == 200, response
    return elapsed * 1000


def measure(app: APIGatewayRestResolver, requests: int) -> dict[str, Any]:
    context = cast(Any, FakeLambdaContext(function_name="bench"))
    pre = app.resolve(rest_event("GET", "/pre-serialised"), context)
    by = app.resolve(rest_event("GET", "/by-powertools"), context)
    timings: dict[str, list[float]] = {"pre_serialised": [], "by_powertools": []}
    for _ in range(requests):  # interleaved: the machine's noise hits both alike
        timings["pre_serialised"].append(_time(app, "/pre-serialised"))
        timings["by_powertools"].append(_time(app, "/by-powertools"))
    summary: dict[str, Any] = {"body_bytes": len(pre["body"].encode())}
    summary["same_json_size"] = abs(len(by["body"]) - len(pre["body"])) <= len(pre["body"]) // 20
    for name, samples in timings.items():
        ordered = sorted(samples)
        summary[name] = {
            "p50_ms": statistics.median(ordered),
            "p95_ms": ordered[int(len(ordered) * 0.95) - 1],
        }
    summary["ratio_p50"] = summary["by_powertools"]["p50_ms"] / summary["pre_serialised"]["p50_ms"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with layer_configured("postgresql://bench@127.0.0.1:1/not_connected"):
        # Loading the functions puts their packages on sys.path, as Lambda does.
        load_function("search")
        load_function("interview_results")
        search_schemas = importlib.import_module("flex_search.schemas")
        interview_schemas = importlib.import_module("flex_interviews.schemas")
        summary_module = importlib.import_module("flex_interviews.summary")
    answers = {
        "search_top_k_100": _search_answer(search_schemas),
        "interview_results_30": _results_answer(interview_schemas, summary_module),
    }
    results = {name: measure(_resolver(answer), args.requests) for name, answer in answers.items()}
    print(
        f"{'answer':<22} {'bytes':>8} {'pre-serialised p50/p95':>24}"
        f" {'by Powertools p50/p95':>24} {'ratio':>6}"
    )
    for name, result in results.items():
        pre, by = result["pre_serialised"], result["by_powertools"]
        print(
            f"{name:<22} {result['body_bytes']:>8} "
            f"{pre['p50_ms']:>11.2f} / {pre['p95_ms']:>6.2f} ms "
            f"{by['p50_ms']:>11.2f} / {by['p95_ms']:>6.2f} ms {result['ratio_p50']:>5.1f}x"
        )
    path = write_json(
        RESULTS_DIR / "api_serialisation.json", {"requests": args.requests, "answers": results}
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
