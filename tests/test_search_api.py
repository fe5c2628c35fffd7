"""Search API through its Lambda handler, on the embedded PostgreSQL + pgvector."""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pgvector import Vector
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from flex_shared import config, db
from flex_shared.embeddings import EmbeddingUnavailable, get_embedder
from flex_shared.models import Job, JobChunk
from flex_shared.observability import LAYER_LOGGER, route_layer_logs
from tests.test_search_support import (
    JOBS,
    PYTHON_DISTANCES,
    FakeLambdaContext,
    call,
    insert_jobs,
    rest_event,
)

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"

RESULT_FIELDS = {
    "chunk_id",
    "job_id",
    "company_id",
    "job_title",
    "chunk_index",
    "chunk_text",
    "distance",
    "similarity",
    "score",
}


@pytest.fixture
def search_app(load_function: Callable[[str], ModuleType]) -> Iterator[ModuleType]:
    app = load_function("search")
    embedding = importlib.import_module("flex_search.query_embedding")
    embedding.QUERY_CACHE.clear()
    yield app
    embedding.QUERY_CACHE.clear()


@pytest.fixture
def jobs(db_session: Session) -> list[Job]:
    return insert_jobs(db_session)


def search(app: ModuleType, **body: Any) -> tuple[int, Any]:
    return call(app, rest_event("POST", "/search", body=body))


# --- ranking -------------------------------------------------------------------------------


def test_english_query_ranks_the_matching_paragraph_first(search_app, jobs):
    # Given English and Korean job descriptions
    # When a candidate searches for what one paragraph says
    status, body = search(
        search_app, query="PostgreSQL query tuning, indexing and Alembic migrations", top_k=3
    )

    # Then the backend job's requirements paragraph comes first, in the documented shape
    assert status == 200
    results = body["results"]
    assert len(results) == 3
    assert all(set(result) == RESULT_FIELDS for result in results)
    best = results[0]
    assert best["job_id"] == jobs[0].id
    assert best["company_id"] == 1
    assert best["job_title"] == "Senior Backend Engineer (Python, PostgreSQL)"
    assert best["chunk_index"] == 1
    assert best["chunk_text"] == JOBS[0].paragraphs[1]
    distances = [result["distance"] for result in results]
    assert distances == sorted(distances)
    assert best["similarity"] == pytest.approx(1 - best["distance"])


def test_korean_query_finds_the_korean_job(search_app, jobs):
    status, body = search(search_app, query="데이터 파이프라인 설계와 Spark 배치 처리", top_k=2)

    assert status == 200
    best = body["results"][0]
    assert best["job_title"] == "데이터 엔지니어 (Data Engineer)"
    assert best["chunk_index"] == 0
    assert best["company_id"] == 2


def test_korean_text_comes_back_unescaped_and_intact(search_app, jobs):
    response = search_app.lambda_handler(
        rest_event("POST", "/search", body={"query": "React TypeScript 프론트엔드", "top_k": 1}),
        FakeLambdaContext(),
    )
    assert "프론트엔드 개발자" in response["body"]  # UTF-8 JSON, not \\u escapes
    assert json.loads(response["body"])["results"][0]["job_title"] == "프론트엔드 개발자"


def test_top_k_larger_than_the_corpus_returns_every_chunk(search_app, jobs):
    total = sum(len(spec.paragraphs) for spec in JOBS)
    status, body = search(search_app, query="engineer", top_k=100)
    assert status == 200
    assert len(body["results"]) == total
    assert len({result["chunk_id"] for result in body["results"]}) == total


def test_default_top_k_is_five_and_default_metric_is_cosine(search_app, jobs):
    status, body = search(search_app, query="backend engineer")
    assert status == 200
    assert len(body["results"]) == 5
    for result in body["results"]:
        assert result["similarity"] == pytest.approx(1 - result["distance"])


def test_integers_written_with_a_zero_fraction_are_integers(search_app, jobs):
    # OpenAPI 3.1 (JSON Schema) counts 2.0 as an integer; a generated client may send it so.
    as_int = search(search_app, query="backend engineer", top_k=2, job_id=jobs[0].id)
    as_float = search(search_app, query="backend engineer", top_k=2.0, job_id=float(jobs[0].id))

    assert as_float[0] == 200
    assert as_float == as_int
    assert len(as_float[1]["results"]) == 2


def _stored_vectors(session: Session) -> dict[int, list[float]]:
    rows = session.execute(select(JobChunk.id, JobChunk.embedding)).all()
    return {chunk_id: [float(v) for v in embedding] for chunk_id, embedding in rows}


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_each_metric_reports_its_operator_and_ranks_exactly(search_app, jobs, db_session, metric):
    # Given the stored vectors and the query's vector, computed here in Python
    query = "Python 백엔드 개발 경력과 PostgreSQL 최적화"
    query_vector = get_embedder().embed_query(query)
    stored = _stored_vectors(db_session)
    distance_of = PYTHON_DISTANCES[metric]
    expected = sorted(stored, key=lambda chunk_id: distance_of(query_vector, stored[chunk_id]))

    # When searching every chunk with that metric
    status, body = search(search_app, query=query, top_k=len(stored), metric=metric)

    # Then the order is the exact order by that operator and each distance is its value
    assert status == 200
    results = body["results"]
    assert [result["chunk_id"] for result in results] == expected
    for result in results:
        python_distance = distance_of(query_vector, stored[result["chunk_id"]])
        assert result["distance"] == pytest.approx(python_distance, abs=2e-6)
        cosine_similarity = 1 - PYTHON_DISTANCES["cosine"](query_vector, stored[result["chunk_id"]])
        assert result["similarity"] == pytest.approx(cosine_similarity, abs=2e-6)


def test_metrics_disagree_on_distance_but_agree_on_order(search_app, jobs):
    answers = {
        metric: search(search_app, query="Figma prototypes", top_k=4, metric=metric)[1]["results"]
        for metric in ("cosine", "l2", "inner_product")
    }
    orders = {metric: [r["chunk_id"] for r in results] for metric, results in answers.items()}
    assert orders["cosine"] == orders["l2"] == orders["inner_product"]
    assert answers["inner_product"][0]["distance"] < 0  # <#> is the NEGATIVE inner product
    cosine, l2 = answers["cosine"][0]["distance"], answers["l2"][0]["distance"]
    assert l2 == pytest.approx((2 * cosine) ** 0.5, abs=1e-5)


# --- filters and removed jobs ---------------------------------------------------------------


def test_company_filter_keeps_only_that_company(search_app, jobs):
    status, body = search(search_app, query="engineer", top_k=10, company_id=1)
    assert status == 200
    assert {result["company_id"] for result in body["results"]} == {1}
    assert len(body["results"]) == 5  # all of company 1's chunks: min(top_k, matching)


def test_job_filter_keeps_only_that_job(search_app, jobs):
    status, body = search(search_app, query="자격 요건", top_k=2, job_id=jobs[2].id)
    assert status == 200
    assert [result["job_id"] for result in body["results"]] == [jobs[2].id] * 2


def test_filters_combine_and_can_match_nothing(search_app, jobs):
    status, body = search(search_app, query="engineer", job_id=jobs[2].id, company_id=1)
    assert (status, body) == (200, {"results": []})


def test_unknown_company_gives_empty_results_not_404(search_app, jobs):
    assert search(search_app, query="engineer", company_id=999) == (200, {"results": []})


def test_jobs_taken_out_of_search_never_appear(search_app, jobs, db_session):
    # Given the backend job was removed by ingestion (its chunks may remain)
    db_session.execute(update(Job).where(Job.id == jobs[0].id).values(deleted_at=datetime.now(UTC)))
    db_session.commit()

    # When searching for its exact words, with and without filters
    for extra in ({}, {"company_id": 1}, {"job_id": jobs[0].id}):
        status, body = search(
            search_app, query="Python PostgreSQL SQLAlchemy Alembic", top_k=50, **extra
        )
        # Then none of its chunks appear, and the job itself is gone
        assert status == 200
        assert jobs[0].id not in {result["job_id"] for result in body["results"]}
    assert call(search_app, rest_event("GET", f"/jobs/{jobs[0].id}"))[0] == 404


# --- GET /jobs/{job_id} ------------------------------------------------------------------------


def test_get_job_returns_the_job_with_its_chunk_count(search_app, jobs):
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    status, body = call(search_app, rest_event("GET", f"/jobs/{jobs[2].id}"))

    assert status == 200
    assert set(body) == {
        "id",
        "company_id",
        "title",
        "description",
        "chunk_count",
        "created_at",
        "updated_at",
    }
    assert body["id"] == jobs[2].id
    assert body["company_id"] == 2
    assert body["title"] == "데이터 엔지니어 (Data Engineer)"
    assert body["description"] == "\n\n".join(JOBS[2].paragraphs)
    assert body["chunk_count"] == 3
    for field in ("created_at", "updated_at"):
        assert body[field].endswith("Z")  # ISO 8601, UTC
        parsed = datetime.fromisoformat(body[field])
        assert parsed.tzinfo is not None
        assert parsed.replace(tzinfo=None) > before


@pytest.mark.parametrize("job_id", ["999999", "2147483647"])
def test_get_unknown_job_is_404(search_app, jobs, job_id):
    status, body = call(search_app, rest_event("GET", f"/jobs/{job_id}"))
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert job_id in body["error"]["message"]


@pytest.mark.parametrize("job_id", ["abc", "1.5", "-1", "0", "2147483648", "true"])
def test_get_job_with_a_bad_id_is_a_4xx_naming_the_parameter(search_app, database_url, job_id):
    status, body = call(search_app, rest_event("GET", f"/jobs/{job_id}"))
    assert status == 422
    assert "job_id" in body["error"]["message"]


# --- validation --------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("missing query", {"top_k": 3}, "query"),
    ("empty query", {"query": ""}, "query"),
    ("whitespace query", {"query": " \t\n "}, "query"),
    ("query not a string", {"query": 42}, "query"),
    ("query null", {"query": None}, "query"),
    ("query too long", {"query": "x" * 50_001}, "query"),
    ("top_k zero", {"query": "q", "top_k": 0}, "top_k"),
    ("top_k too big", {"query": "q", "top_k": 101}, "top_k"),
    ("top_k negative", {"query": "q", "top_k": -1}, "top_k"),
    ("top_k string", {"query": "q", "top_k": "5"}, "top_k"),
    ("top_k bool", {"query": "q", "top_k": True}, "top_k"),
    ("top_k float", {"query": "q", "top_k": 5.5}, "top_k"),
    ("metric unknown", {"query": "q", "metric": "hamming"}, "metric"),
    ("metric wrong case", {"query": "q", "metric": "COSINE"}, "metric"),
    ("job_id string", {"query": "q", "job_id": "3"}, "job_id"),
    ("job_id bool", {"query": "q", "job_id": True}, "job_id"),
    ("job_id zero", {"query": "q", "job_id": 0}, "job_id"),
    ("job_id beyond integer", {"query": "q", "job_id": 2**31}, "job_id"),
    ("company_id fraction", {"query": "q", "company_id": 1.5}, "company_id"),
    ("company_id bool", {"query": "q", "company_id": False}, "company_id"),
    ("company_id list", {"query": "q", "company_id": [1]}, "company_id"),
    ("unknown field", {"query": "q", "limit": 3}, "limit"),
]


@pytest.mark.parametrize(
    ("case", "body", "field"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES]
)
def test_invalid_body_is_422_naming_the_field(search_app, database_url, case, body, field):
    status, answer = search(search_app, **body)
    assert status == 422, case
    fields = [detail["field"] for detail in answer["error"]["details"]]
    assert field in fields, (case, answer)
    assert field in answer["error"]["message"]


@pytest.mark.parametrize(
    "raw_body",
    ['{"query": ', "not json", '{"query": "q", "top_k": NaN}', '{"query": "q"} trailing'],
)
def test_malformed_json_is_400(search_app, database_url, raw_body):
    status, answer = call(search_app, rest_event("POST", "/search", raw_body=raw_body))
    assert status == 400
    assert answer["error"]["code"] == "validation_error"


@pytest.mark.parametrize("raw_body", [None, "[]", '"query"', "null"])
def test_body_that_is_not_an_object_is_4xx(search_app, database_url, raw_body):
    status, answer = call(search_app, rest_event("POST", "/search", raw_body=raw_body))
    assert 400 <= status < 500
    assert "error" in answer


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nowhere"), ("DELETE", "/jobs/1"), ("GET", "/search")]
)
def test_unknown_route_is_404(search_app, database_url, method, path):
    status, answer = call(search_app, rest_event(method, path))
    assert status == 404
    assert answer["error"]["code"] == "route_not_found"


# --- dependencies ------------------------------------------------------------------------------


@pytest.fixture
def database_down(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", "postgresql://flex@127.0.0.1:1/flex")
    config.reset_settings()
    db.reset_engine()
    yield
    monkeypatch.setenv("DATABASE_URL", database_url)
    config.reset_settings()
    db.reset_engine()


@pytest.mark.parametrize(
    "event",
    [
        rest_event("POST", "/search", body={"query": "backend engineer"}),
        rest_event("POST", "/search", body={"query": "backend engineer", "company_id": 1}),
        rest_event("GET", "/jobs/1"),
    ],
)
def test_database_down_is_503_naming_the_database(search_app, database_down, event):
    status, answer = call(search_app, event)
    assert status == 503
    assert answer["error"]["code"] == "database_unavailable"
    assert "database" in answer["error"]["message"]
    assert "Traceback" not in json.dumps(answer)


class _FailingEmbedder:
    model_id = "failing"
    dimensions = 1024

    def embed_documents(self, texts: Any, *, deadline: float | None = None) -> Any:
        raise EmbeddingUnavailable("Bedrock throttled the request")

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        raise EmbeddingUnavailable("Bedrock throttled the request")


class _CountingEmbedder:
    def __init__(self) -> None:
        self.inner = get_embedder()
        self.model_id = self.inner.model_id
        self.dimensions = self.inner.dimensions
        self.queries: list[str] = []

    def embed_documents(self, texts: Any, *, deadline: float | None = None) -> Any:
        return self.inner.embed_documents(texts, deadline=deadline)

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        self.queries.append(text)
        return self.inner.embed_query(text, deadline=deadline)


def test_embedding_failure_is_503_naming_the_embedding_service(search_app, jobs, monkeypatch):
    embedding = importlib.import_module("flex_search.query_embedding")
    monkeypatch.setattr(embedding, "get_embedder", _FailingEmbedder)
    status, answer = search(search_app, query="backend engineer")
    assert status == 503
    assert "embedding" in answer["error"]["message"]
    # Nothing cached: once the service is back, the same query is embedded and answered.
    monkeypatch.undo()
    assert search(search_app, query="backend engineer")[0] == 200


def test_repeated_queries_are_embedded_once_per_container(search_app, jobs, monkeypatch):
    embedding = importlib.import_module("flex_search.query_embedding")
    counting = _CountingEmbedder()
    monkeypatch.setattr(embedding, "get_embedder", lambda: counting)

    first = search(search_app, query="Figma 포트폴리오", top_k=2)
    second = search(search_app, query="  Figma 포트폴리오 ", top_k=3, metric="l2")

    assert counting.queries == ["Figma 포트폴리오"]
    assert first[1]["results"][0]["chunk_id"] == second[1]["results"][0]["chunk_id"]


def test_query_cache_evicts_the_least_recently_used():
    cache = importlib.import_module("flex_search.query_embedding").QueryEmbeddingCache(
        max_entries=2
    )
    cache.put("a", [1.0, 0.0])
    cache.put("b", [0.0, 1.0])
    assert cache.get("a") == Vector([1.0, 0.0]).to_text()  # "a" is now the most recent
    cache.put("c", [0.6, 0.8])
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert len(cache) == 2


# --- sample events -----------------------------------------------------------------------------


def test_sample_events_through_the_handler(search_app, jobs, db_engine: Engine):
    def load(name: str) -> dict[str, Any]:
        event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        return event

    with db_engine.begin() as connection:  # the GET sample asks for job 1
        first_id = connection.execute(text("SELECT min(id) FROM jobs")).scalar_one()
    assert first_id == 1

    status, body = call(search_app, load("search_post.json"))
    assert status == 200
    assert len(body["results"]) == 3
    assert body["results"][0]["job_id"] == jobs[0].id

    status, body = call(search_app, load("search_post_filtered.json"))
    assert status == 200
    assert body["results"]
    assert {result["company_id"] for result in body["results"]} == {2}
    assert body["results"][0]["chunk_index"] == 2  # the 쿠버네티스 paragraph

    # an exact skill in hybrid mode: the job that names it first, every result at least 0 similar
    status, body = call(search_app, load("search_post_hybrid.json"))
    assert status == 200
    assert body["results"][0]["job_id"] == jobs[1].id  # Product Designer: "fluency in Figma"
    assert "Figma" in body["results"][0]["chunk_text"]
    assert all(result["similarity"] >= 0.0 for result in body["results"])

    status, body = call(search_app, load("search_get_job.json"))
    assert (status, body["id"], body["chunk_count"]) == (200, 1, 3)

    status, body = call(search_app, load("search_bad_request.json"))
    assert status == 422
    fields = {detail["field"] for detail in body["error"]["details"]}
    assert {"query", "top_k", "metric"} <= fields


def test_search_settings_do_not_outlive_the_transaction(search_app, jobs):
    # SET LOCAL only: a session-level SET would pin the RDS Proxy connection and leak into the
    # next request served by this pooled connection.
    assert search(search_app, query="backend engineer", top_k=3)[0] == 200
    assert search(search_app, query="backend engineer", top_k=3, company_id=1)[0] == 200
    with db.get_engine().connect() as connection:  # the pool holds one connection
        assert connection.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"
        assert connection.execute(text("SHOW enable_seqscan")).scalar_one() == "on"


def test_bedrock_throttling_answers_503_before_the_lambda_would_time_out(
    search_app, jobs, monkeypatch
):
    # given Bedrock throttles every call, and an embedder that would keep retrying for long
    from devtools.fake_titan import FakeTitan
    from flex_shared.embeddings import RetryPolicy, TitanEmbedder

    embedding = importlib.import_module("flex_search.query_embedding")
    with FakeTitan() as fake:
        fake.fail_inputs_containing("", "ThrottlingException")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.endpoint_url)
        titan = TitanEmbedder(retry=RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.1))
        monkeypatch.setattr(embedding, "get_embedder", lambda: titan)

        # when a search arrives with 4.5 s left before the Lambda timeout
        started = time.monotonic()
        response = search_app.lambda_handler(
            rest_event("POST", "/search", body={"query": "backend engineer"}),
            FakeLambdaContext(remaining_ms=4_500),
        )
        elapsed = time.monotonic() - started

    # then the caller gets the JSON 503 naming the embedding service, in time: a timed-out
    # Lambda would give API Gateway's bare 502 and an on-call log with no reason
    assert response["statusCode"] == 503
    assert "embedding" in json.loads(response["body"])["error"]["message"]
    assert elapsed < 4.5


def test_error_logs_carry_the_api_gateway_request_id(search_app, jobs, monkeypatch):
    # given the embedding service is down, and the handler's log captured
    import io

    embedding = importlib.import_module("flex_search.query_embedding")
    monkeypatch.setattr(embedding, "get_embedder", _FailingEmbedder)
    buffer = io.StringIO()
    search_logger = importlib.import_module("flex_search.handler").logger
    # The layer's lines go through the function's logger; this process has imported every app
    # (each routed them at import), a search container only the search app: route them as it does
    layer_logger = logging.getLogger(LAYER_LOGGER)
    monkeypatch.setattr(layer_logger, "handlers", list(layer_logger.handlers))
    monkeypatch.setattr(layer_logger, "level", layer_logger.level)
    route_layer_logs(search_logger)
    handler = search_logger.registered_handler
    previous_stream = handler.setStream(buffer)
    event = rest_event("POST", "/search", body={"query": "backend engineer"})
    event["requestContext"]["requestId"] = "c0ffee00-1234-4321-abcd-0123456789ab"
    try:
        # when a search fails with a 503
        status, _ = call(search_app, event)
    finally:
        handler.setStream(previous_stream)

    # then the error log line names the request, so on call can find it from the access log
    assert status == 503
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    [error] = [line for line in lines if line.get("message") == "dependency unavailable"]
    assert error["correlation_id"] == "c0ffee00-1234-4321-abcd-0123456789ab"
