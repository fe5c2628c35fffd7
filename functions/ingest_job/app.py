"""Lambda entry point of the ingest_job function (template.yaml: ``app.lambda_handler``).

The code is in the ``flex_ingest`` package beside this file.
"""

from flex_ingest.handler import lambda_handler

__all__ = ["lambda_handler"]
