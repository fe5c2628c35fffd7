"""``GET /jobs/{job_id}/questions/suggested`` through the search function's handler, on the real
database with the local multilingual model: question templates ranked by closeness in meaning to
the job's description, in English and Korean; each question embedded once and kept until its
text or the model changes; bad requests refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from devtools.apigw import rest_event
from devtools.lambda_context import FakeLambdaContext
from flex_shared.embeddings import get_embedder
from flex_shared.models import Job, Question
from tests.test_search_support import JOBS, insert_jobs

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"

BACKEND_QUESTIONS = (
    "How would you find and fix a slow PostgreSQL query behind a Python REST API?",
    "파이썬 백엔드 API에서 느린 PostgreSQL 쿼리를 찾아 인덱스로 최적화한 경험을 말씀해 주세요.",
)
DESIGN_QUESTIONS = (
    "Walk us through a usability test you ran and how its findings changed your prototype.",
    "사용자 리서치와 사용성 테스트 결과로 디자인 시안을 바꾼 경험을 이야기해 주세요.",
)


@pytest.fixture
def search_app(load_function: Callable[[str], ModuleType]) -> ModuleType:
    return load_function("search")


@pytest.fixture
def jobs(db_session: Session) -> list[Job]:
    """The backend engineer and the product designer jobs (English descriptions)."""
    return insert_jobs(db_session, JOBS[:2])


def add_questions(
    session: Session, texts: Sequence[str], job_id: int | None = None, **fields: Any
) -> list[int]:
    questions = [
        Question(job_id=job_id, question_type="technical", question_text=text, **fields)
        for text in texts
    ]
    session.add_all(questions)
    session.commit()
    return [question.id for question in questions]


def suggested(app: ModuleType, job_id: int | str, **query: str) -> tuple[int, Any]:
    event = rest_event(
        "GET",
        f"/jobs/{job_id}/questions/suggested",
        query=query or None,
        resource="/jobs/{job_id}/questions/suggested",
        path_parameters={"job_id": str(job_id)},
    )
    response = app.lambda_handler(event, FakeLambdaContext(function_name="search"))
    return response["statusCode"], json.loads(response["body"])


class CountingEmbedder:
    """Counts the texts the container's embedder is asked to embed (the embedder itself runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        embedder = get_embedder()
        original = embedder.embed_documents

        def embed_documents(texts: Sequence[str], **kwargs: Any) -> list[list[float]]:
            self.texts.extend(texts)
            return original(texts, **kwargs)

        monkeypatch.setattr(embedder, "embed_documents", embed_documents)


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> CountingEmbedder:
    return CountingEmbedder(monkeypatch)


# --- ranking -----------------------------------------------------------------------------


def test_questions_matching_a_jobs_meaning_rank_above_another_jobs_in_english_and_korean(
    search_app: ModuleType, jobs: list[Job], db_session: Session
) -> None:
    # Given general questions fitting the backend job and the design job, in both languages
    backend_ids = add_questions(db_session, BACKEND_QUESTIONS)
    design_ids = add_questions(db_session, DESIGN_QUESTIONS)
    backend_job, design_job = jobs

    for job, fitting, other in (
        (backend_job, backend_ids, design_ids),
        (design_job, design_ids, backend_ids),
    ):
        # When the job's suggested questions are read
        status, body = suggested(search_app, job.id, top_k="4")

        # Then both of the fitting questions (English and Korean) come before the others
        assert status == 200, body
        order = [entry["question"]["id"] for entry in body["questions"]]
        assert set(order[:2]) == set(fitting), (job.title, body)
        assert set(order[2:]) == set(other)
        similarities = [entry["similarity"] for entry in body["questions"]]
        assert similarities == sorted(similarities, reverse=True)


def test_each_question_reports_its_nearest_chunk(
    search_app: ModuleType, jobs: list[Job], db_session: Session
) -> None:
    # Given a question close to one paragraph of the backend job
    (question_id,) = add_questions(
        db_session, ["Which PostgreSQL indexing and query tuning have you done with SQLAlchemy?"]
    )
    backend_job = jobs[0]
    question_vector = get_embedder().embed_documents(
        ["Which PostgreSQL indexing and query tuning have you done with SQLAlchemy?"]
    )[0]
    chunks = db_session.execute(
        text(
            "SELECT chunk_index, 1 - (embedding <=> CAST(:v AS vector)) FROM job_chunks"
            " WHERE job_id = :job ORDER BY 2 DESC"
        ),
        {"v": "[" + ",".join(map(repr, question_vector)) + "]", "job": backend_job.id},
    ).all()

    status, body = suggested(search_app, backend_job.id)

    assert status == 200
    (entry,) = body["questions"]
    assert entry["question"]["id"] == question_id
    assert entry["chunk_index"] == chunks[0][0] == 1  # the requirements paragraph
    assert entry["similarity"] == pytest.approx(chunks[0][1], abs=1e-6)


def test_the_jobs_own_and_the_general_questions_are_suggested_never_another_jobs(
    search_app: ModuleType, jobs: list[Job], db_session: Session
) -> None:
    backend_job, design_job = jobs
    own = add_questions(
        db_session, [BACKEND_QUESTIONS[0]], job_id=backend_job.id, expected_keywords=["SQL"]
    )
    general = add_questions(db_session, [DESIGN_QUESTIONS[0]])
    add_questions(db_session, [BACKEND_QUESTIONS[1]], job_id=design_job.id)

    status, body = suggested(search_app, backend_job.id, top_k="50")

    assert status == 200
    assert [entry["question"]["id"] for entry in body["questions"]] == own + general
    first = body["questions"][0]["question"]
    assert first["job_id"] == backend_job.id
    assert first["expected_keywords"] == ["SQL"]
    assert first["question_text"] == BACKEND_QUESTIONS[0]
    assert first["created_at"].endswith("Z")
    assert body["job_id"] == backend_job.id


def test_top_k_defaults_to_5_and_bounds_the_list(
    search_app: ModuleType, jobs: list[Job], db_session: Session
) -> None:
    add_questions(db_session, [f"Question {n} about Python services" for n in range(8)])

    assert len(suggested(search_app, jobs[0].id)[1]["questions"]) == 5
    assert len(suggested(search_app, jobs[0].id, top_k="1")[1]["questions"]) == 1
    assert len(suggested(search_app, jobs[0].id, top_k="50")[1]["questions"]) == 8


def test_a_job_without_question_templates_gets_an_empty_list(
    search_app: ModuleType, jobs: list[Job]
) -> None:
    assert suggested(search_app, jobs[0].id) == (200, {"job_id": jobs[0].id, "questions": []})


# --- embeddings kept ---------------------------------------------------------------------


def _embedded_at(engine: Engine) -> dict[int, Any]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT question_id, embedded_at FROM question_embeddings"))
        return {question_id: at for question_id, at in rows}


def test_a_question_is_embedded_once_until_its_text_or_the_model_changes(
    search_app: ModuleType,
    jobs: list[Job],
    db_session: Session,
    db_engine: Engine,
    embedded: CountingEmbedder,
) -> None:
    # Given three questions, suggested once (each embedded)
    ids = add_questions(db_session, [*BACKEND_QUESTIONS, DESIGN_QUESTIONS[0]])
    first = suggested(search_app, jobs[0].id)
    assert first[0] == 200
    assert sorted(embedded.texts) == sorted([*BACKEND_QUESTIONS, DESIGN_QUESTIONS[0]])
    stored = _embedded_at(db_engine)
    assert sorted(stored) == ids

    # When they are suggested again, for this job and another
    embedded.texts.clear()
    assert suggested(search_app, jobs[0].id) == first
    assert suggested(search_app, jobs[1].id)[0] == 200

    # Then nothing is embedded again
    assert embedded.texts == []
    assert _embedded_at(db_engine) == stored

    # When one question's text changes and another's embedding is of an older model
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE questions SET question_text = :t WHERE id = :id"),
            {"t": "Tell us about a Figma prototype you are proud of.", "id": ids[0]},
        )
        connection.execute(
            text(
                "UPDATE question_embeddings SET embedding_model = 'old-model'"
                " WHERE question_id = :id"
            ),
            {"id": ids[1]},
        )
    status, body = suggested(search_app, jobs[0].id)

    # Then exactly those two are embedded again, and kept with the current model
    assert status == 200
    assert sorted(embedded.texts) == sorted(
        ["Tell us about a Figma prototype you are proud of.", BACKEND_QUESTIONS[1]]
    )
    with db_engine.connect() as connection:
        models = set(
            connection.execute(text("SELECT embedding_model FROM question_embeddings")).scalars()
        )
    assert models == {get_embedder().model_id}
    texts = {
        entry["question"]["id"]: entry["question"]["question_text"] for entry in body["questions"]
    }
    assert texts[ids[0]] == "Tell us about a Figma prototype you are proud of."


def test_only_new_questions_are_embedded(
    search_app: ModuleType, jobs: list[Job], db_session: Session, embedded: CountingEmbedder
) -> None:
    add_questions(db_session, [BACKEND_QUESTIONS[0]])
    suggested(search_app, jobs[0].id)
    embedded.texts.clear()

    add_questions(db_session, [DESIGN_QUESTIONS[0]])
    status, body = suggested(search_app, jobs[0].id)

    assert status == 200
    assert embedded.texts == [DESIGN_QUESTIONS[0]]
    assert len(body["questions"]) == 2


# --- refusals ----------------------------------------------------------------------------


def test_a_job_not_in_search_has_no_suggested_questions(
    search_app: ModuleType, jobs: list[Job], db_session: Session, db_engine: Engine
) -> None:
    add_questions(db_session, [BACKEND_QUESTIONS[0]])
    with db_engine.begin() as connection:
        # as ingestion takes a job out of search
        connection.execute(
            text("UPDATE jobs SET deleted_at = timezone('utc', now()) WHERE id = :id"),
            {"id": jobs[0].id},
        )
        connection.execute(text("DELETE FROM job_chunks WHERE job_id = :id"), {"id": jobs[0].id})

    for job_id in (jobs[0].id, 999):
        status, body = suggested(search_app, job_id)
        assert status == 404, body
        assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("job_id", "query", "field"),
    [
        ("1", {"top_k": "0"}, "top_k"),
        ("1", {"top_k": "51"}, "top_k"),
        ("1", {"top_k": "abc"}, "top_k"),
        ("0", {}, "job_id"),
        ("abc", {}, "job_id"),
        ("2147483648", {}, "job_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    search_app: ModuleType, jobs: list[Job], job_id: str, query: dict[str, str], field: str
) -> None:
    status, body = suggested(search_app, job_id, **query)

    assert status == 422, body
    assert {detail["field"] for detail in body["error"]["details"]} == {field}


def test_a_job_embedded_by_another_model_is_a_conflict_not_a_wrong_ranking(
    search_app: ModuleType, jobs: list[Job], db_session: Session, db_engine: Engine
) -> None:
    add_questions(db_session, [BACKEND_QUESTIONS[0]])
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE job_chunks SET embedding_model = 'other-model' WHERE job_id = :id"),
            {"id": jobs[0].id},
        )

    status, body = suggested(search_app, jobs[0].id)

    assert status == 409
    assert "ingest it again" in body["error"]["message"]


def test_the_sample_event_is_answered(
    search_app: ModuleType, jobs: list[Job], db_session: Session
) -> None:
    assert jobs[0].id == 1
    add_questions(db_session, BACKEND_QUESTIONS)
    event = json.loads((EVENTS_DIR / "search_suggested_questions.json").read_text())

    response = search_app.lambda_handler(event, FakeLambdaContext(function_name="search"))

    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert body["job_id"] == 1
    assert len(body["questions"]) == 2
