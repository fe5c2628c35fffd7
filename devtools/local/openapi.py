"""One OpenAPI document for the whole REST API: Powertools' ``OpenAPIMerge`` over the API
functions' resolvers (loaded through the runner, as the local API runs them), and the same
document served with Powertools' Swagger UI. ``openapi.json`` at the repository root is the
committed copy (a test keeps it equal to what the code generates).

Each route documents itself (summary, description, tag, statuses: ``flex_shared.openapi``);
this module adds what belongs to the whole API: the tags' descriptions, IAM as API Gateway
reads it, the request examples (the bodies of ``events/``) and the response examples
(``docs/api-examples.json``, real answers of the local API: ``make api-examples``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

from .runtime import FunctionRunner
from .template import Template

API_TITLE = "flex backend API"
API_VERSION = "0.1.0"
API_DESCRIPTION = (
    "Semantic search over job descriptions and the interview sessions/results API of flex. "
    "In AWS every route requires IAM (SigV4, service execute-api) authorisation."
)
SIGV4 = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "AWS Signature Version 4 (IAM), service `execute-api`; not checked by the"
    " local API. A request API Gateway cannot authorise gets its 403.",
    # How API Gateway itself marks IAM authorisation in an OpenAPI document.
    "x-amazon-apigateway-authtype": "awsSigv4",
}
TAGS = [
    {"name": "Search", "description": "Semantic, keyword and hybrid search over job descriptions."},
    {"name": "Jobs", "description": "The job descriptions ingested from the S3 bucket."},
    {"name": "Interviews", "description": "Interview sessions and their lifecycle."},
    {
        "name": "Interview results",
        "description": "The AI's analysis of each answer of a session, and its summary.",
    },
    {"name": "Questions", "description": "Question templates, per job or general."},
    {
        "name": "Hiring insights",
        "description": "Per job: its applicants ranked, and what its interviews show.",
    },
]
"""Every route's tag, described once; a test checks each route has one of them."""

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
RESPONSE_EXAMPLES = REPO_ROOT / "docs" / "api-examples.json"

REQUEST_EXAMPLES: dict[str, list[str]] = {
    "search": ["search_post", "search_post_filtered", "search_post_hybrid"],
    "create_interview": ["interview_results_create_interview"],
    "update_interview": ["interview_results_update_interview"],
    "record_result": ["interview_results_post_result"],
    "create_question": ["interview_results_create_question"],
}
"""Operation id -> the events of ``events/`` whose bodies are its request examples."""


class OpenApiError(RuntimeError):
    """The document cannot be generated (a function is missing, or two disagree)."""


def find_resolver(module: ModuleType) -> APIGatewayRestResolver:
    for value in vars(module).values():
        if isinstance(value, APIGatewayRestResolver):
            return value
    raise OpenApiError(f"{module.__name__} has no Powertools resolver at module level")


def merged_document(template: Template, runner: FunctionRunner) -> OpenAPIMerge:
    """Every API function's document in one; two functions serving the same method and path
    is an error (``on_conflict``)."""
    merge = OpenAPIMerge(
        title=API_TITLE,
        version=API_VERSION,
        description=API_DESCRIPTION,
        security_schemes={"sigv4": SIGV4},  # type: ignore[dict-item]  # validated by OpenAPI()
        security=[{"sigv4": []}],
        tags=TAGS,  # type: ignore[arg-type]  # validated by OpenAPI()
        on_conflict="error",
    )
    documents = []
    for function in sorted({route.function for route in template.routes}):
        documents.append(find_resolver(runner.load(function)).get_openapi_schema())
        merge.add_schema(documents[-1])  # type: ignore[arg-type]  # it takes the model too
    # Powertools keeps the last of two same-named components: refuse two that differ instead.
    merged = json.loads(merge.get_openapi_json_schema()).get("components", {})
    for document in documents:
        own = json.loads(document.model_dump_json(by_alias=True, exclude_none=True))
        for section, entries in own.get("components", {}).items():
            for name, value in entries.items():
                if merged[section][name] != value:
                    raise OpenApiError(f"components.{section}.{name} differs between functions")
    return merge


def document(merge: OpenAPIMerge) -> dict[str, Any]:
    """The merged document, finished: statuses in order, the examples added, and the
    components no operation refers to (Powertools' ``HTTPValidationError`` family, which these
    APIs never answer) left out."""
    finished: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    for operation in _operations(finished):
        operation["responses"] = dict(sorted(operation["responses"].items()))
    _add_request_examples(finished)
    _add_response_examples(finished)
    _drop_unused_components(finished)
    return finished


def render(merge: OpenAPIMerge) -> str:
    return json.dumps(document(merge), indent=2, ensure_ascii=False) + "\n"


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in (document.get("paths") or {}).values():
        yield from operations.values()


def _operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for operation in _operations(document):
        if operation.get("operationId") == operation_id:
            return operation
    raise OpenApiError(f"no operation {operation_id!r} for its examples")


def _add_request_examples(document: dict[str, Any]) -> None:
    for operation_id, event_names in REQUEST_EXAMPLES.items():
        media = _operation(document, operation_id)["requestBody"]["content"]["application/json"]
        examples = media.setdefault("examples", {})
        for name in event_names:
            event = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
            examples[name] = {"summary": f"events/{name}.json", "value": json.loads(event["body"])}


def _add_response_examples(document: dict[str, Any]) -> None:
    if not RESPONSE_EXAMPLES.is_file():
        return
    captured = json.loads(RESPONSE_EXAMPLES.read_text(encoding="utf-8"))
    for operation_id, by_status in captured.items():
        responses = _operation(document, operation_id)["responses"]
        for status, examples in by_status.items():
            if status not in responses:
                raise OpenApiError(f"{operation_id} has an example for undocumented {status}")
            media = responses[status]["content"]["application/json"]
            media.setdefault("examples", {}).update(examples)


def _drop_unused_components(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps({k: v for k, v in document.items() if k != "components"})
        text += json.dumps(schemas)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


class ApiDocs(APIGatewayRestResolver):
    """Serves the merged document at ``/openapi.json`` and Powertools' Swagger UI at
    ``/swagger`` (assets bundled with Powertools: works offline)."""

    def __init__(self, merge: OpenAPIMerge) -> None:
        super().__init__(enable_validation=True)
        self._merge = merge
        self.enable_swagger(path="/swagger")
        self.get("/openapi.json", include_in_schema=False)(self._openapi_json)

    def _openapi_json(self) -> Response[str]:
        return Response(200, "application/json", render(self._merge))

    def get_openapi_schema(self, **_: Any) -> OpenAPI:
        # enable_swagger documents the resolver it is on: here, every function's routes.
        return OpenAPI.model_validate(document(self._merge))


def undocumented_routes(template: Template, merge: OpenAPIMerge) -> list[str]:
    """Template routes the document lacks, and documented operations no route serves.
    Path parameter names are not compared: API Gateway matches by position, and so do the
    resolvers (``/interviews/{id}`` in the template serves ``/interviews/<interview_id>``)."""
    merged = json.loads(merge.get_openapi_json_schema())
    documented = {
        (_path_shape(path), method.upper())
        for path, operations in (merged.get("paths") or {}).items()
        for method in operations
    }
    declared = {(_path_shape(route.path), route.method) for route in template.routes}
    problems = [f"{m} {p}: in template.yaml, not in the API" for p, m in declared - documented]
    problems += [f"{m} {p}: in the API, not in template.yaml" for p, m in documented - declared]
    return sorted(problems)


def _path_shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def write(path: Path, merge: OpenAPIMerge) -> bool:
    """Write the document to ``path``; returns whether the file changed."""
    text = render(merge)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if changed:
        path.write_text(text, encoding="utf-8")
    return changed
