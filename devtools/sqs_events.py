"""The event an SQS event source mapping hands a function, built from messages as SQS's
``ReceiveMessage`` returns them (tests, the local runner, the bulk benchmark)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"


def queue_arn(name: str, region: str = LOCAL_REGION, account: str = LOCAL_ACCOUNT_ID) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def received_message(
    body: str, *, message_id: str | None = None, receive_count: int = 1
) -> dict[str, Any]:
    """One message as ``ReceiveMessage`` (``AttributeNames=["All"]``) returns it."""
    now_ms = str(int(time.time() * 1000))
    return {
        "MessageId": message_id or str(uuid.uuid4()),
        "ReceiptHandle": uuid.uuid4().hex,
        "MD5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324 -- SQS's own
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
    }


def lambda_event(messages: Iterable[Mapping[str, Any]], source_arn: str) -> dict[str, Any]:
    """The ``{"Records": [...]}`` event Lambda builds from a batch of received messages."""
    region = source_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": dict(message.get("MessageAttributes") or {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }
