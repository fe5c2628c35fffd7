"""One OpenAPI document for the whole REST API, generated from the API functions' Powertools
resolvers (``get_openapi_schema``) and merged; ``openapi.json`` at the repository root is the
committed copy (a test keeps it equal to what the code generates)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from .runtime import FunctionRunner
from .template import Template

API_TITLE = "flex backend API"
API_VERSION = "0.1.0"
API_DESCRIPTION = (
    "Semantic search over job descriptions and the interview sessions/results API of flex. "
    "In AWS every route requires IAM (SigV4, service execute-api) authorisation."
)


class OpenApiError(RuntimeError):
    """The document cannot be generated (a function is missing, or two disagree)."""


def find_resolver(module: ModuleType) -> Any:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    for value in vars(module).values():
        if isinstance(value, ApiGatewayResolver):
            return value
    raise OpenApiError(f"{module.__name__} has no Powertools resolver at module level")


def _merge_into(target: dict[str, Any], source: dict[str, Any], where: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise OpenApiError(f"{where}.{name} is defined differently by two functions")
        target[name] = value


def generate(template: Template, runner: FunctionRunner) -> dict[str, Any]:
    """Merge the OpenAPI documents of every function that serves an API route."""
    functions = sorted({route.function for route in template.routes})
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    openapi_version = "3.1.0"
    for function in functions:
        resolver = find_resolver(runner.load(function))
        schema = resolver.get_openapi_schema(
            title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION
        )
        document = json.loads(schema.model_dump_json(by_alias=True, exclude_none=True))
        openapi_version = document.get("openapi", openapi_version)
        for path, operations in (document.get("paths") or {}).items():
            existing = paths.setdefault(path, {})
            _merge_into(existing, operations, f"paths.{path}")
        for section, entries in (document.get("components") or {}).items():
            _merge_into(components.setdefault(section, {}), entries, f"components.{section}")

    merged: dict[str, Any] = {
        "openapi": openapi_version,
        "info": {"title": API_TITLE, "version": API_VERSION, "description": API_DESCRIPTION},
        "paths": dict(sorted(paths.items())),
    }
    if components:
        merged["components"] = {
            section: dict(sorted(entries.items()))
            for section, entries in sorted(components.items())
        }
    merged.setdefault("components", {})["securitySchemes"] = {
        "sigv4": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS Signature Version 4 (IAM); not checked by the local runner",
        }
    }
    merged["security"] = [{"sigv4": []}]
    return merged


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def undocumented_routes(template: Template, document: dict[str, Any]) -> list[str]:
    """Template routes the document lacks, and documented operations no route serves.
    Path parameter names are not compared: API Gateway matches by position, and so do the
    resolvers (``/interviews/{id}`` in the template serves ``/interviews/<interview_id>``)."""
    documented = {
        (path_shape(path), method.upper())
        for path, operations in (document.get("paths") or {}).items()
        for method in operations
    }
    declared = {(path_shape(route.path), route.method) for route in template.routes}
    problems = [f"{m} {p}: in template.yaml, not in the API" for p, m in declared - documented]
    problems += [f"{m} {p}: in the API, not in template.yaml" for p, m in documented - declared]
    return sorted(problems)


def path_shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def write(path: Path, document: dict[str, Any]) -> bool:
    """Write ``document`` to ``path``; returns whether the file changed."""
    text = render(document)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
