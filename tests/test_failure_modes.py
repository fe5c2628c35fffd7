"""Failure injection: what production does to the functions, each case through the real code on
the real database, with the status a caller sees and nothing written twice or half."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event as api_event
from devtools.lambda_context import FakeLambdaContext
from flex_shared import db
from flex_shared.database_url import parse_database_url
from tests.conftest import ALL_TABLES, REPO_ROOT


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def invoke(function: ModuleType, event: dict[str, Any]) -> Answer:
    """Call a function's Lambda handler as API Gateway does; every answer is JSON."""
    response = function.lambda_handler(event, FakeLambdaContext())
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


# --- odd requests: media types -------------------------------------------------------------


@dataclass(frozen=True)
class BodyRoute:
    """A route that reads a JSON body, with a body it accepts and the status of success."""

    function: str
    method: str
    path: str
    body: dict[str, Any]
    success: int


BODY_ROUTES = (
    BodyRoute("search", "POST", "/search", {"query": "python backend", "top_k": 3}, 200),
    BodyRoute("interview_results", "POST", "/interviews", {"applicant_id": 7, "job_id": 0}, 201),
    BodyRoute(
        "interview_results", "PATCH", "/interviews/{interview}", {"status": "completed"}, 200
    ),
    BodyRoute(
        "interview_results",
        "POST",
        "/interviews/{interview}/results",
        {"question_id": 1, "question_text": "Why Python?", "overall_score": 80},
        201,
    ),
    BodyRoute(
        "interview_results",
        "POST",
        "/questions",
        {"question_type": "technical", "question_text": "Explain MVCC"},
        201,
    ),
)


@dataclass(frozen=True)
class World:
    """A published job and an interview in progress for it."""

    job_id: int
    interview_id: int


@pytest.fixture
def world(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> World:
    with db_engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (company_id, title, description)"
                " VALUES (7, 'Backend engineer', 'Python and PostgreSQL') RETURNING id"
            )
        ).scalar_one()
    interviews = load_function("interview_results")
    created = invoke(
        interviews, api_event("POST", "/interviews", {"applicant_id": 1, "job_id": job_id})
    )
    assert created.status == 201, created.body
    interview_id = created.body["id"]
    started = invoke(
        interviews, api_event("PATCH", f"/interviews/{interview_id}", {"status": "in_progress"})
    )
    assert started.status == 200, started.body
    return World(job_id, interview_id)


def route_event(route: BodyRoute, world: World, content_type: str, raw_body: str) -> dict[str, Any]:
    body = dict(route.body)
    if "job_id" in body:
        body["job_id"] = world.job_id
    event = api_event(
        route.method,
        route.path.format(interview=world.interview_id),
        raw_body=raw_body.replace("{body}", json.dumps(body)),
    )
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}
    return event


MULTIPART_BODY = (
    '--XyZ\r\nContent-Disposition: form-data; name="query"\r\n\r\npython\r\n'
    '--XyZ\r\nContent-Disposition: form-data; name="status"\r\n\r\ncompleted\r\n--XyZ--\r\n'
)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda route: f"{route.method} {route.path}")
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
    route: BodyRoute,
    content_type: str,
    raw_body: str,
    world: World,
    db_engine: Engine,
    load_function: Callable[[str], ModuleType],
) -> None:
    # Given the state of the database
    before = database_state(db_engine)

    # When a body that is not JSON is sent to a route that reads JSON
    answer = invoke(
        load_function(route.function), route_event(route, world, content_type, raw_body)
    )

    # Then it is refused as a media type the API does not speak, naming what was sent
    assert answer.status == 415, answer.body
    assert answer.body["error"]["code"] == "unsupported_media_type"
    assert content_type in answer.body["error"]["message"]
    assert database_state(db_engine) == before


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda route: f"{route.method} {route.path}")
@pytest.mark.parametrize(
    "content_type", ["Application/JSON; charset=UTF-8", "APPLICATION/JSON", "application/json "]
)
def test_media_types_are_case_insensitive(
    route: BodyRoute,
    content_type: str,
    world: World,
    db_engine: Engine,
    load_function: Callable[[str], ModuleType],
) -> None:
    answer = invoke(
        load_function(route.function), route_event(route, world, content_type, "{body}")
    )
    assert answer.status == route.success, answer.body
