"""The database engine: SQLAlchemy 2 + pg8000, one per container, created on first use.

RDS Proxy multiplexes client connections only while they are not *pinned*; session-level
``SET``, server-side cursors and non-default isolation levels pin them. Nothing here issues a
session ``SET``: per-transaction settings go through :func:`set_local`.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DisconnectionError

from .config import Settings, get_settings
from .database_url import parse_database_url
from .errors import ConfigError

if TYPE_CHECKING:
    # sqlalchemy.orm costs ~0.1 s of cold start: only functions that use the ORM import it.
    from sqlalchemy.orm import Session

_SECRET_TTL_SECONDS = 300.0
PING_AFTER_IDLE_SECONDS = 10.0
"""A pooled connection idle longer than this is pinged before use (the proxy or the network
may have dropped it while the container slept); one used back to back is not, which saves a
round trip on every transaction of a busy container."""

_engine: Engine | None = None
_engine_lock = threading.Lock()


class _SecretCredentials:
    """Secrets Manager credentials, re-read when stale so a rotated password is picked up."""

    def __init__(self, secret_arn: str) -> None:
        self._arn = secret_arn
        # None, not 0.0: time.monotonic() counts from boot, and on a host up for less than the
        # TTL (a new Lambda microVM) 0.0 would look fresh and the secret would never be read.
        self._fetched_at: float | None = None
        self._value: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        if self._fetched_at is None or time.monotonic() - self._fetched_at > _SECRET_TTL_SECONDS:
            import boto3  # the Lambda runtime provides boto3; only this mode needs it

            client = boto3.client("secretsmanager")
            response = client.get_secret_value(SecretId=self._arn)
            try:
                value = json.loads(response["SecretString"])
                for key in ("username", "password", "host"):
                    if not value.get(key):
                        raise KeyError(key)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"DB_SECRET_ARN secret must be JSON with username, password, host ({exc})"
                ) from None
            self._value = value
            self._fetched_at = time.monotonic()
        return self._value


@lru_cache(maxsize=1)
def _rds_client() -> Any:
    # One client per container (creating one costs ~0.15 s); the token itself is presigned
    # locally from the current credentials, so a cached client still signs fresh tokens.
    import boto3

    return boto3.client("rds")


def _iam_token(host: str, port: int, user: str) -> str:
    token = _rds_client().generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
    return str(token)


def build_engine(settings: Settings) -> Engine:
    """Create the engine for ``settings`` (one per container: use :func:`get_engine`)."""
    connect_args: dict[str, Any] = {}
    secret: _SecretCredentials | None = None
    if settings.database_url:
        url, connect_args = parse_database_url(settings.database_url)
    elif settings.db_secret_arn:
        secret = _SecretCredentials(settings.db_secret_arn)
        creds = secret.get()
        url = URL.create(
            "postgresql+pg8000",
            username=str(creds["username"]),
            host=str(creds["host"]),
            port=int(creds.get("port") or settings.db_port),
            database=str(creds.get("dbname") or settings.db_name or "postgres"),
        )
        connect_args["ssl_context"] = ssl.create_default_context()
    else:
        url = URL.create(
            "postgresql+pg8000",
            username=settings.db_user,
            host=settings.db_host,
            port=settings.db_port,
            database=settings.db_name,
        )
    if settings.db_socket_timeout:
        # pg8000 applies it to connecting and to every read: an unreachable or stalled proxy
        # fails fast (503) instead of running into the Lambda's own timeout (a bare 502).
        connect_args.setdefault("timeout", settings.db_socket_timeout)
    if settings.db_iam_auth:
        connect_args.setdefault("ssl_context", ssl.create_default_context())

    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A container may sleep for many minutes; the proxy drops idle clients meanwhile
        # (pinged after idling, see _ping_after_idle).
        pool_recycle=600,
        # Statement parameters carry personal data (interview transcripts, feedback); keep
        # them out of exception messages, which end up in the logs.
        hide_parameters=True,
    )

    _ping_after_idle(engine)
    if settings.db_iam_auth:
        host, port, user = url.host or "", url.port or 5432, url.username or ""

        @event.listens_for(engine, "do_connect")
        def _use_fresh_token(
            dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
        ) -> None:
            # Tokens live 15 minutes; each new connection gets its own.
            cparams["password"] = _iam_token(host, port, user)

    elif secret is not None:
        secret_source = secret

        @event.listens_for(engine, "do_connect")
        def _use_secret_password(
            dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]
        ) -> None:
            cparams["password"] = str(secret_source.get()["password"])

    return engine


def _ping_after_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection idle over ``PING_AFTER_IDLE_SECONDS``
    (``pool_pre_ping`` costs a ``SELECT 1`` round trip on every checkout). A failed ping makes
    the pool replace the connection (SQLAlchemy's documented DisconnectionError protocol)."""

    @event.listens_for(engine, "checkin")
    def _remember_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["flex_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("flex_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # a fresh connection, or one in use moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection is gone ({type(exc).__name__})") from exc


def get_engine() -> Engine:
    """The container's engine, created on first use from the validated settings."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = build_engine(get_settings())
    return _engine


def reset_engine() -> None:
    """Dispose of the container's engine (tests, or after changing the configuration)."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None


@contextmanager
def connection_transaction() -> Iterator[Connection]:
    """A Core connection inside one transaction: committed on success, rolled back on error.
    For code that only runs SQL text: it never imports ``sqlalchemy.orm`` (a tenth of a
    second of every cold start)."""
    with get_engine().begin() as connection:
        yield connection


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error, e.g. ``23505``.

    pg8000 raises ``IntegrityError`` only for unique violations (23505); foreign-key (23503)
    and check (23514) violations arrive as ``ProgrammingError``, so match on the code.
    """
    original = getattr(exc, "orig", exc)
    details = original.args[0] if getattr(original, "args", None) else None
    if isinstance(details, dict):
        code = details.get("C")
        return str(code) if code else None
    return None


def set_local(connection: Connection | Session, settings: Mapping[str, str | int]) -> None:
    """``SET LOCAL name = value`` for each setting, for the current transaction only (no RDS
    Proxy pinning beyond it), in one round trip: ``set_config(..., true)`` takes bind
    parameters where ``SET`` cannot."""
    calls = ", ".join(f"set_config(:name{i}, :value{i}, true)" for i in range(len(settings)))
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(settings.items()):
        params[f"name{i}"] = name
        params[f"value{i}"] = str(value)
    connection.execute(text(f"SELECT {calls}"), params)


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form ``[x,y,...]``, for a bound ``CAST(:v AS vector)`` or a COPY row.
    ``float.__repr__`` round-trips exactly, is shorter than a float32 round trip for the values
    Titan returns, and fails loudly on anything that is not a float."""
    return "[" + ",".join(map(float.__repr__, vector)) + "]"
