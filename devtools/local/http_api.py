"""A local REST API like ``sam local start-api``: the template's routes served on localhost,
each request turned into an API Gateway proxy-integration event (payload format 1.0) for the
route's function, and the function's proxy response written back.

IAM authorisation (the template's default authorizer) is not checked locally, as with SAM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .template import LOCAL_ACCOUNT_ID, ApiRoute

LOCAL_API_ID = "localapi01"
_PARAMETER = re.compile(r"^\{([^{}+]+)(\+?)\}$")


@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    path_parameters: dict[str, str]


class RouteTable:
    """API Gateway's matching: literal segments win over ``{param}``, ``{proxy+}`` last."""

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        self.routes = list(routes)

    @staticmethod
    def _segments(path: str) -> list[str]:
        return [segment for segment in path.strip("/").split("/") if segment]

    def _match_path(self, template: str, path: str) -> dict[str, str] | None:
        wanted = self._segments(template)
        given = self._segments(path)
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            parameter = _PARAMETER.match(segment)
            if parameter and parameter.group(2):  # greedy {name+}: the rest of the path
                if index >= len(given):
                    return None
                params[parameter.group(1)] = "/".join(unquote(s) for s in given[index:])
                return params
            if index >= len(given):
                return None
            if parameter:
                params[parameter.group(1)] = unquote(given[index])
            elif segment != given[index]:
                return None
        return params if len(wanted) == len(given) else None

    @staticmethod
    def _specificity(route: ApiRoute) -> tuple[int, ...]:
        # Per segment: literal 2, {param} 1, {greedy+} 0; compare left to right.
        out = []
        for segment in route.path.strip("/").split("/"):
            parameter = _PARAMETER.match(segment)
            out.append(0 if parameter and parameter.group(2) else 1 if parameter else 2)
        return tuple(out)

    def match(self, method: str, path: str) -> RouteMatch | None:
        candidates: list[tuple[tuple[int, ...], int, RouteMatch]] = []
        for route in self.routes:
            if route.method not in (method.upper(), "ANY"):
                continue
            params = self._match_path(route.path, path)
            if params is not None:
                exact_method = 1 if route.method == method.upper() else 0
                candidates.append(
                    (self._specificity(route), exact_method, RouteMatch(route, params))
                )
        if not candidates:
            return None
        candidates.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return candidates[0][2]


def _request_time(now: datetime) -> str:
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _identity(headers: Mapping[str, str], source_ip: str) -> dict[str, Any]:
    """What an IAM-authorised request's identity looks like; the access key is read from a
    SigV4 ``Authorization`` header when there is one (it is not verified locally)."""
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    credential = re.search(r"Credential=([A-Z0-9]+)/", authorization)
    access_key = credential.group(1) if credential else None
    user_agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), None)
    return {
        "apiKey": None,
        "apiKeyId": None,
        "clientCert": None,
        "cognitoIdentityPoolId": None,
        "accountId": LOCAL_ACCOUNT_ID if access_key else None,
        "cognitoIdentityId": None,
        "caller": access_key,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": access_key,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local" if access_key else None,
        "userAgent": user_agent,
        "user": access_key,
    }


def build_proxy_event(
    *,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    match: RouteMatch,
    stage: str,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy-integration event for one request.

    ``target`` is the request target (path and query string, as sent). Header names keep the
    client's spelling; ``headers`` holds the last value of each, ``multiValueHeaders`` all of
    them; query parameters and path parameters are URL-decoded, as API Gateway does.
    """
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(target)
    path = unquote(split.path) or "/"

    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    lower = {name.lower() for name in single_headers}
    forwarded = {
        "X-Forwarded-For": source_ip,
        "X-Forwarded-Port": host.rsplit(":", 1)[1] if ":" in host else "80",
        "X-Forwarded-Proto": "http",
    }
    for name, value in forwarded.items():
        if name.lower() not in lower:
            single_headers[name] = value
            multi_headers[name] = [value]

    query_pairs = parse_qsl(split.query, keep_blank_values=True)
    single_query: dict[str, str] | None = None
    multi_query: dict[str, list[str]] | None = None
    if query_pairs:
        single_query, multi_query = {}, {}
        for name, value in query_pairs:
            single_query[name] = value
            multi_query.setdefault(name, []).append(value)

    if not body:
        event_body: str | None = None
        is_base64 = False
    else:
        try:
            event_body, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            event_body, is_base64 = base64.b64encode(body).decode("ascii"), True

    route = match.route
    resource_id = hashlib.sha256(route.path.encode()).hexdigest()[:6]
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": resource_id,
            "resourcePath": route.path,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id.replace("-", "")[:16],
            "requestTime": _request_time(now),
            # The path as the client asked for it: with the stage on API Gateway's own host,
            # as it is here on the local API, which serves the stage at the root (the
            # functions build Location headers from it).
            "path": path,
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": protocol,
            "stage": stage,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": _identity(single_headers, source_ip),
            "domainName": host.split(":", 1)[0],
            "apiId": LOCAL_API_ID,
        },
        "body": event_body,
        "isBase64Encoded": is_base64,
    }


class BadProxyResponse(ValueError):
    """The function answered something API Gateway cannot turn into an HTTP response."""


def parse_proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a proxy-integration response, as API Gateway reads it."""
    if not isinstance(result, dict):
        raise BadProxyResponse(f"the response must be an object, got {type(result).__name__}")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise BadProxyResponse(f"statusCode must be an HTTP status, got {status!r}")
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise BadProxyResponse("headers and multiValueHeaders must be objects")
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(value)))
    multi_lower = {name.lower() for name in multi}
    for name, value in single.items():
        if str(name).lower() not in multi_lower:
            headers.append((str(name), str(value)))
    body = result.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise BadProxyResponse(f"body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raise BadProxyResponse("isBase64Encoded is true but body is not base64") from None
    else:
        raw = body.encode("utf-8")
    return status, headers, raw


Invoke = Callable[[str, dict[str, Any]], Any]
ExtraRoute = Callable[[str], tuple[int, str, bytes] | None]

MISSING_AUTHENTICATION_TOKEN = "Missing Authentication Token"  # noqa: S105 -- a message
INTERNAL_SERVER_ERROR = "Internal server error"


def gateway_answer(
    status: int,
    message: str,
    request_id: str,
    responses: Mapping[str, str],
    response_type: str,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """What API Gateway itself answers: ``{"message": ...}``, or the API's gateway response
    for ``response_type`` (else for ``DEFAULT_4XX``/``DEFAULT_5XX``) with its ``$context``
    variables filled in."""
    default_type = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
    body = responses.get(response_type) or responses.get(default_type)
    if body is None:
        return _json_answer(status, {"message": message})
    for variable, value in (
        ("$context.error.messageString", json.dumps(message)),
        ("$context.error.message", message),
        ("$context.error.responseType", response_type),
        ("$context.requestId", request_id),
    ):
        body = body.replace(variable, value)
    return status, [("Content-Type", "application/json")], body.encode()


class LocalApiServer:
    """Serves the template's routes on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        routes: Iterable[ApiRoute],
        stages: Mapping[str, str],
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        extra_get: ExtraRoute | None = None,
        gateway_responses: Mapping[str, Mapping[str, str]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self._stages = dict(stages)
        self._gateway_responses = {api: dict(r) for api, r in (gateway_responses or {}).items()}
        self._invoke = invoke
        self._extra_get = extra_get
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns promptly
            name="local-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    # ------------------------------------------------------------------ per request
    def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = unquote(urlsplit(target).path) or "/"
        request_id = str(uuid.uuid4())
        match = self.table.match(method, path)
        if match is None:
            if method == "GET" and self._extra_get is not None:
                extra = self._extra_get(target)
                if extra is not None:
                    status, content_type, payload = extra
                    return status, [("Content-Type", content_type)], payload
            self._log(f"{method} {path} -> no route in template.yaml (API Gateway answers 403)")
            # What API Gateway (and sam local) answer for a method/path the API lacks, any
            # method included (TRACE, QUERY, ...).
            apis = list(self._gateway_responses.values())
            return gateway_answer(
                HTTPStatus.FORBIDDEN,
                MISSING_AUTHENTICATION_TOKEN,
                request_id,
                apis[0] if len(apis) == 1 else {},
                "MISSING_AUTHENTICATION_TOKEN",
            )
        route = match.route
        responses = self._gateway_responses.get(route.api or "", {})
        host = next((v for k, v in headers if k.lower() == "host"), "localhost")
        event = build_proxy_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            match=match,
            stage=self._stages.get(route.api or "", "Prod"),
            source_ip=source_ip,
            host=host,
            request_id=request_id,
        )
        started = time.monotonic()
        try:
            status, response_headers, payload = parse_proxy_response(
                self._invoke(route.function, event)
            )
        except BadProxyResponse as exc:
            self._log(f"{method} {path} -> {route.function}: malformed response: {exc}")
            return gateway_answer(
                HTTPStatus.BAD_GATEWAY,
                INTERNAL_SERVER_ERROR,
                request_id,
                responses,
                "INTEGRATION_FAILURE",
            )
        except Exception as exc:  # the function crashed: API Gateway answers 502 itself
            self._log(f"{method} {path} -> {route.function} raised: {exc}")
            return gateway_answer(
                HTTPStatus.BAD_GATEWAY,
                INTERNAL_SERVER_ERROR,
                request_id,
                responses,
                "INTEGRATION_FAILURE",
            )
        elapsed_ms = (time.monotonic() - started) * 1000
        self._log(f"{method} {target} -> {route.function} {status} ({elapsed_ms:.0f} ms)")
        return status, response_headers, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "flex-local-api"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                status, headers, payload = server.handle(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    self.client_address[0],
                )
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, PROPFIND, ...) is answered as API Gateway
                # answers it, not with http.server's HTML 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # handle() logs one line per request

        return Handler


def _json_answer(status: int, body: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(body).encode()
