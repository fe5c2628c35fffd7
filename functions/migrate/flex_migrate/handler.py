"""The migrate Lambda's two kinds of invocation; the migrations themselves are the service's.

Direct invoke: ``{"action": "upgrade" | "current", "revision": "head"}`` (defaults: upgrade to
head). Also a CloudFormation custom resource: Create/Update migrate to head, Delete does
nothing (data outlives stacks), and CloudFormation always gets an answer.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from flex_migrate import service
from flex_shared.config import get_settings
from flex_shared.errors import ConfigError
from flex_shared.observability import route_layer_logs

logger = Logger(service="migrate")
route_layer_logs(logger)
try:
    get_settings()  # report a wrong configuration at start-up, naming the variable...
except ConfigError:
    # ...but still load: a CloudFormation request must get its FAILED answer, not an init error
    # (the error is raised again by the first get_settings() of each invocation).
    logger.exception("invalid configuration")

# A custom-resource request is answered FAILED this long before the Lambda would time out
# (a timed-out Lambda cannot answer, and CloudFormation would wait for its ServiceTimeout).
_ANSWER_MARGIN_SECONDS = 20.0
_ANSWER_TIMEOUT_SECONDS = 15.0


def _answer_cloudformation(
    event: dict[str, Any], status: str, reason: str, data: dict[str, Any]
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "flex-database-migrations",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {key: str(value) for key, value in data.items()},
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's presigned https URL)
        event["ResponseURL"],
        data=body,
        method="PUT",
        # The presigned URL was signed without a content type: send an empty one.
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=_ANSWER_TIMEOUT_SECONDS) as response:  # noqa: S310
        response.read()


class _OneAnswer:
    """Answers a custom-resource request once: whichever comes first of the outcome and the
    deadline guard's FAILED."""

    def __init__(self, event: dict[str, Any]) -> None:
        self._event = event
        self._lock = threading.Lock()
        self.sent: tuple[str, str] | None = None

    def send(self, status: str, reason: str, data: dict[str, Any]) -> bool:
        with self._lock:
            if self.sent is not None:
                return False
            _answer_cloudformation(self._event, status, reason, data)
            self.sent = (status, reason)
            return True


def _handle_custom_resource(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = _OneAnswer(event)

    def answer_before_timeout() -> None:
        try:
            if answer.send("FAILED", "migration did not finish before the Lambda timeout", {}):
                logger.error("answered FAILED: the Lambda timeout is near")
        except Exception:  # a timer thread: nothing above it would log the failure
            logger.exception("could not answer CloudFormation")

    remaining = context.get_remaining_time_in_millis() / 1000 - _ANSWER_MARGIN_SECONDS
    guard = threading.Timer(max(remaining, 0.0), answer_before_timeout)
    guard.daemon = True
    guard.start()

    status, reason, data = "SUCCESS", "ok", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = service.run("upgrade", "head")
            reason = f"migrated to {data['current']}"
        else:
            reason = "delete: the database and its data are kept"
    except Exception as exc:  # CloudFormation must hear back, whatever happened
        logger.exception("migration failed")
        status, reason, data = "FAILED", f"migration failed: {type(exc).__name__}: {exc}", {}
    finally:
        guard.cancel()
    if not answer.send(status, reason, data):
        logger.warning("outcome after the answer was sent", extra={"status": status})
    sent_status, sent_reason = answer.sent or (status, reason)
    return {"Status": sent_status, "Reason": sent_reason}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return _handle_custom_resource(event, context)
    # A bad request or a failed migration raises: the caller (a deploy step) must see it fail.
    return service.run(str(event.get("action", "upgrade")), str(event.get("revision", "head")))
