"""``POST /search`` modes (``vector``, ``keyword``, ``hybrid``), ``min_similarity`` and
``score``, through the Lambda handler on the embedded PostgreSQL + pgvector.

Embeddings come from ``EMBEDDING_PROVIDER=local`` (the multilingual model; conftest): what is
"near" here is meaning, as a user would see it. The keyword side is the database's own
``search_vector`` column and ``job_chunk_search_query`` (migration 0003).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from flex_shared.models import Job
from tests.test_search_support import JobSpec, call, insert_jobs, rest_event

KOTLIN = JobSpec(
    company_id=1,
    title="Android Engineer",
    paragraphs=(
        "Our Android client is written in Kotlin with Jetpack Compose and coroutines.",
        "Engineers own staged releases to the Play Store and fix crashes reported by users.",
    ),
)
JAVA = JobSpec(
    company_id=1,
    title="Backend Developer (Java)",
    paragraphs=(
        "Backend developers build payment APIs in Java and Spring Boot on the JVM.",
        "You design relational schemas and tune MySQL queries for a checkout service.",
    ),
)
SRE = JobSpec(
    company_id=2,
    title="SRE 엔지니어",
    paragraphs=(
        "쿠버네티스를 운영하며 배포 자동화를 개선해 본 경험이 있으신 분을 찾습니다.",
        "장애 대응 경험이 있으면 좋습니다. 온콜 순번에 참여합니다.",
    ),
)
QA = JobSpec(
    company_id=2,
    title="QA 자동화 엔지니어",
    paragraphs=(
        "Appium으로 모바일 앱 테스트를 자동화하고 회귀 테스트를 관리합니다.",
        "버그를 재현하고 개발자와 함께 원인을 추적합니다.",
    ),
)
ANALYST = JobSpec(
    company_id=3,
    title="Data Scientist",
    paragraphs=(
        "You run experiments on pricing and analyze the results with the product team.",
        "Fluent SQL and statistics; causal inference is a plus.",
    ),
)
SPECS = (KOTLIN, JAVA, SRE, QA, ANALYST)
MODES = ("vector", "keyword", "hybrid")


@pytest.fixture
def search_app(load_function: Callable[[str], ModuleType]) -> Iterator[ModuleType]:
    app = load_function("search")
    embedding = sys.modules["flex_search.query_embedding"]
    embedding.QUERY_CACHE.clear()
    yield app
    embedding.QUERY_CACHE.clear()


@pytest.fixture
def jobs(db_session: Session) -> dict[str, Job]:
    inserted = insert_jobs(db_session, SPECS)
    return {spec.title: job for spec, job in zip(SPECS, inserted, strict=True)}


def search(app: ModuleType, **body: Any) -> list[dict[str, Any]]:
    status, answer = call(app, rest_event("POST", "/search", body=body))
    assert status == 200, answer
    results: list[dict[str, Any]] = answer["results"]
    return results


def titles(results: list[dict[str, Any]]) -> list[str]:
    return [result["job_title"] for result in results]


# --- keyword -------------------------------------------------------------------------------


def test_keyword_mode_finds_only_chunks_that_name_the_skill(search_app, jobs):
    # Kotlin's nearest role in meaning is the Java one; the keyword list holds only Kotlin
    results = search(search_app, query="Kotlin", mode="keyword", top_k=10)
    assert [r["chunk_text"] for r in results] == [KOTLIN.paragraphs[0]]
    assert results[0]["job_id"] == jobs["Android Engineer"].id


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("쿠버네티스 운영", "SRE 엔지니어"),  # the text says 쿠버네티스를
        ("장애 대응 경험", "SRE 엔지니어"),  # the text says 경험이
        ("쿠버네티스를 운영한 경험", "SRE 엔지니어"),  # particles and endings in the query too
        ("모바일 앱 테스트 자동화", "QA 자동화 엔지니어"),  # 테스트를 자동화하고
        ("Appium", "QA 자동화 엔지니어"),  # a Latin word glued to a particle: Appium으로
        ("Appium으로 테스트", "QA 자동화 엔지니어"),
    ],
)
def test_korean_words_match_whatever_particle_follows(search_app, jobs, query, title):
    results = search(search_app, query=query, mode="keyword")
    assert results, query
    assert {r["job_title"] for r in results} == {title}


@pytest.mark.parametrize(
    "query",
    [
        "running experiments",  # the text says "run experiments"
        "analyzing result",  # "analyze the results"
        "experiment",
    ],
)
def test_english_words_match_their_inflections(search_app, jobs, query):
    results = search(search_app, query=query, mode="keyword")
    assert titles(results) == ["Data Scientist"]


def test_keyword_mode_needs_every_word(search_app, jobs):
    # "Kotlin" is in one chunk and "MySQL" in another job: no chunk has both
    assert search(search_app, query="Kotlin MySQL", mode="keyword") == []


@pytest.mark.parametrize("query", ["the and of", "있는 및 등", "!!!"])
def test_a_query_without_searchable_words_finds_nothing_by_keyword(search_app, jobs, query):
    assert search(search_app, query=query, mode="keyword") == []


def test_keyword_results_are_ordered_by_text_rank(search_app, jobs):
    results = search(search_app, query="테스트", mode="keyword", top_k=10)
    assert len(results) >= 1
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


# --- hybrid --------------------------------------------------------------------------------


def test_hybrid_ranks_the_chunk_that_names_an_exact_skill_first(search_app, jobs):
    results = search(search_app, query="Kotlin", mode="hybrid", top_k=3)
    assert results[0]["chunk_text"] == KOTLIN.paragraphs[0]
    # the rest of the list is still there: the nearest chunks by meaning
    assert len(results) == 3


def test_hybrid_still_finds_a_paraphrase_that_shares_no_word(search_app, jobs):
    query = "서비스 장애가 나면 밤에도 복구하는 사람"  # no chunk has all these words
    assert search(search_app, query=query, mode="keyword") == []
    vector = search(search_app, query=query, mode="vector", top_k=4)
    hybrid = search(search_app, query=query, mode="hybrid", top_k=4)
    # nothing to fuse from the keyword side: hybrid keeps the vector order
    assert [r["chunk_id"] for r in hybrid] == [r["chunk_id"] for r in vector]
    assert hybrid[0]["job_title"] == "SRE 엔지니어"


def test_hybrid_score_is_reciprocal_rank_fusion(search_app, jobs):
    vector = search(search_app, query="Appium 테스트 자동화", mode="vector", top_k=10)
    keyword = search(search_app, query="Appium 테스트 자동화", mode="keyword", top_k=10)
    hybrid = search(search_app, query="Appium 테스트 자동화", mode="hybrid", top_k=10)
    expected: dict[int, float] = {}
    for ranked in (vector, keyword):
        for rank, result in enumerate(ranked, start=1):
            expected[result["chunk_id"]] = expected.get(result["chunk_id"], 0.0) + 1 / (60 + rank)
    assert {r["chunk_id"]: r["score"] for r in hybrid} == pytest.approx(expected)
    scores = [r["score"] for r in hybrid]
    assert scores == sorted(scores, reverse=True)
    assert hybrid[0]["chunk_text"] == QA.paragraphs[0]  # in both lists, first in both


# --- every mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
@pytest.mark.parametrize("mode", MODES)
def test_every_result_has_its_vector_distance_and_similarity(search_app, jobs, mode, metric):
    query = "Appium 모바일 테스트"
    nearest = {
        r["chunk_id"]: r
        for r in search(search_app, query=query, mode="vector", metric=metric, top_k=100)
    }
    results = search(search_app, query=query, mode=mode, metric=metric, top_k=100)
    assert results
    for result in results:
        # the same distance and similarity as the vector search reports for that chunk
        assert result["distance"] == pytest.approx(
            nearest[result["chunk_id"]]["distance"], abs=1e-6
        )
        assert result["similarity"] == pytest.approx(
            nearest[result["chunk_id"]]["similarity"], abs=1e-6
        )
        assert -1.0 <= result["similarity"] <= 1.0
        assert math.isfinite(result["score"])


def test_vector_score_is_the_similarity(search_app, jobs):
    results = search(search_app, query="mobile test automation", mode="vector", top_k=10)
    assert [r["score"] for r in results] == [r["similarity"] for r in results]
    assert results[0]["job_title"] == "QA 자동화 엔지니어"  # English query, Korean text


@pytest.mark.parametrize("mode", MODES)
def test_filters_apply_in_every_mode(search_app, jobs, mode):
    # "테스트" and a test-automation meaning: QA (company 2) first without a filter
    query = "테스트 자동화"
    by_company = search(search_app, query=query, mode=mode, company_id=1, top_k=10)
    assert {r["company_id"] for r in by_company} <= {1}
    by_job = search(search_app, query=query, mode=mode, job_id=jobs["SRE 엔지니어"].id, top_k=10)
    assert {r["job_id"] for r in by_job} <= {jobs["SRE 엔지니어"].id}
    both = search(
        search_app, query=query, mode=mode, company_id=2, job_id=jobs["QA 자동화 엔지니어"].id
    )
    assert both
    assert {(r["company_id"], r["job_title"]) for r in both} == {(2, "QA 자동화 엔지니어")}
    if mode == "vector":  # every chunk of the company, nearest first
        assert len(by_company) == 4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "query", ["pastry chef for a French bakery", "한식 조리사 주방 보조", "Kotlin pastry chef"]
)
def test_min_similarity_answers_nothing_matches_with_an_empty_list(search_app, jobs, mode, query):
    assert search(search_app, query=query, mode=mode, min_similarity=0.5) == []


@pytest.mark.parametrize("mode", MODES)
def test_min_similarity_drops_exactly_the_less_similar_results(search_app, jobs, mode):
    query = "테스트 자동화"
    everything = search(search_app, query=query, mode=mode, top_k=100)
    floor = sorted(r["similarity"] for r in everything)[len(everything) // 2]
    kept = search(search_app, query=query, mode=mode, top_k=100, min_similarity=floor)
    expected = [r["chunk_id"] for r in everything if r["similarity"] >= floor]
    if mode == "hybrid":  # fusion ranks afresh: the same chunks, each at least that similar
        assert sorted(r["chunk_id"] for r in kept) == sorted(expected)
    else:
        assert [r["chunk_id"] for r in kept] == expected
    assert all(r["similarity"] >= floor for r in kept)


def test_default_mode_is_vector(search_app, jobs):
    default = search(search_app, query="Kotlin", top_k=4)
    vector = search(search_app, query="Kotlin", mode="vector", top_k=4)
    assert default == vector
    assert len(default) == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "mode": None}, "mode"),
        ({"query": "x", "min_similarity": 1.5}, "min_similarity"),
        ({"query": "x", "min_similarity": -1.01}, "min_similarity"),
        ({"query": "x", "min_similarity": "0.5"}, "min_similarity"),
        ({"query": "x", "min_similarity": True}, "min_similarity"),
    ],
)
def test_bad_mode_or_min_similarity_is_422_naming_the_field(search_app, database_url, body, field):
    status, answer = call(search_app, rest_event("POST", "/search", body=body))
    assert status == 422
    assert answer["error"]["code"] == "validation_error"
    assert field in {detail["field"] for detail in answer["error"]["details"]}


@pytest.mark.parametrize("value", [-1, 1, 0])
def test_min_similarity_bounds_are_inclusive(search_app, jobs, value):
    results = search(search_app, query="Kotlin", min_similarity=value, top_k=10)
    assert all(r["similarity"] >= value - 1e-9 for r in results)
    if value == -1:
        assert len(results) == 10


def test_keyword_search_finds_what_ingestion_wrote_and_forgets_what_it_removed(
    search_app, jobs, db_engine: Engine
):
    # the search column is computed by PostgreSQL from chunk_text on every write
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE job_chunks SET chunk_text = 'Terraform modules for AWS accounts'"
                " WHERE chunk_text = :old"
            ),
            {"old": JAVA.paragraphs[1]},
        )
    assert titles(search(search_app, query="terraform module", mode="keyword")) == [
        "Backend Developer (Java)"
    ]
    assert search(search_app, query="MySQL", mode="keyword") == []


# --- the tokenisation, in SQL (migration 0003) -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tsquery"),
    [
        ("경험이", "'경험'"),  # a particle is cut
        ("운영한 경험", "'경험' & '운영'"),  # a common ending too
        ("쿠버네티스를", "'쿠버' & '버네' & '네티' & '티스'"),  # the AND of the stem's bigrams
        ("Appium으로", "'appium'"),  # a particle-only run after a Latin word says nothing
        ("앱", "'앱':*"),  # one syllable: a prefix match
        ("회의", "'회의'"),  # two syllables ending like a particle stay whole
        ("engineers running", "'engin' & 'run'"),  # English stemmed
        ("the and of 및 있는", None),  # nothing searchable: no keyword match at all
    ],
)
def test_query_tokenisation(db_engine: Engine, query: str, tsquery: str | None):
    with db_engine.connect() as connection:
        found = connection.execute(
            text("SELECT CAST(job_chunk_search_query(:q, true) AS text)"), {"q": query}
        ).scalar_one()
    if tsquery is None:
        assert found is None
    else:  # the same terms, in any order
        assert sorted(found.split(" & ")) == sorted(tsquery.split(" & "))


def test_chunk_tokenisation_splits_scripts_and_indexes_hangul_bigrams(db_engine: Engine):
    with db_engine.connect() as connection:
        lexemes = connection.execute(
            text("SELECT tsvector_to_array(job_chunk_search_vector(:t))"),
            {"t": "Engineers는 Appium으로 쿠버네티스를 운영 앱"},
        ).scalar_one()
    assert set(lexemes) == {
        "engin", "appium", "는", "으로", "쿠버", "버네", "네티", "티스", "스를", "운영", "앱"
    }  # fmt: skip
