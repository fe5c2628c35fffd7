"""Lambda entry point of the search function (template.yaml: ``app.lambda_handler``).

The code is in the ``flex_search`` package beside this file; ``app`` is its resolver (OpenAPI).
"""

from flex_search.handler import app, lambda_handler

__all__ = ["app", "lambda_handler"]
