"""RDS Proxy connection modes: a fresh IAM token per new connection, and Secrets Manager."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from flex_shared import db
from flex_shared.config import load_settings
from flex_shared.errors import ConfigError

IAM_ENV = {
    "DB_HOST": "flex-proxy.proxy-abc123.us-east-1.rds.amazonaws.com",
    "DB_PORT": "5432",
    "DB_NAME": "flexdb",
    "DB_USER": "flex_app",
    "DB_IAM_AUTH": "true",
}


class ConnectAttempt(Exception):
    """Raised instead of opening a socket: the test only inspects the connect parameters."""


def capture_connects(engine: Engine) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = []

    @event.listens_for(engine, "do_connect")
    def _capture(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        attempts.append(dict(cparams))
        raise ConnectAttempt

    return attempts


def connect_once(engine: Engine) -> None:
    with pytest.raises(ConnectAttempt):
        engine.connect()


def test_iam_mode_sends_a_fresh_token_over_tls_for_every_new_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given IAM auth against an RDS Proxy endpoint
    engine = db.build_engine(load_settings(IAM_ENV))
    issued: list[str] = []
    real_token = db._iam_token

    def counting_token(host: str, port: int, user: str) -> str:
        issued.append(real_token(host, port, user))
        return issued[-1]

    monkeypatch.setattr(db, "_iam_token", counting_token)
    attempts = capture_connects(engine)

    # When two new connections are opened
    connect_once(engine)
    connect_once(engine)

    # Then each got its own freshly generated token, presigned for that proxy and user, over TLS
    assert len(issued) == 2
    for attempt in attempts:
        token = attempt["password"]
        assert token.startswith(f"{IAM_ENV['DB_HOST']}:5432/?")
        query = parse_qs(urlsplit("https://" + token).query)
        assert query["Action"] == ["connect"]
        assert query["DBUser"] == ["flex_app"]
        assert query["X-Amz-Expires"] == ["900"]
        assert isinstance(attempt["ssl_context"], ssl.SSLContext)
        assert attempt["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert attempt["user"] == "flex_app"
        assert attempt["database"] == "flexdb"
    engine.dispose()


@pytest.fixture
def secret_arn() -> Iterator[str]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(
            Name="flex/db",
            SecretString=json.dumps(
                {
                    "username": "flex_app",
                    "password": "first-password",
                    "host": "flex-db.cluster-xyz.us-east-1.rds.amazonaws.com",
                    "port": 5433,
                    "dbname": "flexdb",
                }
            ),
        )["ARN"]
        yield arn


def test_secret_mode_reads_credentials_and_picks_up_rotation(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given credentials in Secrets Manager
    engine = db.build_engine(load_settings({"DB_SECRET_ARN": secret_arn}))
    attempts = capture_connects(engine)
    connect_once(engine)

    # When the secret is rotated and its cached copy has gone stale
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {
                "username": "flex_app",
                "password": "rotated-password",
                "host": "flex-db.cluster-xyz.us-east-1.rds.amazonaws.com",
                "port": 5433,
                "dbname": "flexdb",
            }
        ),
    )
    monkeypatch.setattr(db, "_SECRET_TTL_SECONDS", -1.0)
    connect_once(engine)

    # Then the first connection used the secret's host, port, database and password, and the
    # next one the rotated password, both over TLS
    first, second = attempts
    assert first["host"] == "flex-db.cluster-xyz.us-east-1.rds.amazonaws.com"
    assert first["port"] == 5433
    assert first["database"] == "flexdb"
    assert first["user"] == "flex_app"
    assert first["password"] == "first-password"
    assert second["password"] == "rotated-password"
    assert isinstance(second["ssl_context"], ssl.SSLContext)
    engine.dispose()


def test_a_secret_without_a_password_is_a_configuration_error() -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="bad", SecretString='{"username": "u", "host": "h"}')["ARN"]
        with pytest.raises(ConfigError, match="DB_SECRET_ARN"):
            db.build_engine(load_settings({"DB_SECRET_ARN": arn}))


def test_pool_is_bounded() -> None:
    engine = db.build_engine(
        load_settings({**IAM_ENV, "DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "4"})
    )
    assert engine.pool.size() == 3  # type: ignore[attr-defined]
    assert engine.pool._max_overflow == 4  # type: ignore[attr-defined]
    engine.dispose()


def test_no_session_level_set_reaches_the_server(db_engine: Engine) -> None:
    # Given a statement recorder on the layer's engine (RDS Proxy pins sessions on SET)
    statements: list[str] = []

    @event.listens_for(db_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.strip().upper())

    try:
        db.reset_engine()  # a new engine sees the connect-time statements too
        engine = db.get_engine()
        event.listen(engine, "before_cursor_execute", _record)

        # When a transaction sets ef_search the only way this project does it, on the path
        # every Lambda takes (a Core connection, one transaction)
        def set_and_show(connection: Connection) -> str:
            db.set_local(connection, {"hnsw.ef_search": 123})
            return str(connection.execute(text("SHOW hnsw.ef_search")).scalar_one())

        inside = db.run_in_transaction(set_and_show)
        with engine.connect() as connection:
            after = connection.execute(text("SHOW hnsw.ef_search")).scalar_one()
    finally:
        event.remove(db_engine, "before_cursor_execute", _record)

    # Then the value held inside the transaction only, and no statement was a session SET
    assert inside == "123"
    assert after in ("40", "")  # the default ('' until pgvector's library is loaded)
    assert not [s for s in statements if s.startswith("SET ")]
