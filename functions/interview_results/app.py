"""Lambda entry point of the interview_results function (template.yaml: ``app.lambda_handler``).

The code is in the ``flex_interviews`` package beside this file; ``app`` is its resolver
(OpenAPI).
"""

from flex_interviews.handler import app, lambda_handler

__all__ = ["app", "lambda_handler"]
