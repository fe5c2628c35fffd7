"""The S3 ingestion Lambda, end to end: moto S3, the embedded PostgreSQL, the real handler.

Given objects in a (mocked) bucket, when S3-shaped events reach ``lambda_handler``, then the
jobs and chunks a user would search are (or are not) in the database.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from devtools.lambda_context import FakeLambdaContext
from devtools.local.s3 import build_s3_event
from devtools.local.template import Bucket
from flex_shared import config
from flex_shared.chunking import chunk_text
from flex_shared.embeddings import EmbeddingUnavailable, get_embedder
from flex_shared.models import InterviewResult, InterviewSession, Job, JobChunk

BUCKET = "flex-dev-jobs-123456789012-us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS = REPO_ROOT / "events"
DOCS = REPO_ROOT / "tests" / "data" / "ingest"

KOREAN_JOB = (
    "# 백엔드 개발자 채용\n\n"
    "우리는 채용 플랫폼의 검색 서비스를 함께 만들 백엔드 개발자를 찾습니다.\n\n"
    "자격 요건: Python 3년 이상, PostgreSQL 운영 경험.\n\n"
    "우대 사항: pgvector, AWS Lambda 경험."
)


def sibling(name: str) -> ModuleType:
    """A module of the function's package (importable once ``load_function`` ran)."""
    return importlib.import_module(name)


@dataclass
class Ingest:
    """Puts objects into the mocked bucket and delivers S3 events for them."""

    app: ModuleType
    s3: Any
    engine: Engine
    log: io.StringIO
    _sequence: int = 0x0067D3F5AD8A1C0000

    def next_sequencer(self) -> str:
        self._sequence += 0x100
        return f"{self._sequence:018X}"

    def put(self, key: str, body: bytes | str, metadata: dict[str, str] | None = None) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=metadata or {})
        return self.next_sequencer()

    def record(
        self,
        event_name: str,
        key: str,
        sequencer: str,
        *,
        size: int | None = None,
        version_id: str | None = None,
    ) -> dict[str, Any]:
        """One notification record, as S3 sends it."""
        bucket = Bucket("JobsBucket", BUCKET, versioned=False)
        event = build_s3_event(
            bucket,
            event_name,
            key,
            sequencer=sequencer,
            configuration_id="ingest",
            size=size,
            version_id=version_id,
        )
        record: dict[str, Any] = event["Records"][0]
        return record

    def invoke(self, *records: dict[str, Any]) -> dict[str, Any]:
        return self.invoke_event({"Records": list(records)})

    def invoke_event(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.app.lambda_handler(
            event, FakeLambdaContext(function_name="flex-dev-ingest-job", remaining_ms=60_000)
        )
        return result

    def upload(
        self, key: str, body: bytes | str, metadata: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], str]:
        sequencer = self.put(key, body, metadata)
        return self.invoke(self.record("ObjectCreated:Put", key, sequencer)), sequencer

    def remove(self, key: str) -> dict[str, Any]:
        self.s3.delete_object(Bucket=BUCKET, Key=key)
        return self.invoke(self.record("ObjectRemoved:Delete", key, self.next_sequencer()))

    # --- what a user would see in the database ---
    def job(self, key: str) -> Job | None:
        with Session(self.engine) as session:
            return session.scalars(
                select(Job).where(Job.source_bucket == BUCKET, Job.source_key == key)
            ).one_or_none()

    def chunks(self, job_id: int) -> list[JobChunk]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(JobChunk).where(JobChunk.job_id == job_id).order_by(JobChunk.chunk_index)
                )
            )

    def job_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM jobs")).scalar_one())

    def chunk_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM job_chunks")).scalar_one())

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]

    def rejections(self) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("message") == "object rejected"]


@pytest.fixture
def ingest(load_function: Callable[[str], ModuleType], db_engine: Engine) -> Iterator[Ingest]:
    app = load_function("ingest_job")
    s3_source = sibling("flex_ingest.source")
    buffer = io.StringIO()
    handler = sibling("flex_ingest.handler").logger.registered_handler
    previous_stream = handler.setStream(buffer)
    with mock_aws():
        s3_source.reset_s3_client()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        try:
            yield Ingest(app=app, s3=s3, engine=db_engine, log=buffer)
        finally:
            s3_source.reset_s3_client()
            handler.setStream(previous_stream)


@pytest.fixture
def small_object_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("INGEST_MAX_OBJECT_BYTES", "2000")
    config.reset_settings()
    yield 2000
    monkeypatch.delenv("INGEST_MAX_OBJECT_BYTES")
    config.reset_settings()


class CountingEmbedder:
    """The configured embedder, counting calls; optionally slow or failing for some texts."""

    def __init__(self, delay: float = 0.0, fail_when: Callable[[str], bool] | None = None):
        self._inner = get_embedder()
        self.model_id = self._inner.model_id
        self.dimensions = self._inner.dimensions
        self.calls = 0
        self.delay = delay
        self.fail_when = fail_when

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        self.calls += 1
        if self.fail_when and any(self.fail_when(t) for t in texts):
            raise EmbeddingUnavailable("throttled past the retry budget")
        time.sleep(self.delay)
        return self._inner.embed_documents(texts, deadline=deadline)

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        return self._inner.embed_query(text, deadline=deadline)


@pytest.fixture
def counting_embedder(monkeypatch: pytest.MonkeyPatch, ingest: Ingest) -> CountingEmbedder:
    service = sibling("flex_ingest.service")
    embedder = CountingEmbedder()
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    return embedder


def assert_searchable(ingest: Ingest, job: Job, description: str) -> list[JobChunk]:
    """The job's chunks are exactly the chunker's pieces of its description, each with the
    job's company and the model that embedded it."""
    chunks = ingest.chunks(job.id)
    assert [chunk.chunk_text for chunk in chunks] == chunk_text(description)
    assert [chunk.chunk_index for chunk in chunks] == list(range(len(chunks)))
    embedder = get_embedder()
    for chunk in chunks:
        assert chunk.company_id == job.company_id
        assert chunk.embedding_model == embedder.model_id
        assert chunk.embedding_dimensions == embedder.dimensions == 1024
        assert len(chunk.embedding) == 1024
    return chunks


# --- the sample events in events/ ---------------------------------------------------------


def test_put_event_file_with_encoded_korean_key_creates_the_job(ingest: Ingest) -> None:
    # Given the object the sample event names (its key URL-encoded, '+' for spaces)
    key = "jobs/7/백엔드 개발자 채용.txt"
    ingest.put(key, KOREAN_JOB)
    event = json.loads((EVENTS / "ingest_job_put.json").read_text(encoding="utf-8"))

    result = ingest.invoke_event(event)

    assert result["outcomes"] == ["written"]
    job = ingest.job(key)
    assert job is not None
    assert (job.company_id, job.title) == (7, "백엔드 개발자 채용")
    assert job.description == KOREAN_JOB
    assert job.source_sequencer == "0067D3F5AD8A1C4F3E"
    assert job.deleted_at is None
    assert_searchable(ingest, job, KOREAN_JOB)


def test_delete_event_file_takes_the_job_out_of_search_and_keeps_interviews(
    ingest: Ingest,
) -> None:
    key = "jobs/7/백엔드 개발자 채용.txt"
    ingest.put(key, KOREAN_JOB)
    ingest.invoke_event(json.loads((EVENTS / "ingest_job_put.json").read_text(encoding="utf-8")))
    job = ingest.job(key)
    assert job is not None
    with Session(ingest.engine) as session, session.begin():
        interview = InterviewSession(applicant_id=42, job_id=job.id)
        session.add(interview)
        session.flush()
        session.add(InterviewResult(interview_id=interview.id, question_id=1, overall_score=80))
    ingest.s3.delete_object(Bucket=BUCKET, Key=key)

    result = ingest.invoke_event(
        json.loads((EVENTS / "ingest_job_delete.json").read_text(encoding="utf-8"))
    )

    assert result["outcomes"] == ["removed"]
    removed = ingest.job(key)
    assert removed is not None
    assert removed.deleted_at is not None
    assert ingest.chunks(job.id) == []
    with Session(ingest.engine) as session:
        assert session.scalars(select(InterviewSession)).one().job_id == job.id
        assert session.scalars(select(InterviewResult)).one().overall_score == 80


def test_s3_test_event_is_accepted_quietly(
    ingest: Ingest, capsys: pytest.CaptureFixture[str]
) -> None:
    event = json.loads((EVENTS / "ingest_job_test_event.json").read_text(encoding="utf-8"))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Powertools' "No application metrics to publish"
        result = ingest.invoke_event(event)

    assert result == {"records": 0, "outcomes": []}
    assert ingest.job_count() == 0
    assert ingest.rejections() == []
    assert '"RecordsReceived"' in capsys.readouterr().out


def test_multi_record_event_with_one_bad_record_processes_the_others(ingest: Ingest) -> None:
    ingest.put(
        "jobs/3/platform-engineer.json",
        json.dumps(
            {
                "company_id": 3,
                "title": "Platform Engineer",
                "description": "Run our Kubernetes platform.\n\nOn-call one week in six.",
                "location": "Seoul",
            }
        ),
    )
    ingest.put("jobs/12/Data Engineer (Seoul).pdf", (DOCS / "data_engineer.pdf").read_bytes())
    ingest.put("jobs/3/broken.json", b'{"company_id": 3, "title": ')
    ingest.put("jobs/3/인프라 엔지니어.md", "## 인프라 엔지니어\n\nTerraform으로 AWS를 관리합니다.")
    event = json.loads((EVENTS / "ingest_job_multi.json").read_text(encoding="utf-8"))

    result = ingest.invoke_event(event)

    assert result["outcomes"] == ["written", "written", "rejected", "written"]
    platform = ingest.job("jobs/3/platform-engineer.json")
    assert platform is not None
    assert platform.source_metadata == {"document": {"location": "Seoul"}}
    pdf = ingest.job("jobs/12/Data Engineer (Seoul).pdf")
    assert pdf is not None
    assert (pdf.company_id, pdf.title) == (12, "Senior Data Engineer")
    infra = ingest.job("jobs/3/인프라 엔지니어.md")
    assert infra is not None
    assert infra.title == "인프라 엔지니어"
    assert ingest.job("jobs/3/broken.json") is None
    [rejection] = ingest.rejections()
    assert rejection["key"] == "jobs/3/broken.json"
    assert rejection["reason"] == "invalid_json"
    assert rejection["correlation_id"] == "11AA22BB33CC44DF"  # the S3 request of that record


# --- formats and encodings ------------------------------------------------------------------


def test_json_job_with_korean_text(ingest: Ingest) -> None:
    description = "SQL로 지표를 설계합니다."
    body = {"company_id": 5, "title": "데이터 분석가", "description": description}

    result, _ = ingest.upload("uploads/analyst.json", json.dumps(body, ensure_ascii=False))

    assert result["outcomes"] == ["written"]
    job = ingest.job("uploads/analyst.json")
    assert job is not None
    assert (job.company_id, job.title, job.description) == (5, "데이터 분석가", description)
    assert_searchable(ingest, job, description)


def test_text_title_from_metadata_company_from_metadata(ingest: Ingest) -> None:
    text_body = "We need a QA engineer.\n\nPath: C:\\tests\\new\tuses tabs\\and backslashes."

    ingest.upload("uploads/qa.txt", text_body, metadata={"company-id": "9", "title": "QA Engineer"})

    job = ingest.job("uploads/qa.txt")
    assert job is not None
    assert (job.company_id, job.title) == (9, "QA Engineer")
    # Tabs, backslashes and newlines survive COPY's text format unchanged.
    assert job.description == text_body
    assert_searchable(ingest, job, text_body)


def test_markdown_title_is_the_first_heading(ingest: Ingest) -> None:
    ingest.upload("jobs/4/sre.md", "\n\n## Site Reliability Engineer ##\n\nKeep things up.")

    job = ingest.job("jobs/4/sre.md")
    assert job is not None
    assert (job.company_id, job.title) == (4, "Site Reliability Engineer")


def test_html_keeps_only_visible_text(ingest: Ingest) -> None:
    ingest.upload("jobs/8/ml.html", (DOCS / "ml_engineer.html").read_bytes())

    job = ingest.job("jobs/8/ml.html")
    assert job is not None
    assert job.title == "머신러닝 엔지니어 채용"  # the page's <title>
    assert "추천 시스템을 함께 만들 머신러닝 엔지니어를 찾습니다." in job.description
    assert "Salary <negotiable>." in job.description
    for invisible in ("tracking-code", "console.log", "font-family", "<b>"):
        assert invisible not in job.description
    assert_searchable(ingest, job, job.description)


def test_pdf_text_is_extracted(ingest: Ingest) -> None:
    ingest.upload(
        "jobs/12/data.pdf", (DOCS / "data_engineer.pdf").read_bytes(), {"title": "Data Eng"}
    )

    job = ingest.job("jobs/12/data.pdf")
    assert job is not None
    assert job.title == "Data Eng"
    assert "streaming pipelines on Kafka and Flink" in job.description
    assert "Experience with PostgreSQL and pgvector is a plus." in job.description
    assert_searchable(ingest, job, job.description)


def test_docx_paragraphs_and_table_cells_are_extracted(ingest: Ingest) -> None:
    ingest.upload("jobs/2/frontend.docx", (DOCS / "frontend_engineer.docx").read_bytes())

    job = ingest.job("jobs/2/frontend.docx")
    assert job is not None
    assert job.title == "프론트엔드 개발자 (React)"
    assert "Stack:\tReact, TypeScript" in job.description
    assert "서울 강남구" in job.description
    assert "우대사항: 디자인 시스템 구축 경험" in job.description


@pytest.mark.parametrize(
    ("label", "encode"),
    [
        ("utf-8", lambda s: s.encode("utf-8")),
        ("utf-8 with BOM", lambda s: s.encode("utf-8-sig")),
        ("utf-16-le with BOM", lambda s: b"\xff\xfe" + s.encode("utf-16-le")),
        ("utf-16-be with BOM", lambda s: b"\xfe\xff" + s.encode("utf-16-be")),
        ("cp949", lambda s: s.encode("cp949")),
        ("euc-kr", lambda s: s.encode("euc-kr")),
    ],
)
def test_korean_text_in_every_supported_encoding_is_stored_without_mojibake(
    ingest: Ingest, label: str, encode: Callable[[str], bytes]
) -> None:
    ingest.upload("jobs/7/backend.txt", encode(KOREAN_JOB))

    job = ingest.job("jobs/7/backend.txt")
    assert job is not None, label
    assert job.description == KOREAN_JOB
    assert job.title == "백엔드 개발자 채용"


def test_non_ascii_metadata_title_is_decoded(ingest: Ingest) -> None:
    # S3 returns non-ASCII user metadata RFC 2047-encoded.
    ingest.upload(
        "jobs/7/a.txt",
        "본문입니다.",
        metadata={"title": "=?UTF-8?B?7J247ZSE6528IOyXlOyngOuLiOyWtA==?="},
    )

    job = ingest.job("jobs/7/a.txt")
    assert job is not None
    assert job.title == "인프라 엔지니어"


# --- identity, order, idempotency --------------------------------------------------------------


def test_reupload_updates_the_same_job_and_replaces_its_chunks(ingest: Ingest) -> None:
    ingest.upload("jobs/1/dev.txt", "Old title\n\nOld text about COBOL.")
    first = ingest.job("jobs/1/dev.txt")
    assert first is not None
    new_text = "New title\n\nNew text about Rust.\n\nAnd about Go."

    ingest.upload("jobs/1/dev.txt", new_text)

    second = ingest.job("jobs/1/dev.txt")
    assert second is not None
    assert second.id == first.id
    assert (second.title, second.description) == ("New title", new_text)
    chunks = assert_searchable(ingest, second, new_text)
    assert all("COBOL" not in chunk.chunk_text for chunk in chunks)
    assert ingest.job_count() == 1


def test_unchanged_content_is_not_embedded_again(
    ingest: Ingest, counting_embedder: CountingEmbedder
) -> None:
    ingest.upload("jobs/1/dev.txt", "Backend developer\n\nPython.", {"title": "Backend"})
    before = ingest.job("jobs/1/dev.txt")
    assert before is not None
    chunk_ids = [chunk.id for chunk in ingest.chunks(before.id)]

    # Same bytes, new title and company in the metadata.
    result, _ = ingest.upload(
        "jobs/1/dev.txt",
        "Backend developer\n\nPython.",
        {"title": "Backend (remote)", "company-id": "2"},
    )

    assert result["outcomes"] == ["kept_chunks"]
    assert counting_embedder.calls == 1
    after = ingest.job("jobs/1/dev.txt")
    assert after is not None
    assert (after.id, after.title, after.company_id) == (before.id, "Backend (remote)", 2)
    chunks = ingest.chunks(after.id)
    assert [chunk.id for chunk in chunks] == chunk_ids
    assert {chunk.company_id for chunk in chunks} == {2}


def test_duplicate_delivery_leaves_the_same_state(
    ingest: Ingest, counting_embedder: CountingEmbedder
) -> None:
    sequencer = ingest.put("jobs/1/dev.txt", "Dev\n\nText.")
    record = ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", sequencer)
    ingest.invoke(record)
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None

    result = ingest.invoke(record)

    assert result["outcomes"] == ["stale"]
    assert counting_embedder.calls == 1
    again = ingest.job("jobs/1/dev.txt")
    assert again is not None
    assert (again.id, again.updated_at, again.description) == (
        job.id,
        job.updated_at,
        job.description,
    )
    assert ingest.chunk_count() == len(chunk_text("Dev\n\nText."))


def test_older_event_delivered_late_changes_nothing(ingest: Ingest) -> None:
    old = ingest.put("jobs/1/dev.txt", "Version one\n\nfirst")
    new = ingest.put("jobs/1/dev.txt", "Version two\n\nsecond")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", new))

    result = ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", old))

    assert result["outcomes"] == ["stale"]
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert (job.title, job.source_sequencer) == ("Version two", new)


def test_sequencers_of_different_lengths_compare_right_padded(ingest: Ingest) -> None:
    # Pinned choice: the shorter sequencer is padded with zeros on the RIGHT (S3 user guide).
    # "0067D3F5B0" -> "0067D3F5B000000000", which is after "0067D3F5AD8A1C4F3E"; padding on
    # the left would have made it "000000000067D3F5B0", before it.
    ingest.put("jobs/1/dev.txt", "Short sequencer\n\nkept")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", "0067D3F5B0"))
    ingest.put("jobs/1/dev.txt", "Long sequencer\n\nignored")

    result = ingest.invoke(
        ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", "0067D3F5AD8A1C4F3E")
    )

    assert result["outcomes"] == ["stale"]
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert job.title == "Short sequencer"


def test_sequencer_equal_after_padding_is_the_same_event(ingest: Ingest) -> None:
    ingest.put("jobs/1/dev.txt", "First\n\ntext")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", "0067D3F5B0"))

    result = ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", "0067d3f5b00000"))

    assert result["outcomes"] == ["stale"]


def test_late_create_older_than_the_delete_changes_nothing(ingest: Ingest) -> None:
    first = ingest.put("jobs/1/dev.txt", "Dev\n\ntext")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", first))
    ingest.remove("jobs/1/dev.txt")
    # The object exists again (uploaded later) but this event is older than the delete.
    ingest.put("jobs/1/dev.txt", "Dev\n\ntext")

    result = ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", first))

    assert result["outcomes"] == ["stale"]
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert job.deleted_at is not None
    assert ingest.chunk_count() == 0


def test_reupload_after_delete_revives_the_same_job(ingest: Ingest) -> None:
    ingest.upload("jobs/1/dev.txt", "Dev\n\ntext")
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    ingest.remove("jobs/1/dev.txt")

    result, _ = ingest.upload("jobs/1/dev.txt", "Dev\n\ntext")

    assert result["outcomes"] == ["written"]  # chunks were deleted, so embedded again
    revived = ingest.job("jobs/1/dev.txt")
    assert revived is not None
    assert (revived.id, revived.deleted_at) == (job.id, None)
    assert_searchable(ingest, revived, "Dev\n\ntext")


def test_delete_of_an_unknown_key_and_a_vanished_object_are_not_errors(ingest: Ingest) -> None:
    removal = ingest.record("ObjectRemoved:Delete", "jobs/1/never.txt", ingest.next_sequencer())
    creation = ingest.record("ObjectCreated:Put", "jobs/1/gone.txt", ingest.next_sequencer())

    result = ingest.invoke(removal, creation)

    assert result["outcomes"] == ["nothing_to_remove", "gone"]
    assert ingest.job_count() == 0


def test_deleting_an_old_version_keeps_the_current_job(ingest: Ingest) -> None:
    ingest.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = ingest.s3.put_object(Bucket=BUCKET, Key="jobs/1/dev.txt", Body=b"Old\n\nv1")
    ingest.invoke(
        ingest.record(
            "ObjectCreated:Put",
            "jobs/1/dev.txt",
            ingest.next_sequencer(),
            version_id=old["VersionId"],
        )
    )
    new = ingest.s3.put_object(Bucket=BUCKET, Key="jobs/1/dev.txt", Body=b"New\n\nv2")
    ingest.invoke(
        ingest.record(
            "ObjectCreated:Put",
            "jobs/1/dev.txt",
            ingest.next_sequencer(),
            version_id=new["VersionId"],
        )
    )
    ingest.s3.delete_object(Bucket=BUCKET, Key="jobs/1/dev.txt", VersionId=old["VersionId"])

    result = ingest.invoke(
        ingest.record(
            "ObjectRemoved:Delete",
            "jobs/1/dev.txt",
            ingest.next_sequencer(),
            version_id=old["VersionId"],
        )
    )

    assert result["outcomes"] == ["other_version"]
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert (job.title, job.deleted_at, job.source_version_id) == ("New", None, new["VersionId"])
    assert ingest.chunk_count() > 0


def test_concurrent_deliveries_of_one_key_make_one_job_with_whole_chunks(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = sibling("flex_ingest.events")
    service = sibling("flex_ingest.service")

    # Slow embedding so that both deliveries are past planning before either writes.
    embedder = CountingEmbedder(delay=0.3)
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    description = "\n\n".join(f"Paragraph {n}. " + "Details. " * 40 for n in range(6))
    sequencer = ingest.put("jobs/1/dev.txt", "Concurrent\n\n" + description)
    change = events.parse_record(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", sequencer))
    assert isinstance(change, events.ObjectChange)
    outcomes: list[str] = []

    def deliver() -> None:
        outcomes.append(service.process_change(change, None).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["stale", "stale", "written"]
    assert embedder.calls == 3  # all three planned concurrently; only one wrote
    assert ingest.job_count() == 1
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert_searchable(ingest, job, "Concurrent\n\n" + description)


# --- bad objects ---------------------------------------------------------------------------


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


BAD_OBJECTS: list[tuple[str, str, bytes, dict[str, str], str]] = [
    ("unsupported type", "jobs/1/photo.png", b"\x89PNG\r\n\x1a\n....", {}, "unsupported_type"),
    ("no extension", "jobs/1/README", b"text", {}, "unsupported_type"),
    ("empty", "jobs/1/empty.txt", b"", {}, "empty"),
    ("whitespace only", "jobs/1/blank.md", b" \n\r\n\t ", {}, "empty"),
    ("undecodable", "jobs/1/latin1.txt", "Café crème brûlée".encode("latin-1"), {}, "undecodable"),
    ("binary", "jobs/1/binary.txt", bytes(range(256)), {}, "undecodable"),
    (
        "utf-16 without BOM",
        "jobs/1/u16.txt",
        "no byte order mark".encode("utf-16-le"),
        {},
        "undecodable",
    ),
    (
        "corrupt pdf",
        "jobs/1/bad.pdf",
        _truncated((DOCS / "data_engineer.pdf").read_bytes()),
        {},
        "corrupt",
    ),
    ("not a pdf", "jobs/1/fake.pdf", b"hello, I am text", {}, "corrupt"),
    (
        "corrupt docx",
        "jobs/1/bad.docx",
        _truncated((DOCS / "frontend_engineer.docx").read_bytes()),
        {},
        "corrupt",
    ),
    ("invalid json", "jobs/1/bad.json", b'{"title": "x", ', {}, "invalid_json"),
    ("json array", "jobs/1/list.json", b'["a"]', {}, "invalid_json"),
    (
        "json NaN",
        "jobs/1/nan.json",
        b'{"company_id": 1, "title": "t", "description": "d", "score": NaN}',
        {},
        "invalid_json",
    ),
    (
        "json lone surrogate",
        "jobs/1/surrogate.json",
        b'{"company_id": 1, "title": "t", "description": "bad \\ud800 text"}',
        {},
        "invalid_json",
    ),
    (
        "json without description",
        "jobs/1/nodesc.json",
        b'{"company_id": 1, "title": "t"}',
        {},
        "invalid_json",
    ),
    (
        "json missing company",
        "uploads/nocompany.json",
        b'{"title": "t", "description": "d"}',
        {},
        "missing_company_id",
    ),
    (
        "json company as string",
        "uploads/strcompany.json",
        b'{"company_id": "7", "title": "t", "description": "d"}',
        {},
        "invalid_company_id",
    ),
    (
        "json company not an int",
        "uploads/floatcompany.json",
        b'{"company_id": 7.5, "title": "t", "description": "d"}',
        {},
        "invalid_company_id",
    ),
    (
        "json company out of range",
        "uploads/bigcompany.json",
        b'{"company_id": 99999999999, "title": "t", "description": "d"}',
        {},
        "invalid_company_id",
    ),
    (
        "json missing title",
        "jobs/1/notitle.json",
        b'{"company_id": 1, "description": "d"}',
        {},
        "missing_title",
    ),
    (
        "json title too long",
        "jobs/1/longtitle.json",
        json.dumps({"company_id": 1, "title": "x" * 501, "description": "d"}).encode(),
        {},
        "invalid_title",
    ),
    ("text without company", "uploads/a.txt", b"Title\n\nBody", {}, "missing_company_id"),
    (
        "non-integer company metadata",
        "jobs/1/a.txt",
        b"Title\n\nBody",
        {"company-id": "seven"},
        "invalid_company_id",
    ),
]


@pytest.mark.parametrize(
    ("label", "key", "body", "metadata", "reason"),
    BAD_OBJECTS,
    ids=[case[0] for case in BAD_OBJECTS],
)
def test_bad_object_is_rejected_logged_and_writes_nothing(
    ingest: Ingest, label: str, key: str, body: bytes, metadata: dict[str, str], reason: str
) -> None:
    result, _ = ingest.upload(key, body, metadata)

    assert result["outcomes"] == ["rejected"], label
    assert ingest.job_count() == 0
    [rejection] = ingest.rejections()
    assert (rejection["key"], rejection["reason"]) == (key, reason)
    assert rejection["level"] == "WARNING"
    assert rejection["detail"]


def test_bad_reupload_leaves_the_old_job_intact(ingest: Ingest) -> None:
    ingest.upload("jobs/1/dev.pdf", (DOCS / "data_engineer.pdf").read_bytes())
    before = ingest.job("jobs/1/dev.pdf")
    assert before is not None
    chunks_before = [(c.id, c.chunk_text) for c in ingest.chunks(before.id)]

    result, _ = ingest.upload(
        "jobs/1/dev.pdf", _truncated((DOCS / "data_engineer.pdf").read_bytes())
    )

    assert result["outcomes"] == ["rejected"]
    after = ingest.job("jobs/1/dev.pdf")
    assert after is not None
    assert (after.id, after.description, after.source_sequencer, after.updated_at) == (
        before.id,
        before.description,
        before.source_sequencer,
        before.updated_at,
    )
    assert [(c.id, c.chunk_text) for c in ingest.chunks(after.id)] == chunks_before


def test_object_over_the_size_limit_is_rejected_before_download(
    ingest: Ingest, small_object_limit: int
) -> None:
    big = "Big job\n\n" + "x" * small_object_limit
    ingest.put("jobs/1/big.txt", big)

    # With the size in the event, and without it (then S3's Content-Length decides).
    by_event = ingest.record(
        "ObjectCreated:Put", "jobs/1/big.txt", ingest.next_sequencer(), size=len(big)
    )
    by_header = ingest.record("ObjectCreated:Put", "jobs/1/big.txt", ingest.next_sequencer())
    result = ingest.invoke(by_event, by_header)

    assert result["outcomes"] == ["rejected", "rejected"]
    assert [r["reason"] for r in ingest.rejections()] == ["too_large", "too_large"]
    assert ingest.job_count() == 0


# --- transient failures, metrics ------------------------------------------------------------


def test_transient_failure_raises_after_the_other_records_and_the_retry_completes(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = sibling("flex_ingest.service")
    throttled = {"on": True}
    embedder = CountingEmbedder(fail_when=lambda t: throttled["on"] and "Throttled" in t)
    monkeypatch.setattr(service, "get_embedder", lambda: embedder)
    records = [
        ingest.record(
            "ObjectCreated:Put", "jobs/1/a.txt", ingest.put("jobs/1/a.txt", "Throttled\n\nx")
        ),
        ingest.record("ObjectCreated:Put", "jobs/1/b.txt", ingest.put("jobs/1/b.txt", "Fine\n\ny")),
    ]

    with pytest.raises(Exception, match="1 of 2 records failed"):
        ingest.invoke(*records)
    assert ingest.job("jobs/1/a.txt") is None
    assert ingest.job("jobs/1/b.txt") is not None

    throttled["on"] = False  # Lambda retries the same event later
    result = ingest.invoke(*records)

    assert result["outcomes"] == ["written", "stale"]
    assert ingest.job_count() == 2


def test_unreachable_database_raises_so_lambda_retries(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flex_shared import db

    sequencer = ingest.put("jobs/1/a.txt", "A\n\nb")
    monkeypatch.setenv("DATABASE_URL", "postgresql://flex@127.0.0.1:1/nowhere?connect_timeout=2")
    config.reset_settings()
    db.reset_engine()
    try:
        with pytest.raises(Exception, match="1 of 1 records failed"):
            ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/a.txt", sequencer))
    finally:
        monkeypatch.undo()
        config.reset_settings()
        db.reset_engine()
    assert ingest.job_count() == 0


def test_metrics_count_documents_chunks_rejections_and_embedding_time(
    ingest: Ingest, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest.put("jobs/1/good.txt", KOREAN_JOB)
    ingest.put("jobs/1/bad.exe", b"MZ")
    capsys.readouterr()

    ingest.invoke(
        ingest.record("ObjectCreated:Put", "jobs/1/good.txt", ingest.next_sequencer()),
        ingest.record("ObjectCreated:Put", "jobs/1/bad.exe", ingest.next_sequencer()),
    )

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1
    metrics = emf[0]
    assert metrics["DocumentsIngested"] == [1.0]
    assert metrics["DocumentsRejected"] == [1.0]
    assert metrics["ChunksWritten"] == [float(len(chunk_text(KOREAN_JOB)))]
    assert metrics["EmbeddingTime"][0] >= 0
    assert metrics["RecordsReceived"] == [2.0]
    assert metrics["service"] == "ingest_job"


def test_a_new_embedding_model_re_embeds_unchanged_content(
    ingest: Ingest, counting_embedder: CountingEmbedder
) -> None:
    ingest.upload("jobs/1/dev.txt", "Dev\n\ntext")
    counting_embedder.model_id = "amazon.titan-embed-text-v3:0"

    result, _ = ingest.upload("jobs/1/dev.txt", "Dev\n\ntext")

    assert result["outcomes"] == ["written"]
    assert counting_embedder.calls == 2
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert {chunk.embedding_model for chunk in ingest.chunks(job.id)} == {
        "amazon.titan-embed-text-v3:0"
    }


def test_delete_applied_between_plan_and_write_makes_the_upload_embed_again(
    ingest: Ingest, counting_embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a live job, and an upload of the same content (sequencer 3) whose plan sees it live
    service = sibling("flex_ingest.service")
    events = sibling("flex_ingest.events")
    first = ingest.put("jobs/1/dev.txt", "Dev\n\ntext")
    ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", first))
    delete_sequencer, upload_sequencer = ingest.next_sequencer(), ingest.next_sequencer()
    real_load_state = service.load_state

    def load_state_then_concurrent_delete(bucket: str, key: str) -> Any:
        state = real_load_state(bucket, key)
        # ... while an older delete (sequencer 2) lands before the upload writes.
        removal = events.parse_record(ingest.record("ObjectRemoved:Delete", key, delete_sequencer))
        assert service.remove(removal).outcome.value == "removed"
        return state

    monkeypatch.setattr(service, "load_state", load_state_then_concurrent_delete)

    result = ingest.invoke(ingest.record("ObjectCreated:Put", "jobs/1/dev.txt", upload_sequencer))

    # Then the upload, being newest, revives the job with freshly embedded chunks.
    assert result["outcomes"] == ["written"]
    assert counting_embedder.calls == 2
    job = ingest.job("jobs/1/dev.txt")
    assert job is not None
    assert (job.deleted_at, job.source_sequencer) == (None, upload_sequencer)
    assert_searchable(ingest, job, "Dev\n\ntext")
