"""The local REST API turns HTTP requests into the proxy events API Gateway sends (payload
format 1.0) and writes the functions' proxy responses back as HTTP."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from devtools.local.http_api import (
    LocalApiServer,
    RouteMatch,
    RouteTable,
    build_proxy_event,
    parse_proxy_response,
)
from devtools.local.template import ApiRoute, load_template

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = load_template(REPO_ROOT / "template.yaml")


def _api_fixtures() -> list[Path]:
    return sorted(
        path
        for path in (REPO_ROOT / "events").glob("*.json")
        if "httpMethod" in json.loads(path.read_text(encoding="utf-8"))
    )


class Recorder:
    """A stand-in function: remembers the event, answers what the test asks for."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.response: Any = {"statusCode": 200, "body": "{}"}

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.events.append((function, event))
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(recorder: Recorder) -> Iterator[LocalApiServer]:
    server = LocalApiServer(
        TEMPLATE.routes,
        TEMPLATE.stages,
        recorder,
        port=0,
        gateway_responses=TEMPLATE.gateway_responses,
        log=lambda message: None,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def request(
    api: LocalApiServer,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(api.url + target, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def test_a_request_becomes_the_proxy_event_api_gateway_sends(
    api: LocalApiServer, recorder: Recorder
) -> None:
    # Given the template's GET /jobs/{job_id} route
    # When a client calls it with repeated query parameters and its own headers
    status, _, _ = request(
        api, "GET", "/jobs/42?tag=a&tag=b%20c&empty=", None, {"X-Trace": "t1", "Accept": "*/*"}
    )

    # Then the route's function gets a REST API proxy event for that resource
    assert status == 200
    function, event = recorder.events[-1]
    assert function == "SearchFunction"
    assert event["resource"] == "/jobs/{job_id}"
    assert event["path"] == "/jobs/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"job_id": "42"}
    assert event["queryStringParameters"] == {"tag": "b c", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b c"], "empty": [""]}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["resourcePath"] == "/jobs/{job_id}"
    assert context["stage"] == "dev"  # the template's StageName default
    # the path as the client asked for it: the local API serves the stage at the root
    assert context["path"] == "/jobs/42"
    assert context["httpMethod"] == "GET"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"]
    # And Powertools reads it as an API Gateway proxy event
    parsed = APIGatewayProxyEvent(event)
    assert parsed.path_parameters == {"job_id": "42"}
    assert parsed.get_query_string_value("tag") == "b c"
    assert parsed.request_context.resource_path == "/jobs/{job_id}"
    assert parsed.request_context.stage == "dev"
    assert parsed.headers.get("x-trace") == "t1"


def test_a_json_body_arrives_as_text_and_binary_as_base64(
    api: LocalApiServer, recorder: Recorder
) -> None:
    body = json.dumps({"query": "백엔드 개발자", "top_k": 3}, ensure_ascii=False).encode()
    request(api, "POST", "/search", body, {"Content-Type": "application/json"})
    event = recorder.events[-1][1]
    assert APIGatewayProxyEvent(event).json_body == {"query": "백엔드 개발자", "top_k": 3}
    assert event["isBase64Encoded"] is False

    request(api, "POST", "/search", b"\xff\xfe\x00binary")
    event = recorder.events[-1][1]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00binary"


@pytest.mark.parametrize("fixture", _api_fixtures(), ids=lambda path: path.stem)
def test_events_have_the_shape_of_the_repository_fixtures(fixture: Path) -> None:
    # Given a sample API Gateway event of the repository (what the functions are tested with)
    sample = json.loads(fixture.read_text(encoding="utf-8"))
    table = RouteTable(TEMPLATE.routes)
    match = table.match(sample["httpMethod"], sample["path"])
    assert match is not None, f"{fixture.name}: no template route for its path"
    # Parameter names may differ between a fixture and template.yaml ({id} / {interview_id}):
    # API Gateway sends the template's; the resolvers match on the path either way.
    assert _shape(match.route.path) == _shape(sample["resource"])
    query = "&".join(
        f"{name}={value}"
        for name, values in (sample.get("multiValueQueryStringParameters") or {}).items()
        for value in values
    )
    headers = [
        (name, value)
        for name, values in (sample.get("multiValueHeaders") or {}).items()
        for value in values
    ] or list((sample.get("headers") or {}).items())

    # When the local API builds the event for the same request
    event = build_proxy_event(
        method=sample["httpMethod"],
        target=sample["path"] + (f"?{query}" if query else ""),
        headers=headers,
        body=(sample.get("body") or "").encode(),
        match=match,
        stage=sample["requestContext"].get("stage", "Prod"),
    )

    # Then it has every key the sample has, with the same request data
    assert set(sample) <= set(event)
    assert set(sample["requestContext"]) <= set(event["requestContext"])
    assert set(sample["requestContext"].get("identity", {})) <= set(
        event["requestContext"]["identity"]
    )
    for key in ("path", "httpMethod", "body"):
        assert event[key] == sample[key], key
    assert event["resource"] == match.route.path
    assert list((event["pathParameters"] or {}).values()) == list(
        (sample["pathParameters"] or {}).values()
    )
    assert event["queryStringParameters"] == sample.get("queryStringParameters")
    for name, value in (sample.get("headers") or {}).items():
        assert event["headers"][name] == value
    assert event["requestContext"]["resourcePath"] == match.route.path
    assert _shape(sample["requestContext"]["resourcePath"]) == _shape(match.route.path)


def _shape(resource: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", resource)


def test_the_function_response_is_written_back(api: LocalApiServer, recorder: Recorder) -> None:
    recorder.response = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-One": "1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"id": 7}),
        "isBase64Encoded": False,
    }
    status, headers, body = request(api, "POST", "/interviews", b"{}")
    assert status == 201
    assert json.loads(body) == {"id": 7}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-One"] == "1"

    recorder.response = {
        "statusCode": 200,
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }
    assert request(api, "GET", "/questions/1")[2] == b"\x89PNG"


@pytest.mark.parametrize(
    "response",
    [RuntimeError("boom"), {"body": "no status"}, "not an object", {"statusCode": 200, "body": 5}],
    ids=["raises", "no-status", "not-object", "body-not-string"],
)
def test_a_failing_or_malformed_function_is_a_502_like_api_gateway(
    api: LocalApiServer, recorder: Recorder, response: Any
) -> None:
    recorder.response = response
    status, headers, body = request(api, "GET", "/interviews/1")
    # API Gateway's own 5xx, shaped by the template's DEFAULT_5XX gateway response, with the
    # request id the function was given
    assert status == 502
    assert headers["Content-Type"] == "application/json"
    [(_, event)] = recorder.events
    assert json.loads(body) == {
        "error": {
            "code": "internal_error",
            "message": "Internal server error",
            "request_id": event["requestContext"]["requestId"],
        }
    }


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/nope"),
        ("DELETE", "/interviews/1"),
        ("GET", "/search"),
        ("HEAD", "/search"),
        # methods API Gateway has no route for, whatever the path
        ("TRACE", "/search"),
        ("QUERY", "/search"),
        ("PROPFIND", "/jobs/1"),
        ("CONNECT", "/interviews"),
    ],
)
def test_unknown_routes_and_methods_get_api_gateways_403(
    api: LocalApiServer, recorder: Recorder, method: str, target: str
) -> None:
    status, headers, body = request(api, method, target, body=b"" if method == "QUERY" else None)
    assert status == 403
    assert headers["Content-Type"] == "application/json"
    if method != "HEAD":
        assert json.loads(body) == {"message": "Missing Authentication Token"}
    assert recorder.events == []


def test_route_matching_prefers_literal_segments_then_parameters_then_greedy() -> None:
    table = RouteTable(
        [
            ApiRoute("Greedy", "/files/{proxy+}", "ANY", "a", None),
            ApiRoute("Param", "/files/{name}", "GET", "b", None),
            ApiRoute("Literal", "/files/latest", "GET", "c", None),
        ]
    )

    def matched(method: str, path: str) -> RouteMatch | None:
        return table.match(method, path)

    assert matched("GET", "/files/latest").route.function == "Literal"  # type: ignore[union-attr]
    hit = matched("GET", "/files/a%20b")
    assert hit is not None
    assert hit.route.function == "Param"
    assert hit.path_parameters == {"name": "a b"}
    greedy = matched("POST", "/files/x/y/z")
    assert greedy is not None
    assert greedy.route.function == "Greedy"
    assert greedy.path_parameters == {"proxy": "x/y/z"}
    assert matched("GET", "/other") is None


def test_parse_proxy_response_merges_single_and_multi_value_headers() -> None:
    status, headers, body = parse_proxy_response(
        {
            "statusCode": "204",
            "headers": {"X-A": "single", "X-B": "b"},
            "multiValueHeaders": {"X-A": ["m1", "m2"]},
        }
    )
    assert status == 204
    assert headers == [("X-A", "m1"), ("X-A", "m2"), ("X-B", "b")]
    assert body == b""
