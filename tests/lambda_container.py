"""Child process of the tests: one function's handler in a process of its own, as a fresh
Lambda container runs it (its own loggers, its own metrics, nothing left by other tests).

``python -m tests.lambda_container <function> <event JSON>`` with the environment as the
function's configuration; stdout carries what the function prints (JSON logs, EMF metrics),
then one last line ``RESPONSE <json>`` with what the handler returned.
"""

from __future__ import annotations

import json
import sys

from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext

RESPONSE_PREFIX = "RESPONSE "


def main(function: str, event: str) -> None:
    handler = load_function(function).lambda_handler
    response = handler(json.loads(event), FakeLambdaContext(function_name=function))
    print(RESPONSE_PREFIX + json.dumps(response), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
