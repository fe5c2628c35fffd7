"""Helpers of the search tests: API Gateway events, a Lambda context, job fixtures."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from devtools.apigw import rest_event as api_event
from devtools.lambda_context import FakeLambdaContext as FakeLambdaContext
from flex_shared.embeddings import get_embedder
from flex_shared.models import Job, JobChunk


def rest_event(
    method: str, path: str, *, body: Any = None, raw_body: str | None = None
) -> dict[str, Any]:
    """A REST proxy event for the search function's routes."""
    if path.startswith("/jobs/"):
        return api_event(
            method,
            path,
            body,
            raw_body=raw_body,
            resource="/jobs/{job_id}",
            path_parameters={"job_id": path.removeprefix("/jobs/")},
        )
    return api_event(method, path, body, raw_body=raw_body)


def call(app_module: Any, event: dict[str, Any]) -> tuple[int, Any]:
    """Invoke the handler; return the status code and the parsed JSON body."""
    response = app_module.lambda_handler(event, FakeLambdaContext())
    headers = response.get("multiValueHeaders") or {}
    assert headers.get("Content-Type") == ["application/json"], response
    return response["statusCode"], json.loads(response["body"])


@dataclass(frozen=True)
class JobSpec:
    company_id: int
    title: str
    paragraphs: tuple[str, ...]


JOBS = (
    JobSpec(
        company_id=1,
        title="Senior Backend Engineer (Python, PostgreSQL)",
        paragraphs=(
            "We are hiring a senior backend engineer to design and build Python services on"
            " AWS Lambda. You will own REST APIs used by millions of job seekers.",
            "Requirements: five years of Python, deep PostgreSQL knowledge including query"
            " tuning and indexing, experience with SQLAlchemy and Alembic migrations.",
            "Nice to have: pgvector, semantic search, embeddings, and infrastructure as code"
            " with AWS SAM or CloudFormation.",
        ),
    ),
    JobSpec(
        company_id=1,
        title="Product Designer",
        paragraphs=(
            "Join our design team to shape the interview experience for candidates and"
            " recruiters. You will run user research and usability tests.",
            "You have a portfolio of mobile and web products, fluency in Figma, and a habit of"
            " turning customer interviews into clear prototypes.",
        ),
    ),
    JobSpec(
        company_id=2,
        title="데이터 엔지니어 (Data Engineer)",
        paragraphs=(
            "데이터 엔지니어로서 대용량 데이터 파이프라인을 설계하고 운영합니다."
            " Apache Spark와 Airflow로 배치 및 스트리밍 처리를 구축합니다.",
            "자격 요건: 파이썬 또는 스칼라 개발 경력 3년 이상, 데이터 웨어하우스 설계 경험,"
            " SQL 최적화 능력.",
            "우대 사항: 쿠버네티스 운영 경험, 클라우드 환경에서의 데이터 레이크 구축 경험.",
        ),
    ),
    JobSpec(
        company_id=3,
        title="프론트엔드 개발자",
        paragraphs=(
            "React와 TypeScript로 채용 플랫폼의 웹 화면을 개발합니다."
            " 디자이너와 협업하여 사용자 경험을 개선합니다.",
            "자격 요건: 프론트엔드 개발 경력 2년 이상, 웹 접근성과 성능 최적화에 대한 이해.",
        ),
    ),
)


def insert_jobs(session: Session, specs: tuple[JobSpec, ...] = JOBS) -> list[Job]:
    """Insert jobs and their chunks as ingestion would (company_id copied onto chunks)."""
    embedder = get_embedder()
    jobs = []
    for spec in specs:
        vectors = embedder.embed_documents(list(spec.paragraphs))
        job = Job(
            company_id=spec.company_id,
            title=spec.title,
            description="\n\n".join(spec.paragraphs),
            chunks=[
                JobChunk(
                    chunk_text=paragraph,
                    embedding=vector,
                    chunk_index=index,
                    company_id=spec.company_id,
                    embedding_model=embedder.model_id,
                    embedding_dimensions=embedder.dimensions,
                )
                for index, (paragraph, vector) in enumerate(
                    zip(spec.paragraphs, vectors, strict=True)
                )
            ],
        )
        session.add(job)
        jobs.append(job)
    session.commit()
    return jobs


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / norm


def l2_distance(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def negative_inner_product(a: list[float], b: list[float]) -> float:
    return -sum(x * y for x, y in zip(a, b, strict=True))


PYTHON_DISTANCES = {
    "cosine": cosine_distance,
    "l2": l2_distance,
    "inner_product": negative_inner_product,
}
