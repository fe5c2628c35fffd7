"""The committed ``openapi.json`` as a client generator reads it: a valid OpenAPI 3.1 document
in which every route says what it does, answers with real schemas and statuses, documents every
error it can answer with the one error schema, and whose examples fit their schemas; and the
handlers' real error bodies fit that schema. (``make contract`` checks the same document
against the running API with schemathesis.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.engine import Engine

from devtools.apigw import rest_event
from devtools.lambda_context import FakeLambdaContext
from devtools.local.openapi import TAGS
from tests.conftest import REPO_ROOT

DOCUMENT: dict[str, Any] = json.loads((REPO_ROOT / "openapi.json").read_text(encoding="utf-8"))
JSON = "application/json"
CREATES = {"create_interview": "/interviews/", "create_question": "/questions/"}
READS_BODY = {"POST", "PATCH", "PUT"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in DOCUMENT["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


OPERATIONS = list(operations())
IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


_COMPONENT_REF = re.compile(r'"#/components/')
_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:openapi",
    Resource.from_contents(
        json.loads(_COMPONENT_REF.sub('"urn:openapi#/components/', json.dumps(DOCUMENT))),
        DRAFT202012,
    ),
)


def violations(schema: dict[str, Any], value: Any) -> list[str]:
    """How ``value`` breaks ``schema`` (a schema of the document, its references resolved)."""
    absolute = json.loads(_COMPONENT_REF.sub('"urn:openapi#/components/', json.dumps(schema)))
    validator = Draft202012Validator(absolute, registry=_REGISTRY)
    return [error.message for error in validator.iter_errors(value)]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_route_says_what_it_does(method: str, path: str, operation: dict[str, Any]) -> None:
    assert operation["summary"] != f"{method} {path}"
    assert not operation["summary"].startswith(method)
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"])
    [tag] = operation["tags"]
    assert tag in {declared["name"] for declared in DOCUMENT["tags"]} == {t["name"] for t in TAGS}


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_route_documents_its_answers_with_real_schemas(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    successes = {status: answer for status, answer in responses.items() if status < "400"}
    assert successes
    for answer in successes.values():
        schema = answer["content"][JSON]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/"), schema  # never a bare string
    statuses = set(responses)
    assert {"403", "422", "429", "500", "503"} <= statuses
    if method in READS_BODY:
        assert {"400", "415"} <= statuses
    for status, answer in responses.items():
        if status >= "400":
            expected = "GatewayError" if status in ("403", "429") else "ErrorResponse"
            assert answer["content"][JSON]["schema"] == {
                "$ref": f"#/components/schemas/{expected}"
            }, status
    assert "HTTPValidationError" not in json.dumps(DOCUMENT)


@pytest.mark.parametrize(("operation_id", "prefix"), CREATES.items())
def test_creates_answer_201_with_the_location_and_links_to_follow(
    operation_id: str, prefix: str
) -> None:
    operation = next(op for _, _, op in OPERATIONS if op["operationId"] == operation_id)
    created = operation["responses"]["201"]
    assert "200" not in operation["responses"]
    assert created["headers"]["Location"]["required"] is True
    known = {op["operationId"] for _, _, op in OPERATIONS}
    assert created["links"]
    for link in created["links"].values():
        assert link["operationId"] in known
        assert list(link["parameters"].values()) == ["$response.body#/id"]


def test_request_bodies_refuse_what_validation_refuses() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    update = schemas["UpdateInterviewRequest"]
    assert update["minProperties"] == 1  # {} is a 422
    for name, field in update["properties"].items():
        # null is a 422: the document does not offer it
        assert "anyOf" not in field, name
        assert field.get("type") != "null", name
    for model in ("SearchRequest", "ResultRequest", "CreateQuestionRequest"):
        assert schemas[model]["additionalProperties"] is False  # unknown fields are a 422


def _examples() -> Iterator[tuple[str, dict[str, Any], Any]]:
    for method, path, operation in OPERATIONS:
        media = operation.get("requestBody", {}).get("content", {}).get(JSON, {})
        for name, example in media.get("examples", {}).items():
            yield f"{method} {path} request {name}", media["schema"], example["value"]
        for status, answer in operation["responses"].items():
            media = answer.get("content", {}).get(JSON, {})
            for name, example in media.get("examples", {}).items():
                yield f"{method} {path} {status} {name}", media["schema"], example["value"]


EXAMPLES = list(_examples())


def test_there_are_real_examples_for_search_and_interview_results() -> None:
    named = {case for case, _, _ in EXAMPLES}
    assert "POST /search 200 search_post" in named
    assert "POST /interviews/{interview_id}/results 201 new" in named
    assert "GET /interviews/{interview_id}/results 200 results" in named
    assert sum(" request " in case for case in named) >= 5


@pytest.mark.parametrize(("case", "schema", "value"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_fits_its_schema(case: str, schema: dict[str, Any], value: Any) -> None:
    assert violations(schema, value) == []


# --- the handlers' real errors fit the documented error schema ---------------------------


@pytest.fixture
def interviews(db_engine: Engine, load_function: Callable[[str], ModuleType]) -> ModuleType:
    return load_function("interview_results")


def _answer(module: ModuleType, event: dict[str, Any]) -> tuple[str, Any]:
    response = module.lambda_handler(event, FakeLambdaContext(function_name="interview_results"))
    return str(response["statusCode"]), json.loads(response["body"])


ERROR_CASES = [
    ("POST", "/interviews", {"raw_body": "{"}),  # 400
    ("GET", "/interviews/999", {}),  # 404
    ("POST", "/interviews", {"body": {"applicant_id": 1, "job_id": 999}}),  # 404, with details
    ("POST", "/interviews", {"body": {"applicant_id": "1", "job_id": 1}}),  # 422
    ("PATCH", "/interviews/1", {"body": {}}),  # 422 (or 404: checked against its status)
    ("GET", "/questions", {"query": {"jobid": "1"}}),  # 422, invalid_input
]


@pytest.mark.parametrize(("method", "path", "request_parts"), ERROR_CASES)
def test_real_error_bodies_fit_the_documented_schema(
    interviews: ModuleType, method: str, path: str, request_parts: dict[str, Any]
) -> None:
    status, body = _answer(interviews, rest_event(method, path, **request_parts))
    template = re.sub(r"/\d+", "/{id}", path)
    operation = next(
        op for m, p, op in OPERATIONS if m == method and re.sub(r"\{[^}]+\}", "{id}", p) == template
    )
    assert status in operation["responses"], (status, body)
    schema = operation["responses"][status]["content"][JSON]["schema"]
    assert violations(schema, body) == [], body
