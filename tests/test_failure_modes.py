"""Failure injection: what production does to the functions, each case through the real
handler on the real database, with the status a caller sees and nothing written twice or half.

- connections dropped between invocations (an administrator's ``pg_terminate_backend``, a proxy
  restart that resets its clients) before a search, an interview read and interview writes;
- a database restart during an ingestion (back before the write; still down at the write);
- Secrets Manager mode on a host whose monotonic clock is young;
- a stored row the response model rejects, an exception the embedder was not meant to raise;
- ``multipart/form-data`` (with and without a boundary) and mixed-case media types;
- NUL in every text input the OpenAPI document lists (body fields, query parameters);
- the database and Bedrock unreachable.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event as api_event
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured
from devtools.local.template import load_template
from flex_shared import config, db, embeddings
from flex_shared.chunking import chunk_text
from flex_shared.config import load_settings
from flex_shared.database_url import parse_database_url
from flex_shared.observability import LAYER_LOGGER
from tests.conftest import ALL_TABLES, REPO_ROOT
from tests.tcp_proxy import TcpProxy, tcp_proxy
from tests.test_ingest_job import BUCKET, Ingest

REQUEST_ID = "req-failure-mode"
CONNECTION_REPLACED = (
    "database connection was gone before the transaction's first statement;"
    " running it again on a new connection"
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def invoke(function: ModuleType, event: dict[str, Any], *, remaining_ms: int = 30_000) -> Answer:
    """Call a function's Lambda handler as API Gateway does; every answer is JSON."""
    response = function.lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))
    headers = response.get("multiValueHeaders") or {}
    assert headers.get("Content-Type") == ["application/json"], response
    return Answer(response["statusCode"], json.loads(response["body"]))


def database_state(engine: Engine) -> dict[str, str]:
    """Every table's rows, digested: equal before and after means nothing was written."""
    with engine.connect() as connection:
        return {
            table: connection.execute(
                text(
                    f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|'"
                    f" ORDER BY t::text), '')) FROM {table} t"
                )
            ).scalar_one()
            for table in ALL_TABLES
        }


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@dataclass
class LayerLog:
    """The layer's log records (its logger is the function's after ``route_layer_logs``)."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def layer_log() -> Iterator[LayerLog]:
    log = LayerLog()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.records.append(record)

    handler = Keep(level=logging.DEBUG)
    layer = logging.getLogger(LAYER_LOGGER)
    layer.addHandler(handler)  # route_layer_logs replaces handlers: load functions first
    try:
        yield log
    finally:
        layer.removeHandler(handler)


@pytest.fixture
def admin(database_url: str) -> Iterator[Engine]:
    """Connections of its own, straight to the database, as a database administrator's."""
    engine = db.build_engine(load_settings({"DATABASE_URL": database_url}))
    try:
        yield engine
    finally:
        engine.dispose()


def terminate_client_connections(admin: Engine) -> int:
    """What an administrator (or a failover) does to every other client of the database;
    returns how many it terminated, once they are gone."""
    with admin.begin() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                )
            ).scalar_one()
        )


@pytest.fixture
def through_proxy(database_url: str, db_engine: Engine) -> Iterator[TcpProxy]:
    """The functions reach the database over TCP through a proxy, as through RDS Proxy
    (``db_engine``, the tests' own view of the database, stays direct)."""
    with tcp_proxy(database_url) as proxy, layer_configured(proxy.url(database_url)):
        yield proxy


# --- a freshly booted host --------------------------------------------------------------------


def _young_clock_command() -> list[str]:
    """``unshare --time`` with the monotonic clock moved back to about zero: a host that booted
    a moment ago, as a new Lambda microVM or CI machine has. Unprivileged users get the time
    namespace inside a user namespace of their own."""
    age = max(0, int(time.monotonic()) - 1)
    command = ["unshare", "--time", f"--monotonic=-{age}"]
    if os.geteuid() != 0:
        command.insert(1, "--map-root-user")
    return command


def test_secret_mode_on_a_freshly_booted_host_reads_the_secret_and_connects(
    database_url: str,
) -> None:
    # Given a host whose monotonic clock is younger than the secret's cache lifetime, and
    # database credentials in Secrets Manager
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "shared"), str(REPO_ROOT)]),
    }

    # When a function creates its engine there and runs a query
    completed = subprocess.run(
        [
            *_young_clock_command(),
            sys.executable,
            "-m",
            "tests.secret_on_young_clock",
            database_url,
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the secret was read on first use and the query ran as the secret's user, in its
    # database, although the clock said the host was only seconds old
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["monotonic_at_creation"] < db._SECRET_TTL_SECONDS
    url, _ = parse_database_url(database_url)
    assert (answer["user"], answer["database"]) == (url.username, url.database)


# --- the routes and a world to call them in ------------------------------------------------

TEMPLATE = load_template(REPO_ROOT / "template.yaml")
FUNCTION_OF = {
    (route.method, route.path): TEMPLATE.function(route.function).code_dir.name
    for route in TEMPLATE.routes
}
"""Which function serves each route of the API, as template.yaml says."""


@dataclass(frozen=True)
class Call:
    """One request to the API; ``job_id`` 0 in a body and ``{..._id}`` in the path are the
    world's."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    success: int = 200
    query: dict[str, str] | None = None

    @property
    def function(self) -> str:
        return FUNCTION_OF[(self.method, self.path)]

    def event(
        self,
        world: World,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        given = self.body if body is None else body
        payload = None if given is None else dict(given)
        if payload is not None and payload.get("job_id") == 0:
            payload["job_id"] = world.job_id
        path = self.path.format(
            interview_id=world.interview_id, job_id=world.job_id, question_id=world.question_id
        )
        return api_event(
            self.method,
            path,
            payload,
            query=query if query is not None else self.query,
            resource=self.path,
            path_parameters=world.path_parameters(self.path),
            request_id=REQUEST_ID,
        )


BODY_ROUTES = (
    Call("POST", "/search", {"query": "python backend", "top_k": 3}),
    Call("POST", "/interviews", {"applicant_id": 7, "job_id": 0}, 201),
    Call("PATCH", "/interviews/{interview_id}", {"status": "completed"}),
    Call(
        "POST",
        "/interviews/{interview_id}/results",
        {"question_id": 1, "question_text": "Why Python?", "overall_score": 80},
        201,
    ),
    Call(
        "POST", "/questions", {"question_type": "technical", "question_text": "Explain MVCC"}, 201
    ),
)
"""Every route that reads a JSON body, with a body it accepts."""

EVERY_ROUTE = (
    *BODY_ROUTES,
    Call("GET", "/jobs/{job_id}"),
    Call("GET", "/interviews/{interview_id}"),
    Call("GET", "/interviews/{interview_id}/results"),
    Call("GET", "/questions", query={"question_type": "technical"}),
    Call("GET", "/questions/{question_id}"),
    Call("GET", "/jobs/{job_id}/applicants"),
    Call("GET", "/jobs/{job_id}/insights"),
    Call("GET", "/jobs/{job_id}/questions/suggested"),
)


def call_id(call: Call) -> str:
    return f"{call.method} {call.path}"


def test_the_calls_above_are_every_route_of_the_template() -> None:
    assert {(call.method, call.path) for call in EVERY_ROUTE} == set(FUNCTION_OF)


@dataclass(frozen=True)
class World:
    """A published job, an interview in progress for it and a question template."""

    job_id: int
    interview_id: int
    question_id: int

    def path_parameters(self, path: str) -> dict[str, str] | None:
        names = {"job_id": self.job_id, "interview_id": self.interview_id}
        names["question_id"] = self.question_id
        found = {name: str(value) for name, value in names.items() if f"{{{name}}}" in path}
        return found or None


@pytest.fixture
def functions(load_function: Callable[[str], ModuleType]) -> dict[str, ModuleType]:
    """The API functions, loaded (each routes the layer's logs to its own logger as it loads:
    fixtures that listen to those logs come after this one)."""
    return {name: load_function(name) for name in sorted(set(FUNCTION_OF.values()))}


@pytest.fixture
def world(db_engine: Engine, functions: dict[str, ModuleType]) -> World:
    with db_engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (company_id, title, description)"
                " VALUES (7, 'Backend engineer', 'Python and PostgreSQL') RETURNING id"
            )
        ).scalar_one()
    interviews = functions["interview_results"]
    created = invoke(
        interviews, api_event("POST", "/interviews", {"applicant_id": 1, "job_id": job_id})
    )
    assert created.status == 201, created.body
    interview_id = created.body["id"]
    started = invoke(
        interviews, api_event("PATCH", f"/interviews/{interview_id}", {"status": "in_progress"})
    )
    assert started.status == 200, started.body
    question = invoke(
        interviews,
        api_event("POST", "/questions", {"question_type": "technical", "question_text": "Why?"}),
    )
    assert question.status == 201, question.body
    return World(job_id, interview_id, question.body["id"])


# --- odd requests: media types -------------------------------------------------------------


def raw_event(call: Call, world: World, content_type: str, raw_body: str) -> dict[str, Any]:
    event = call.event(world)
    body = dict(call.body or {})
    if body.get("job_id") == 0:
        body["job_id"] = world.job_id
    event["body"] = raw_body.replace("{body}", json.dumps(body))
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}
    return event


MULTIPART_BODY = (
    '--XyZ\r\nContent-Disposition: form-data; name="query"\r\n\r\npython\r\n'
    '--XyZ\r\nContent-Disposition: form-data; name="status"\r\n\r\ncompleted\r\n--XyZ--\r\n'
)


@pytest.mark.parametrize("call", BODY_ROUTES, ids=call_id)
@pytest.mark.parametrize(
    ("content_type", "raw_body"),
    [
        ("multipart/form-data", "{body}"),  # no boundary: Powertools' parser raised ValueError
        ("multipart/form-data; boundary=XyZ", MULTIPART_BODY),  # was read as form fields
        ("Multipart/Form-Data; boundary=XyZ", MULTIPART_BODY),
        ("text/plain", "{body}"),
        ("application/jsonp", "{body}"),  # not JSON, although it starts like it
    ],
)
def test_a_body_of_another_media_type_is_415_and_changes_nothing(
    call: Call,
    content_type: str,
    raw_body: str,
    world: World,
    db_engine: Engine,
    functions: dict[str, ModuleType],
) -> None:
    # Given the state of the database
    before = database_state(db_engine)

    # When a body that is not JSON is sent to a route that reads JSON
    answer = invoke(functions[call.function], raw_event(call, world, content_type, raw_body))

    # Then it is refused as a media type the API does not speak, naming what was sent
    assert answer.status == 415, answer.body
    assert answer.body["error"]["code"] == "unsupported_media_type"
    assert content_type in answer.body["error"]["message"]
    assert database_state(db_engine) == before


@pytest.mark.parametrize("call", BODY_ROUTES, ids=call_id)
@pytest.mark.parametrize(
    "content_type", ["Application/JSON; charset=UTF-8", "APPLICATION/JSON", "application/json "]
)
def test_media_types_are_case_insensitive(
    call: Call, content_type: str, world: World, functions: dict[str, ModuleType]
) -> None:
    answer = invoke(functions[call.function], raw_event(call, world, content_type, "{body}"))
    assert answer.status == call.success, answer.body


# --- connections dropped between invocations ----------------------------------------------

WARM_UP = {
    "search": Call("GET", "/jobs/{job_id}"),
    "interview_results": Call("GET", "/interviews/{interview_id}"),
}
"""A request that leaves the container's connection in its pool."""


@dataclass(frozen=True)
class AfterADrop:
    call: Call
    writes_to: str | None = None
    """The table that gains exactly one row; None: a read, the database is left as it was."""


CALLS_AFTER_A_DROP = (
    AfterADrop(Call("POST", "/search", {"query": "python backend"})),
    AfterADrop(Call("GET", "/interviews/{interview_id}")),
    AfterADrop(
        Call(
            "POST",
            "/interviews/{interview_id}/results",
            {"question_id": 2, "question_text": "Why?", "overall_score": 70},
            201,
        ),
        writes_to="interview_results",
    ),
    AfterADrop(
        Call("POST", "/interviews", {"applicant_id": 8, "job_id": 0}, 201),
        writes_to="interview_sessions",
    ),
)


@pytest.fixture(params=["administrator", "proxy restart"])
def drop_connections(
    request: pytest.FixtureRequest, admin: Engine, database_url: str, db_engine: Engine
) -> Iterator[Callable[[], int]]:
    """Drops every connection the functions hold, as an administrator's
    ``pg_terminate_backend`` or a failover does, or as a restarting proxy does (a TCP reset);
    returns how many were dropped."""
    if request.param == "administrator":
        yield lambda: terminate_client_connections(admin)
        return
    with tcp_proxy(database_url) as proxy, layer_configured(proxy.url(database_url)):
        yield proxy.reset_all


@pytest.mark.parametrize("case", CALLS_AFTER_A_DROP, ids=lambda case: call_id(case.call))
def test_a_connection_dropped_between_invocations_costs_the_next_request_nothing(
    case: AfterADrop,
    drop_connections: Callable[[], int],
    world: World,
    db_engine: Engine,
    functions: dict[str, ModuleType],
    layer_log: LayerLog,
) -> None:
    # Given a warm container: its connection waits in the pool between invocations
    function = functions[case.call.function]
    assert invoke(function, WARM_UP[case.call.function].event(world)).status == 200
    before = database_state(db_engine)
    written_before = rows(db_engine, case.writes_to) if case.writes_to else 0

    # When the connection is dropped meanwhile and the next request arrives
    assert drop_connections() >= 1
    answer = invoke(function, case.call.event(world))

    # Then it is answered, on a new connection, and a write is applied exactly once
    assert answer.status == case.call.success, answer.body
    assert CONNECTION_REPLACED in layer_log.messages()
    if case.writes_to:
        assert rows(db_engine, case.writes_to) == written_before + 1
    else:
        assert database_state(db_engine) == before


# --- a database restart during an ingestion -----------------------------------------------


class EmbedderWithAnInterlude:
    """The configured embedder; ``interlude`` happens to the database while it embeds (the
    slow part of an ingestion, outside any transaction)."""

    def __init__(self) -> None:
        self._inner = embeddings.get_embedder()
        self.model_id = self._inner.model_id
        self.dimensions = self._inner.dimensions
        self.usage = self._inner.usage
        self.interlude: Callable[[], object] = lambda: None

    def embed_documents(
        self, texts: Sequence[str], *, deadline: float | None = None
    ) -> list[list[float]]:
        self.interlude()
        return self._inner.embed_documents(texts, deadline=deadline)

    def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
        return self._inner.embed_query(text, deadline=deadline)


@pytest.fixture
def ingestion(load_function: Callable[[str], ModuleType], db_engine: Engine) -> Iterator[Ingest]:
    """The ingest function on a (moto) S3 bucket, its log lines kept."""
    function = load_function("ingest_job")
    handler = sys.modules["flex_ingest.handler"].logger.registered_handler
    log = io.StringIO()
    previous_stream = handler.setStream(log)
    source = sys.modules["flex_ingest.source"]
    with mock_aws():
        source.reset_s3_client()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        try:
            yield Ingest(app=function, s3=s3, engine=db_engine, log=log)
        finally:
            source.reset_s3_client()
            handler.setStream(previous_stream)


@pytest.fixture
def embedder(ingestion: Ingest, monkeypatch: pytest.MonkeyPatch) -> EmbedderWithAnInterlude:
    wrapped = EmbedderWithAnInterlude()
    monkeypatch.setattr(sys.modules["flex_ingest.service"], "get_embedder", lambda: wrapped)
    return wrapped


def stored(ingestion: Ingest, key: str) -> tuple[int, str, list[str]] | None:
    """The job at ``key``: its id, its description, its chunks' texts in order."""
    job = ingestion.job(key)
    if job is None:
        return None
    return job.id, job.description, [chunk.chunk_text for chunk in ingestion.chunks(job.id)]


PLATFORM_V1 = (
    "Platform Engineer\n\nYou run our Kubernetes clusters on AWS with Terraform.\n\n"
    "You have operated PostgreSQL in production and like on-call done well."
)
PLATFORM_V2 = (
    "Platform Engineer\n\nYou run our Kubernetes clusters on AWS and GCP with Terraform and Go.\n\n"
    "You have operated PostgreSQL and Kafka in production; you write runbooks."
)


def test_a_database_restart_while_a_document_is_embedded_costs_nothing_and_writes_it_once(
    through_proxy: TcpProxy, ingestion: Ingest, embedder: EmbedderWithAnInterlude
) -> None:
    # Given the database restarting (every connection cut) while a new upload is embedded
    key = "jobs/5/platform.txt"
    record = ingestion.record("ObjectCreated:Put", key, ingestion.put(key, PLATFORM_V1))
    embedder.interlude = through_proxy.reset_all

    # When the upload's event is delivered
    result = ingestion.invoke(record)

    # Then the write found its connection gone, ran on a new one, and stored the job once;
    # nothing failed, so nothing says the event will be retried
    assert result["outcomes"] == ["written"]
    assert not [line for line in ingestion.log_lines() if "retries" in line.get("message", "")]
    job_id, description, chunks = stored(ingestion, key) or (0, "", [])
    assert (description, chunks) == (PLATFORM_V1, chunk_text(PLATFORM_V1))
    assert any(line.get("message") == CONNECTION_REPLACED for line in ingestion.log_lines())

    # And the same event delivered again (S3 delivers at least once) changes nothing
    embedder.interlude = lambda: None
    assert ingestion.invoke(record)["outcomes"] == ["stale"]
    assert stored(ingestion, key) == (job_id, PLATFORM_V1, chunk_text(PLATFORM_V1))
    assert ingestion.job_count() == 1


def test_a_database_still_down_at_the_write_fails_the_record_whole_and_the_retry_writes_once(
    through_proxy: TcpProxy, ingestion: Ingest, embedder: EmbedderWithAnInterlude
) -> None:
    # Given a job already ingested, and a new version uploaded while the database goes down
    key = "jobs/5/platform.txt"
    ingestion.invoke(ingestion.record("ObjectCreated:Put", key, ingestion.put(key, PLATFORM_V1)))
    first = stored(ingestion, key)
    assert first is not None
    record = ingestion.record("ObjectCreated:Put", key, ingestion.put(key, PLATFORM_V2))
    embedder.interlude = through_proxy.go_down

    # When the new version's event is delivered, the invocation fails: Lambda retries it
    failure_type = sys.modules["flex_ingest.handler"].IngestionFailed
    with pytest.raises(failure_type):
        ingestion.invoke(record)

    # Then nothing of the new version was written: the job is the old one, whole
    assert stored(ingestion, key) == first
    logged = ingestion.log_lines()
    [failed] = [line for line in logged if line.get("message") == "record failed"]
    assert failed["key"] == key
    [retried] = [line for line in logged if line.get("message", "").startswith("failing the")]
    assert retried["failed_keys"] == [key]

    # When the database is back and Lambda delivers the event again (twice: at least once)
    through_proxy.come_back()
    embedder.interlude = lambda: None
    assert ingestion.invoke(record)["outcomes"] == ["written"]
    assert ingestion.invoke(record)["outcomes"] == ["stale"]

    # Then the new version is stored once, whole, under the same job
    assert stored(ingestion, key) == (first[0], PLATFORM_V2, chunk_text(PLATFORM_V2))
    assert ingestion.job_count() == 1


# --- bugs are 500s -------------------------------------------------------------------------

INTERNAL_ERROR = {
    "error": {
        "code": "internal_error",
        "message": "the request could not be completed; the request id finds it in the logs",
        "request_id": REQUEST_ID,
    }
}


def test_a_stored_row_the_response_model_rejects_is_a_500_with_the_request_id(
    world: World, db_engine: Engine, functions: dict[str, ModuleType], layer_log: LayerLog
) -> None:
    # Given a stored result the response model cannot describe (keywords must be lists)
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO interview_results (interview_id, question_id, keywords)"
                " VALUES (:interview, 1, CAST(:keywords AS JSONB))"
            ),
            {"interview": world.interview_id, "keywords": '{"technical": "PRIVATE-VALUE"}'},
        )
    before = database_state(db_engine)

    # When the results are read
    answer = invoke(
        functions["interview_results"],
        Call("GET", "/interviews/{interview_id}/results").event(world),
    )

    # Then a 500 says only that it failed and which request it was; the log has the rest
    assert answer.status == 500
    assert answer.body == INTERNAL_ERROR
    [logged] = [r for r in layer_log.records if r.getMessage() == "unhandled error answered 500"]
    assert logged.exc_info is not None
    assert type(logged.exc_info[1]).__name__ == "ValidationError"
    assert database_state(db_engine) == before


@pytest.mark.parametrize(
    "error",
    [ConnectionError("reset by someone"), TimeoutError("timed out"), KeyError("embedding")],
    ids=lambda error: type(error).__name__,
)
def test_an_error_the_embedder_never_raises_on_purpose_is_a_bug_not_an_outage(
    error: Exception,
    world: World,
    functions: dict[str, ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an embedder failing in a way it does not report a dependency's failure (a builtin
    # ConnectionError or TimeoutError, too, is no proof that the database is down)
    class Broken:
        def embed_query(self, text: str, *, deadline: float | None = None) -> list[float]:
            raise error

    monkeypatch.setattr(sys.modules["flex_search.query_embedding"], "get_embedder", Broken)

    # When a search needs it, then the answer is a 500, not a 503 naming a dependency
    query = f"never embedded before {type(error).__name__}"
    answer = invoke(functions["search"], Call("POST", "/search", {"query": query}).event(world))
    assert answer.status == 500
    assert answer.body == INTERNAL_ERROR


# --- NUL in every text input ---------------------------------------------------------------

OPENAPI = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
NUL_TEXT = "a\x00b"


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _valid_value(schema: dict[str, Any]) -> Any:
    schema = _resolved(schema)
    if "anyOf" in schema:
        return _valid_value(next(s for s in schema["anyOf"] if _resolved(s).get("type") != "null"))
    kind = schema.get("type")
    if kind == "array":
        return [_valid_value(schema.get("items", {}))]
    return {"object": {}, "integer": 1, "number": 1.0, "boolean": True}.get(str(kind), "x")


def nul_values(schema: dict[str, Any]) -> list[Any]:
    """Values of ``schema``'s shape with a NUL in one string (a value, an item, a key)."""
    schema = _resolved(schema)
    if "anyOf" in schema:
        return [value for option in schema["anyOf"] for value in nul_values(option)]
    kind = schema.get("type")
    if kind == "string":
        return [] if "enum" in schema else [NUL_TEXT]  # an enum's NUL is just not a value
    if kind == "array":
        return [[value] for value in nul_values(schema.get("items", {}))]
    if kind == "object":
        members = schema.get("additionalProperties")
        if not isinstance(members, dict):
            return []
        return [{"k": value} for value in nul_values(members)] + [{NUL_TEXT: _valid_value(members)}]
    if kind is None:  # any JSON value
        return [NUL_TEXT, [NUL_TEXT], {"k": NUL_TEXT}, {NUL_TEXT: "v"}]
    return []


@dataclass(frozen=True)
class TextInput:
    call: Call
    where: str  # "body" or "query"
    name: str
    value: Any

    def event(self, world: World) -> dict[str, Any]:
        if self.where == "query":
            return self.call.event(world, query={self.name: self.value})
        return self.call.event(world, body={**(self.call.body or {}), self.name: self.value})


def text_inputs() -> list[TextInput]:
    """Every text input of every route of the OpenAPI document, each with NUL in it."""
    calls = {(call.method, call.path): call for call in EVERY_ROUTE}
    found: list[TextInput] = []
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            call = calls[(method.upper(), path)]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for name, schema in _resolved(body["schema"]).get("properties", {}).items():
                    found += [TextInput(call, "body", name, v) for v in nul_values(schema)]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    found += [
                        TextInput(call, "query", parameter["name"], v)
                        for v in nul_values(parameter["schema"])
                        if isinstance(v, str)
                    ]
    return found


TEXT_INPUTS = text_inputs()


def test_the_text_inputs_found_in_the_openapi_document_are_all_of_them() -> None:
    # The OpenAPI document is what the code generates (a test keeps it so): this is the list
    # of the API's text inputs, and a new one joins the test below by itself.
    assert {(case.call.path, case.where, case.name) for case in TEXT_INPUTS} == {
        ("/search", "body", "query"),
        ("/interviews/{interview_id}/results", "body", "question_text"),
        ("/interviews/{interview_id}/results", "body", "stt_full_text"),
        ("/interviews/{interview_id}/results", "body", "keywords"),
        ("/interviews/{interview_id}/results", "body", "strengths"),
        ("/interviews/{interview_id}/results", "body", "weaknesses"),
        ("/interviews/{interview_id}/results", "body", "ai_feedback"),
        ("/interviews/{interview_id}/results", "body", "metadata"),
        ("/questions", "body", "question_type"),
        ("/questions", "body", "question_text"),
        ("/questions", "body", "expected_keywords"),
        ("/questions", "body", "evaluation_criteria"),
        ("/questions", "query", "question_type"),
        ("/jobs/{job_id}/applicants", "query", "after"),
    }


@pytest.mark.parametrize(
    "case",
    TEXT_INPUTS,
    ids=lambda case: (
        f"{case.call.method} {case.call.path} {case.where}.{case.name} {json.dumps(case.value)}"
    ),
)
def test_nul_in_any_text_input_is_a_422_naming_it_and_changes_nothing(
    case: TextInput, world: World, db_engine: Engine, functions: dict[str, ModuleType]
) -> None:
    before = database_state(db_engine)
    answer = invoke(functions[case.call.function], case.event(world))
    assert answer.status == 422, answer.body
    fields = [detail["field"].split(".")[0] for detail in answer.body["error"]["details"]]
    assert case.name in fields
    assert database_state(db_engine) == before


# --- the database and Bedrock unreachable ---------------------------------------------------


@pytest.mark.parametrize("call", EVERY_ROUTE, ids=call_id)
def test_an_unreachable_database_is_a_503_naming_it_on_every_route(
    call: Call,
    through_proxy: TcpProxy,
    world: World,
    db_engine: Engine,
    functions: dict[str, ModuleType],
) -> None:
    # Given the database gone (its address refuses connections)
    before = database_state(db_engine)
    through_proxy.go_down()

    # When any route is called, then it answers 503 naming the database, and nothing changed
    answer = invoke(functions[call.function], call.event(world))
    assert answer.status == 503, answer.body
    assert answer.body["error"]["code"] == "database_unavailable"
    assert answer.body["error"]["request_id"] == REQUEST_ID
    through_proxy.come_back()
    assert database_state(db_engine) == before


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def environment() -> Iterator[dict[str, str]]:
    """``os.environ`` for the test: restored, with the layer's cached settings and embedder
    forgotten, after it (also when the test changed them)."""
    saved = dict(os.environ)
    try:
        yield os.environ  # type: ignore[misc]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        config.reset_settings()
        embeddings.reset_embedder()


NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.mark.parametrize(
    "trouble",
    [{}, NO_CREDENTIALS],
    ids=["bedrock unreachable", "no credentials for bedrock"],
)
def test_an_unusable_embedding_service_is_a_503_naming_it(
    trouble: dict[str, str | None],
    environment: dict[str, str],
    world: World,
    db_engine: Engine,
    functions: dict[str, ModuleType],
) -> None:
    # Given search on Titan, whose endpoint refuses connections (or no credentials to call it)
    environment["EMBEDDING_PROVIDER"] = "titan"
    environment["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = f"http://127.0.0.1:{closed_port()}"
    for name, value in trouble.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    config.reset_settings()
    embeddings.reset_embedder()
    before = database_state(db_engine)

    # When a search arrives with 4.5 s left (3 s kept back: 1.5 s of retries)
    query = f"a query never embedded before, {sorted(trouble)}"
    started = time.monotonic()
    answer = invoke(
        functions["search"],
        Call("POST", "/search", {"query": query}).event(world),
        remaining_ms=4_500,
    )

    # Then it answers 503 naming the embedding service, within the function's time
    assert answer.status == 503, answer.body
    assert answer.body["error"]["code"] == "embedding_unavailable"
    assert answer.body["error"]["request_id"] == REQUEST_ID
    assert time.monotonic() - started < 4.5
    assert database_state(db_engine) == before
