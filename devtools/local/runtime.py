"""Run the template's Lambda handlers in this process, one invocation at a time, each with its
own environment (template < env-vars file < local overrides), the way ``sam local`` would.

Handlers are loaded by file path like the Lambda runtime (function directory and layer
directories on ``sys.path``), under a module name unique per function.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from devtools.functions import forget_modules_under, load_module

from .template import LOCAL_ACCOUNT_ID, LOCAL_REGION, Function, Template, TemplateError

# Variables removed for every local invocation: they would point the layer at AWS.
_REMOVED_VARIABLES = ("DB_HOST", "DB_SECRET_ARN", "AWS_PROFILE", "AWS_SESSION_TOKEN")


class EnvVarsError(ValueError):
    """The --env-vars file is unreadable or not in SAM's format."""


def read_env_vars_file(path: Path | None) -> dict[str, dict[str, str]]:
    """SAM's format: ``{"FunctionLogicalId": {"VAR": "value"}, "Parameters": {...}}``;
    ``Parameters`` applies to every function."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvVarsError(f"env-vars file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise EnvVarsError(f"env-vars file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise EnvVarsError(f'env-vars file {path} must be an object like {{"Parameters": {{}}}}')
    out: dict[str, dict[str, str]] = {}
    for section, variables in document.items():
        if not isinstance(variables, dict):
            raise EnvVarsError(f"env-vars file {path}: {section!r} must map names to values")
        out[str(section)] = {
            str(name): "" if value is None else str(value) for name, value in variables.items()
        }
    return out


def local_overrides(
    database_url: str, s3_endpoint: str | None, region: str = LOCAL_REGION
) -> dict[str, str]:
    """What every local invocation gets, whatever the template says."""
    overrides = {
        "DATABASE_URL": database_url,
        "DB_IAM_AUTH": "false",
        "EMBEDDING_PROVIDER": "local",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # a fake credential for moto
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_RUNTIME_API": "",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        # CloudWatch metrics (EMF JSON on stdout) mean nothing locally; logs stay.
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    if s3_endpoint:
        overrides["AWS_ENDPOINT_URL_S3"] = s3_endpoint
    return overrides


@dataclass
class LambdaContext:
    """What the Lambda runtime hands a handler as ``context``."""

    function: Function
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: float = field(default_factory=time.monotonic)
    identity: Any = None
    client_context: Any = None

    @property
    def function_name(self) -> str:
        return self.function.function_name

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return (
            f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:"
            f"{self.function.function_name}"
        )

    @property
    def memory_limit_in_mb(self) -> int:
        return self.function.memory_mb

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started_at
        return max(0, int((self.function.timeout_seconds - elapsed) * 1000))


class InvocationError(RuntimeError):
    """The handler raised (Lambda reports it as a function error)."""

    def __init__(self, function: str, payload: dict[str, Any]) -> None:
        super().__init__(f"{function} failed: {payload['errorType']}: {payload['errorMessage']}")
        self.function = function
        self.payload = payload


class FunctionRunner:
    """Loads and invokes the template's handlers; serialises invocations (the environment
    is process-wide, and a Lambda container serves one request at a time anyway)."""

    def __init__(
        self,
        template: Template,
        overrides: Mapping[str, str],
        env_vars: Mapping[str, Mapping[str, str]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.template = template
        self.overrides = dict(overrides)
        self.env_vars = dict(env_vars or {})
        self._lock = threading.RLock()
        self._modules: dict[str, ModuleType] = {}
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._active_database_url: str | None = None

    def environment(self, function: Function) -> dict[str, str]:
        """The function's environment: template, then env-vars file, then local overrides."""
        env = dict(function.environment)
        env.update(self.env_vars.get("Parameters", {}))
        env.update(self.env_vars.get(function.logical_id, {}))
        env.update(self.env_vars.get(function.function_name, {}))
        env.update(self.overrides)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
                "LAMBDA_TASK_ROOT": str(function.code_dir),
            }
        )
        return env

    @contextmanager
    def _function_environment(self, function: Function) -> Iterator[None]:
        saved = dict(os.environ)
        for name in _REMOVED_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(self.environment(function))
        for directory in (*function.layer_dirs, function.code_dir):
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))
        self._refresh_layer_state()
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
            # Settings read inside belong to the function's environment, not the restored one.
            self._forget_settings()

    @staticmethod
    def _forget_settings() -> None:
        try:
            from flex_shared import config
        except ImportError:
            return
        config.reset_settings()

    def _refresh_layer_state(self) -> None:
        """Settings are cached per container; functions differ in their environment."""
        try:
            from flex_shared import config, db
        except ImportError:  # the template has no such layer: nothing cached
            return
        config.reset_settings()
        database_url = os.environ.get("DATABASE_URL")
        if database_url != self._active_database_url:
            db.reset_engine()
            self._active_database_url = database_url

    def _module(self, function: Function) -> ModuleType:
        module = self._modules.get(function.logical_id)
        if module is not None:
            return module
        path = function.module_file
        if not path.is_file():
            raise TemplateError(
                f"{function.logical_id}: handler file {path} does not exist (Handler "
                f"{function.handler!r}, CodeUri {function.code_dir.name}) — not written yet?"
            )
        # A new runner means new Lambda containers: the function's modules (its package too,
        # which may cache clients of an earlier S3 endpoint) are imported afresh, in this
        # function's environment. Its own name: a test in the same process that loads the
        # handler itself gets its own modules (own logger, own caches) again.
        forget_modules_under(function.code_dir)
        module_name = f"local_runner_{function.code_dir.name}_{path.stem}"
        module = load_module(module_name, path)
        self._modules[function.logical_id] = module
        return module

    def load(self, name: str) -> ModuleType:
        """Import a function's handler module (its cold start) without invoking it."""
        function = self.template.function(name)
        with self._lock, self._function_environment(function):
            return self._module(function)

    def invoke(self, name: str, event: Any) -> Any:
        """Invoke the handler; raise ``InvocationError`` (with Lambda's error payload) if it
        raises."""
        function = self.template.function(name)
        with self._lock, self._function_environment(function):
            context = LambdaContext(function)
            try:
                handler = getattr(self._module(function), function.handler_name)
                result = handler(event, context)
            except Exception as exc:
                payload = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_exception(exc),
                }
                raise InvocationError(function.logical_id, payload) from exc
            elapsed = time.monotonic() - context.started_at
            if elapsed > function.timeout_seconds:
                self._log(
                    f"warning: {function.logical_id} took {elapsed:.1f} s, over its "
                    f"{function.timeout_seconds} s timeout: in AWS it would have been stopped"
                )
            return result
