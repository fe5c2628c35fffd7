"""Lambda entry point of the migrate function (template.yaml: ``app.lambda_handler``).

The code is in the ``flex_migrate`` package beside this file.
"""

from flex_migrate.handler import lambda_handler

__all__ = ["lambda_handler"]
