"""The local system end to end: S3 uploads (from any client) trigger ingestion through
synthesized S3 notifications, `invoke` runs a handler like `sam local invoke`, the demo
passes, and the committed OpenAPI document is what the code generates."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.local import s3 as local_s3
from devtools.local.cli import main
from devtools.local.demo import ApiClient, run_demo
from devtools.local.openapi import merged_document, render, undocumented_routes
from devtools.local.runtime import FunctionRunner, local_overrides
from devtools.local.s3 import MotoS3, NotificationBridge, create_bucket, s3_client
from devtools.local.system import JobRow, LocalOptions, LocalSystem, list_jobs
from devtools.local.template import Bucket, S3Subscription, load_template
from tests.conftest import REPO_ROOT, fresh_database

TEMPLATE = load_template(REPO_ROOT / "template.yaml")


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


# --------------------------------------------------------------------- notification bridge
@pytest.fixture
def moto_s3() -> Iterator[Any]:
    server = MotoS3()
    server.start()
    try:
        yield s3_client(server.endpoint)
    finally:
        server.stop()


class Deliveries:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail_times = 0

    def __call__(self, function: str, event: dict[str, Any]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("database down")
        self.events.append((function, event))

    def records(self) -> list[dict[str, Any]]:
        return [event["Records"][0] for _, event in self.events]


def bridge_for(client: Any, bucket: Bucket, deliveries: Deliveries) -> NotificationBridge:
    create_bucket(client, bucket)
    subscription = S3Subscription(
        function="Ingest",
        bucket_resource=bucket.logical_id,
        events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*"),
        prefix="jobs/",
        suffix="",
        event_name="Changed",
    )
    bridge = NotificationBridge(client, [bucket], [subscription], deliveries, log=lambda m: None)
    bridge.sync()
    return bridge


def test_versioned_bucket_changes_become_standard_s3_notifications(moto_s3: Any) -> None:
    # Given a versioned bucket watched for ObjectCreated/ObjectRemoved under jobs/
    bucket = Bucket("Jobs", "versioned-jobs", versioned=True)
    deliveries = Deliveries()
    bridge = bridge_for(moto_s3, bucket, deliveries)

    # When a file with spaces and Korean in its key is uploaded, and one outside the prefix
    key = "jobs/7/백엔드 개발자 채용.txt"
    put = moto_s3.put_object(Bucket=bucket.name, Key=key, Body=b"Backend developer")
    moto_s3.put_object(Bucket=bucket.name, Key="drafts/x.txt", Body=b"not a job")
    bridge.sync()

    # Then the subscribed function gets one S3 ObjectCreated:Put record for the job file only
    [record] = deliveries.records()
    assert record["eventSource"] == "aws:s3"
    assert record["eventVersion"] == "2.1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket.name
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket.name}"
    s3_object = record["s3"]["object"]
    assert s3_object["key"] == (
        "jobs/7/%EB%B0%B1%EC%97%94%EB%93%9C+%EA%B0%9C%EB%B0%9C%EC%9E%90+%EC%B1%84%EC%9A%A9.txt"
    )
    assert s3_object["versionId"] == put["VersionId"]
    assert s3_object["eTag"] == put["ETag"].strip('"')
    assert s3_object["size"] == len(b"Backend developer")

    # When it is overwritten and then deleted
    moto_s3.put_object(Bucket=bucket.name, Key=key, Body=b"Backend developer v2")
    bridge.sync()
    moto_s3.delete_object(Bucket=bucket.name, Key=key)
    bridge.sync()

    # Then a second Put and a DeleteMarkerCreated follow, sequencers increasing, same width
    names = [r["eventName"] for r in deliveries.records()]
    assert names == ["ObjectCreated:Put", "ObjectCreated:Put", "ObjectRemoved:DeleteMarkerCreated"]
    sequencers = [r["s3"]["object"]["sequencer"] for r in deliveries.records()]
    assert sequencers == sorted(sequencers)
    assert len(set(sequencers)) == 3
    assert {len(s) for s in sequencers} == {18}
    assert int(sequencers[0], 16) > 0
    removed = deliveries.records()[-1]["s3"]["object"]
    assert "size" not in removed
    assert removed["versionId"]


def test_unversioned_bucket_overwrite_and_delete(moto_s3: Any) -> None:
    bucket = Bucket("Plain", "plain-jobs", versioned=False)
    deliveries = Deliveries()
    bridge = bridge_for(moto_s3, bucket, deliveries)

    moto_s3.put_object(Bucket=bucket.name, Key="jobs/1/a.txt", Body=b"one")
    bridge.sync()
    moto_s3.put_object(Bucket=bucket.name, Key="jobs/1/a.txt", Body=b"two, longer")
    bridge.sync()
    moto_s3.delete_object(Bucket=bucket.name, Key="jobs/1/a.txt")
    bridge.sync()

    records = deliveries.records()
    assert [r["eventName"] for r in records] == [
        "ObjectCreated:Put",
        "ObjectCreated:Put",
        "ObjectRemoved:Delete",
    ]
    assert all("versionId" not in r["s3"]["object"] for r in records)
    assert records[1]["s3"]["object"]["size"] == len(b"two, longer")


def test_a_failing_function_is_retried_like_an_async_invoke(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_s3, "RETRY_DELAYS_SECONDS", (0.0, 0.0))
    bucket = Bucket("Retry", "retry-jobs", versioned=False)
    deliveries = Deliveries()
    bridge = bridge_for(moto_s3, bucket, deliveries)

    # Fails twice, then succeeds: delivered on the third attempt
    deliveries.fail_times = 2
    moto_s3.put_object(Bucket=bucket.name, Key="jobs/1/a.txt", Body=b"one")
    bridge.sync()
    assert len(deliveries.events) == 1
    assert bridge.failed == []

    # Fails three times: given up after Lambda's two retries, recorded as failed
    deliveries.fail_times = 3
    moto_s3.put_object(Bucket=bucket.name, Key="jobs/1/b.txt", Body=b"two")
    bridge.sync()
    assert len(deliveries.events) == 1
    assert [f["event"]["Records"][0]["s3"]["object"]["key"] for f in bridge.failed] == [
        "jobs/1/b.txt"
    ]


def test_through_a_queue_the_function_gets_a_batch_and_a_failed_answer_is_retried(
    moto_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_s3, "RETRY_DELAYS_SECONDS", (0.0, 0.0))
    bucket = Bucket("Queued", "queued-jobs", versioned=False)
    create_bucket(moto_s3, bucket)
    answers: list[dict[str, Any]] = [
        {"batchItemFailures": [{"itemIdentifier": "x"}]},
        {"batchItemFailures": []},
    ]
    batches: list[dict[str, Any]] = []

    def deliver(function: str, event: dict[str, Any]) -> dict[str, Any]:
        batches.append(event)
        return answers.pop(0)

    subscription = S3Subscription(
        function="Ingest",
        bucket_resource=bucket.logical_id,
        events=("s3:ObjectCreated:*",),
        prefix="jobs/",
        event_name="FromQueue",
        queue_name="ingest-queue",
    )
    bridge = NotificationBridge(moto_s3, [bucket], [subscription], deliver, log=lambda m: None)
    bridge.sync()

    moto_s3.put_object(Bucket=bucket.name, Key="jobs/1/a.txt", Body=b"one")
    bridge.sync()

    # the first answer named the message as failed: it was delivered again, and then it held
    assert len(batches) == 2
    [message] = batches[-1]["Records"]
    assert message["eventSource"] == "aws:sqs"
    assert message["eventSourceARN"].endswith(":ingest-queue")
    [record] = json.loads(message["body"])["Records"]
    assert (record["eventName"], record["s3"]["object"]["key"]) == (
        "ObjectCreated:Put",
        "jobs/1/a.txt",
    )
    assert bridge.failed == []


# --------------------------------------------------------------------- the whole system
@pytest.fixture
def scratch_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def system(scratch_database: str) -> Iterator[LocalSystem]:
    options = LocalOptions(
        database_url=scratch_database,
        data_dir=None,
        api_port=0,
        samples_dir=None,
        poll_interval_seconds=0.1,
        extra_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    with LocalSystem(options, log=lambda message: None) as running:
        yield running


def job_at(system: LocalSystem, key: str) -> JobRow | None:
    return next((job for job in list_jobs(system.database_url) if job.source_key == key), None)


def test_uploading_with_any_client_triggers_ingestion(system: LocalSystem) -> None:
    # Given the running system and a plain boto3 client pointed at its S3 endpoint
    assert system.moto is not None
    assert system.api is not None
    client = boto3.client(
        "s3",
        endpoint_url=system.moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    bucket = TEMPLATE.buckets["JobsBucket"].name
    key = "jobs/5/platform engineer.txt"
    api = ApiClient(system.api.url)

    # When a job description is uploaded under jobs/<company_id>/
    client.put_object(Bucket=bucket, Key=key, Body=b"Platform Engineer\n\nTerraform, EKS and Go.")

    # Then it is ingested by the ingest function and searchable over the API
    job = wait_for(lambda: job_at(system, key))
    assert (job.company_id, job.title) == (5, "Platform Engineer")
    found = api.expect("POST", "/search", {"query": "Terraform EKS", "job_id": job.id}, 200)
    assert [hit["job_id"] for hit in found["results"]] == [job.id]

    # When it is replaced, the same job is updated in place
    client.put_object(Bucket=bucket, Key=key, Body=b"Platform Engineer\n\nKubernetes and Rust.")
    wait_for(lambda: "Rust" in api.expect("GET", f"/jobs/{job.id}", None, 200)["description"])
    assert [j.id for j in list_jobs(system.database_url) if j.source_key == key] == [job.id]

    # When it is deleted, it leaves search
    client.delete_object(Bucket=bucket, Key=key)
    wait_for(lambda: job_at(system, key) is None)
    found = api.expect("POST", "/search", {"query": "Kubernetes", "job_id": job.id}, 200)
    assert found["results"] == []
    assert system.bridge is not None
    assert system.bridge.failed == []


def test_each_run_starts_with_an_empty_database_as_its_bucket_starts_empty(
    tmp_path: Path,
) -> None:
    # Given a run on a data directory of its own, where a job was uploaded and ingested
    options = LocalOptions(
        data_dir=tmp_path / "pg",
        serve_api=False,
        samples_dir=None,
        watch_s3=False,
        fresh_state=True,  # what `make run` asks for
        extra_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    bucket = TEMPLATE.buckets["JobsBucket"].name
    key = "jobs/5/platform engineer.txt"
    with LocalSystem(options, log=lambda message: None) as first:
        first.s3.put_object(Bucket=bucket, Key=key, Body=b"Platform Engineer\n\nTerraform.")
        assert first.bridge is not None
        first.bridge.sync()
        assert job_at(first, key) is not None
        assert first.postgres is not None
        server_dir = first.postgres.data_dir

    # When the system is stopped and started again (moto's S3 lives in memory only)
    with LocalSystem(options, log=lambda message: None) as second:
        # Then no job outlives its object: the database starts as empty as the bucket
        assert second.s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        assert list_jobs(second.database_url) == []
        assert second.postgres is not None
        assert second.postgres.data_dir == server_dir  # the same server, kept between runs


def test_a_second_run_refuses_to_empty_the_database_of_a_running_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run in progress on a data directory (its state file names a live process)
    data_dir = tmp_path / "pgdata"
    (tmp_path / "runner.json").write_text(json.dumps({"pid": os.getpid()}))

    # When another run is started on it, it stops before touching anything
    assert main(["run", "--port", "0", "--data-dir", str(data_dir)]) == 1
    assert "already running" in capsys.readouterr().err
    assert not data_dir.exists()


def test_invoke_prints_the_handlers_response(
    scratch_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a database and an env-vars file in SAM's format
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"SearchFunction": {"HNSW_EF_SEARCH": "120"}}))

    # When the search function is invoked with the repository's GET /jobs/{job_id} event
    status = main(
        [
            "invoke",
            "SearchFunction",
            "-e",
            str(REPO_ROOT / "events" / "search_get_job.json"),
            "--env-vars",
            str(env_vars),
            "--database-url",
            scratch_database,
        ]
    )

    # Then the handler's proxy response is printed: no such job yet, a JSON 404
    assert status == 0
    response = json.loads(capsys.readouterr().out)
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"]


def test_env_vars_file_overrides_the_template_but_not_the_local_essentials() -> None:
    runner = FunctionRunner(
        TEMPLATE,
        local_overrides("postgresql://local@127.0.0.1:1/db", "http://127.0.0.1:9"),
        {
            "Parameters": {"HNSW_EF_SEARCH": "160", "DATABASE_URL": "postgresql://elsewhere/x"},
            "SearchFunction": {"HNSW_EF_SEARCH": "180"},
        },
    )
    search = runner.environment(TEMPLATE.function("SearchFunction"))
    ingest = runner.environment(TEMPLATE.function("ingest_job"))
    assert search["HNSW_EF_SEARCH"] == "180"  # function section beats Parameters
    assert ingest["HNSW_EF_SEARCH"] == "160"  # Parameters beats the template
    assert search["POWERTOOLS_SERVICE_NAME"] == "search"  # from the template
    assert search["DATABASE_URL"] == "postgresql://local@127.0.0.1:1/db"
    assert search["EMBEDDING_PROVIDER"] == "local"
    assert search["DB_IAM_AUTH"] == "false"
    assert search["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9"


def test_the_demo_passes(scratch_database: str) -> None:
    lines: list[str] = []
    run_demo(
        lines.append,
        LocalOptions(
            database_url=scratch_database,
            data_dir=None,
            api_port=0,
            extra_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
        ),
    )
    output = "\n".join(lines)
    assert "Demo passed" in output
    # the demo checks that each query puts its sample first; here: that those steps ran
    assert "Search by meaning, in Korean" in output
    assert "Across languages" in output
    assert "An exact skill: hybrid mode" in output
    assert "PATCH status=completed" in output
    assert "DELETE /applicants/1001 again -> 204" in output
    # the demo checks that the job's applicants and insights lost the erased applicant
    assert "Hiring insights" in output
    assert re.search(r"GET /jobs/\d+/insights -> sessions 4 -> 3, results 6 -> 4", output)


# --------------------------------------------------------------------- OpenAPI
def test_committed_openapi_document_is_what_the_code_generates() -> None:
    runner = FunctionRunner(TEMPLATE, local_overrides("postgresql://local@127.0.0.1:1/x", None))
    committed = (REPO_ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == render(merged_document(TEMPLATE, runner)), "stale: run `make openapi`"


def test_openapi_document_covers_exactly_the_template_routes() -> None:
    runner = FunctionRunner(TEMPLATE, local_overrides("postgresql://local@127.0.0.1:1/x", None))
    assert undocumented_routes(TEMPLATE, merged_document(TEMPLATE, runner)) == []


def test_the_local_api_serves_the_openapi_document_and_an_offline_swagger_page(
    system: LocalSystem,
) -> None:
    assert system.api is not None
    api = ApiClient(system.api.url)
    status, document = api.call("GET", "/openapi.json")
    assert status == 200
    assert "/search" in document["paths"]
    with urllib.request.urlopen(system.api.url + "/swagger", timeout=10) as page:
        html = page.read().decode()
    assert "SwaggerUIBundle" in html
    assert '"/search"' in html  # the search function's routes
    assert '"/interviews"' in html  # and the interview function's
    assert "https://" not in html.split("<script>")[0]  # no CDN assets in the head
