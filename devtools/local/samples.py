"""Sample job descriptions (``devtools/samples``) as S3 uploads under ``jobs/<company_id>/``,
and sample interviews of two of them (created through the interview API).

A directory named by a number is the company (``samples/202/x.html`` ->
``jobs/202/x.html``); a JSON sample names its own ``company_id``; anything else belongs to
company 1. README files and hidden files are not samples.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_COMPANY_ID = 1
_SUPPORTED = {".json", ".txt", ".md", ".html", ".htm", ".pdf", ".docx"}


@dataclass(frozen=True)
class SampleUpload:
    path: Path
    key: str
    company_id: int
    content_type: str


def _company_of(relative: Path, path: Path) -> tuple[int, Path]:
    for index, part in enumerate(relative.parts[:-1]):
        if part.isdigit():
            return int(part), Path(*relative.parts[index + 1 :])
    if path.suffix.lower() == ".json":
        try:
            company = json.loads(path.read_text(encoding="utf-8-sig")).get("company_id")
        except (ValueError, AttributeError, UnicodeDecodeError):
            company = None
        if isinstance(company, int):
            return company, relative
    return DEFAULT_COMPANY_ID, relative


def find_samples(samples_dir: Path) -> list[SampleUpload]:
    uploads = []
    for path in sorted(samples_dir.rglob("*")):
        relative = path.relative_to(samples_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if path.name.upper().startswith("README") or path.suffix.lower() not in _SUPPORTED:
            continue
        company_id, rest = _company_of(relative, path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix.lower() == ".md":
            content_type = "text/markdown"
        uploads.append(
            SampleUpload(path, f"jobs/{company_id}/{rest.as_posix()}", company_id, content_type)
        )
    return uploads


def upload_samples(client: Any, bucket: str, samples: list[SampleUpload]) -> None:
    for sample in samples:
        client.put_object(
            Bucket=bucket,
            Key=sample.key,
            Body=sample.path.read_bytes(),
            ContentType=sample.content_type,
        )


# --- sample interviews -----------------------------------------------------------------------
# A few question templates and interviews for two sample jobs, written through the interview
# API as a client would, so that applicants, insights and suggested questions show something.

ApiCall = Callable[[str, str, Any], tuple[int, Any]]
"""``(method, path, body) -> (status, JSON body)`` through the local API's functions."""


@dataclass(frozen=True)
class SampleQuestion:
    name: str
    text: str
    question_type: str
    expected_keywords: list[str]
    job_sample: str | None = None
    """The sample (file name) whose job the question belongs to; None: a general question."""


SAMPLE_QUESTIONS = (  # worded so that each sample job's own kind of question comes first
    SampleQuestion(
        "api-design",
        "How would you design a REST API that stays fast as traffic grows?",
        "technical",
        ["caching", "pagination", "indexes"],
    ),
    SampleQuestion(
        "postgres-tuning",
        "Tell us about a slow PostgreSQL query you made faster, and how you found it.",
        "technical",
        ["EXPLAIN", "index"],
        job_sample="backend-engineer-en.md",
    ),
    SampleQuestion(
        "recommender-evaluation-ko",
        "추천 모델의 성능을 오프라인과 온라인에서 어떻게 평가하시나요?",
        "technical",
        ["NDCG", "A/B 테스트", "재현율"],
    ),
    SampleQuestion(
        "recommender-evaluation",
        "How do you evaluate a recommendation or search ranking model offline and online?",
        "technical",
        ["A/B test", "NDCG", "recall"],
    ),
    SampleQuestion(
        "disagreement",
        "팀원과 의견이 달랐던 경험과, 그것을 어떻게 해결했는지 말씀해 주세요.",
        "behavioral",
        ["소통", "합의"],
    ),
)


@dataclass(frozen=True)
class SampleAnswer:
    question: str
    """A :class:`SampleQuestion` name."""
    scores: tuple[float, float, float, float]
    """logic, relevance, technical, communication (overall is their mean)."""
    keywords: dict[str, list[str]]


@dataclass(frozen=True)
class SampleInterview:
    job_sample: str
    applicant_id: int
    status: str
    answers: tuple[SampleAnswer, ...] = ()


def _answer(
    question: str, scores: tuple[float, float, float, float], **keywords: list[str]
) -> SampleAnswer:
    return SampleAnswer(question, scores, keywords)


_BACKEND = "backend-engineer-en.md"
_ML = "ml-engineer-ko.txt"
SAMPLE_INTERVIEWS = (
    SampleInterview(
        _BACKEND,
        501,
        "completed",
        (
            _answer("api-design", (90, 88, 92, 85), technical=["Caching", "Pagination", "Redis"]),
            _answer("postgres-tuning", (86, 90, 94, 80), technical=["EXPLAIN", "index"]),
            _answer("disagreement", (80, 85, 70, 92), soft_skills=["소통", "Ownership"]),
        ),
    ),
    SampleInterview(
        _BACKEND,
        502,
        "completed",
        (
            _answer("api-design", (72, 80, 68, 75), technical=["caching", "REST"]),
            _answer("postgres-tuning", (65, 70, 60, 72), technical=["index"]),
        ),
    ),
    SampleInterview(
        _BACKEND,
        503,
        "failed",
        (_answer("api-design", (40, 55, 35, 60), technical=["REST"]),),
    ),
    SampleInterview(
        _BACKEND,
        504,
        "in_progress",
        (_answer("api-design", (85, 82, 88, 79), technical=["pagination", "Indexes"]),),
    ),
    SampleInterview(_BACKEND, 505, "pending"),
    SampleInterview(
        _ML,
        601,
        "completed",
        (
            _answer("recommender-evaluation-ko", (88, 90, 91, 84), technical=["ndcg", "재현율"]),
            _answer("recommender-evaluation", (84, 86, 89, 80), technical=["NDCG", "A/B test"]),
        ),
    ),
    SampleInterview(
        _ML,
        602,
        "completed",
        (
            _answer("recommender-evaluation-ko", (70, 75, 66, 82), technical=["A/B 테스트"]),
            _answer("disagreement", (78, 80, 65, 90), soft_skills=["합의", "소통"]),
        ),
    ),
    SampleInterview(_ML, 603, "pending"),
)


class SampleInterviewError(RuntimeError):
    """The API refused a sample interview step."""


def _expect(call: ApiCall, method: str, path: str, body: Any, status: int) -> Any:
    got, answer = call(method, path, body)
    if got != status:
        raise SampleInterviewError(f"{method} {path} answered {got}: {answer}")
    return answer


def create_sample_interviews(call: ApiCall, job_ids: dict[str, int]) -> int:
    """The sample questions and interviews for the sample jobs in ``job_ids`` (sample file
    name -> job id); the number of interviews created."""
    question_ids: dict[str, int] = {}
    for question in SAMPLE_QUESTIONS:
        job_id = job_ids.get(question.job_sample) if question.job_sample else None
        if question.job_sample and job_id is None:
            continue
        created = _expect(
            call,
            "POST",
            "/questions",
            {
                "job_id": job_id,
                "question_type": question.question_type,
                "question_text": question.text,
                "expected_keywords": question.expected_keywords,
                "difficulty_level": 3,
            },
            201,
        )
        question_ids[question.name] = created["id"]
    created_interviews = 0
    for sample in SAMPLE_INTERVIEWS:
        job_id = job_ids.get(sample.job_sample)
        if job_id is None:
            continue
        session = _expect(
            call,
            "POST",
            "/interviews",
            {"applicant_id": sample.applicant_id, "job_id": job_id},
            201,
        )
        path = f"/interviews/{session['id']}"
        created_interviews += 1
        if sample.status == "pending":
            continue
        _expect(call, "PATCH", path, {"status": "in_progress"}, 200)
        for index, answer in enumerate(sample.answers):
            logic, relevance, technical, communication = answer.scores
            _expect(
                call,
                "POST",
                f"{path}/results",
                {
                    "question_id": question_ids[answer.question],
                    "question_text": next(
                        q.text for q in SAMPLE_QUESTIONS if q.name == answer.question
                    ),
                    "logic_score": logic,
                    "relevance_score": relevance,
                    "technical_score": technical,
                    "communication_score": communication,
                    "keywords": answer.keywords,
                },
                201,
            )
            _expect(call, "PATCH", path, {"current_question_index": index + 1}, 200)
        if sample.status in ("completed", "failed"):
            _expect(call, "PATCH", path, {"status": sample.status}, 200)
    return created_interviews
