"""One OpenAPI document for the whole REST API: Powertools' ``OpenAPIMerge`` over the API
functions' resolvers (loaded through the runner, as the local API runs them), and the same
document served with Powertools' Swagger UI. ``openapi.json`` at the repository root is the
committed copy (a test keeps it equal to what the code generates)."""

from __future__ import annotations

import json
import re
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
    "description": "AWS Signature Version 4 (IAM); not checked by the local runner",
}


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


def render(merge: OpenAPIMerge) -> str:
    return merge.get_openapi_json_schema() + "\n"


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
        return OpenAPI.model_validate(json.loads(self._merge.get_openapi_json_schema()))


def undocumented_routes(template: Template, merge: OpenAPIMerge) -> list[str]:
    """Template routes the document lacks, and documented operations no route serves.
    Path parameter names are not compared: API Gateway matches by position, and so do the
    resolvers (``/interviews/{id}`` in the template serves ``/interviews/<interview_id>``)."""
    document = json.loads(merge.get_openapi_json_schema())
    documented = {
        (_path_shape(path), method.upper())
        for path, operations in (document.get("paths") or {}).items()
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
