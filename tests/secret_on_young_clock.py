"""Child process of ``test_failure_modes``: the layer's engine in Secrets Manager mode, created
and used on a host whose monotonic clock is young (run under ``unshare --time``).

Prints one JSON line: the monotonic clock when the engine was created, and who the database
says we are. Secrets Manager is moto, in this process; the database is the real test server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import boto3
from moto import mock_aws
from sqlalchemy import event, text

from flex_shared import config, db
from flex_shared.database_url import parse_database_url


def main(database_url: str) -> None:
    test_url, transport = parse_database_url(database_url)
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="flex/db",
            SecretString=json.dumps(
                {
                    "username": test_url.username,
                    "password": test_url.password or "unused-by-the-test-server",
                    "host": test_url.host or "localhost",
                    "port": test_url.port or 5432,
                    "dbname": test_url.database,
                }
            ),
        )["ARN"]
        os.environ.pop("DATABASE_URL", None)
        os.environ["DB_SECRET_ARN"] = arn
        config.reset_settings()
        clock_at_creation = time.monotonic()
        engine = db.get_engine()

        # The test server listens on a unix socket (or a TCP port) without a certificate the
        # engine would trust: keep everything the engine chose from the secret but the transport.
        @event.listens_for(engine, "do_connect")
        def _test_server_transport(
            dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
        ) -> None:
            cparams.pop("ssl_context", None)
            cparams.update(transport)

        user, database = db.run_in_transaction(
            lambda connection: connection.execute(
                text("SELECT current_user, current_database()")
            ).one()
        )
    print(
        json.dumps({"monotonic_at_creation": clock_at_creation, "user": user, "database": database})
    )


if __name__ == "__main__":
    main(sys.argv[1])
