"""API Gateway REST API (proxy integration, payload 1.0) events, as tests and benchmarks send
them to the API handlers. The local runner builds the same shape from real HTTP requests."""

from __future__ import annotations

import json
from typing import Any


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    request_id: str = "test-request",
) -> dict[str, Any]:
    """A REST proxy event for ``method path``; ``body`` is sent as JSON unless ``raw_body``
    gives the exact text. ``resource`` is the route template (defaults to the path)."""
    if raw_body is None and body is not None:
        raw_body = json.dumps(body, ensure_ascii=False)
    resource = resource or path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": (
            {name: [value] for name, value in query.items()} if query else None
        ),
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": request_id,
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }
