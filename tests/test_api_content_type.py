"""The APIs speak JSON whatever content type a client declares for its body."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from sqlalchemy.engine import Engine

from tests.test_search_support import call, rest_event

FORM = "application/x-www-form-urlencoded"


def form_event(raw_body: str) -> dict[str, object]:
    # What `curl -d '...'` sends without -H 'Content-Type: application/json'
    event = rest_event("POST", "/search", raw_body=raw_body)
    event["headers"] = {"content-type": FORM}
    event["multiValueHeaders"] = {"content-type": [FORM]}
    return event


def test_json_sent_as_a_form_is_read_as_json(
    load_function: Callable[[str], ModuleType], db_engine: Engine
) -> None:
    app = load_function("search")
    status, body = call(app, form_event('{"query": "python backend", "top_k": 3}'))
    assert status == 200
    assert body == {"results": []}


@pytest.mark.parametrize("raw", ["{bad", "query=python&top_k=3"])
def test_a_non_json_form_body_is_a_clear_400(
    load_function: Callable[[str], ModuleType], raw: str
) -> None:
    app = load_function("search")
    status, body = call(app, form_event(raw))
    assert status == 400
    assert body["error"]["message"].startswith("body: malformed JSON")


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x"])
def test_a_multipart_body_is_a_415_naming_it(
    load_function: Callable[[str], ModuleType], content_type: str
) -> None:
    # Powertools' multipart parser would read it as form fields, or fail (a 502) without a
    # boundary: the APIs take JSON only.
    app = load_function("interview_results")
    event = rest_event("PATCH", "/interviews/1", raw_body='{"status": "failed"}')
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}
    status, body = call(app, event)
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"
    assert "multipart/form-data" in body["error"]["message"]
