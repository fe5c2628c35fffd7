"""The database engine: SQLAlchemy 2 + pg8000, one per container, created on first use, and
:func:`run_in_transaction`, through which every unit of work of the functions runs.

RDS Proxy multiplexes client connections only while they are not *pinned*; session-level
``SET``, server-side cursors and non-default isolation levels pin them. Nothing here issues a
session ``SET``: per-transaction settings go through :func:`set_local`.

A warm container keeps its connection between invocations, and the proxy or the database may
drop it meanwhile (a failover, a proxy restart, an administrator). Instead of a ``SELECT 1``
round trip before every use, a unit of work that finds its pooled connection dead before any
of its statements completed is run once more on a new connection (:func:`run_in_transaction`).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

from .config import Settings, get_settings
from .database_url import parse_database_url
from .errors import ConfigError

if TYPE_CHECKING:
    # sqlalchemy.orm costs ~0.1 s of cold start: only functions that use the ORM import it.
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

_SECRET_TTL_SECONDS = 300.0
_T = TypeVar("_T")

CONNECTION_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""The server ends or refuses the session (admin shutdown, crash shutdown, cannot connect
now): like class ``08`` (connection exception), the connection is gone."""

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


class _DeadConnectionCloseFilter(logging.Filter):
    """The pool logs an ERROR with a stack trace when closing a connection that the network or
    the server already dropped fails, which is what closing a dead connection does. The request
    it served is answered anyway (``run_in_transaction`` runs it again on a new connection, and
    says so in a WARNING), so at 3 a.m. this line would only page someone for nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(
            ("Exception terminating connection", "Exception closing connection")
        ):
            return True
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:  # pg8000 raises InterfaceError("network error") from the OSError
            if isinstance(error, OSError):
                return False
            error = error.__cause__
        return True


def _quiet_dead_connection_closes() -> None:
    pool_logger = logging.getLogger("sqlalchemy.pool.impl.QueuePool")
    if not any(isinstance(f, _DeadConnectionCloseFilter) for f in pool_logger.filters):
        pool_logger.addFilter(_DeadConnectionCloseFilter())


def build_engine(settings: Settings) -> Engine:
    """Create the engine for ``settings`` (one per container: use :func:`get_engine`)."""
    _quiet_dead_connection_closes()
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
        # (a dead connection is replaced by run_in_transaction, without a ping per use).
        pool_recycle=600,
        # Statement parameters carry personal data (interview transcripts, feedback); keep
        # them out of exception messages, which end up in the logs.
        hide_parameters=True,
    )

    _recognise_lost_connections(engine)
    _track_units_of_work(engine)
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


def _recognise_lost_connections(engine: Engine) -> None:
    """Make every sign of a lost connection a SQLAlchemy disconnect: the pool then discards the
    connection (and those opened before it) instead of lending it out again.

    pg8000 lets some socket errors through unwrapped (a reset from the proxy arrives as a bare
    ``ConnectionResetError``, a read timeout as ``TimeoutError``), and SQLAlchemy recognises
    only pg8000's own "network error" as a disconnect. A bare socket error becomes an
    ``OperationalError`` (callers see one kind of database failure, never a builtin
    ``OSError`` that could have come from anywhere); the server's "terminating connection"
    (57P01-57P03) and connection exceptions (class 08) count as disconnects too."""

    @event.listens_for(engine, "handle_error")
    def _classify(context: ExceptionContext) -> BaseException | None:
        error = context.original_exception
        if isinstance(error, OSError):
            context.is_disconnect = True
            return OperationalError(
                context.statement,
                context.parameters,
                error,
                hide_parameters=True,
                connection_invalidated=True,
            )
        code = sqlstate(error) or ""
        if code.startswith("08") or code in CONNECTION_LOST_SQLSTATES:
            context.is_disconnect = True
        return None


@dataclass
class _Attempt:
    """What one attempt at a unit of work did on ``engine``, as its events saw it."""

    engine: Engine
    checked_out: bool = False
    new_connection: bool = False
    statements_completed: int = 0
    commit_sent: bool = False

    def may_retry(self, error: DBAPIError) -> bool:
        """Whether ``error`` proves that nothing of the attempt reached the database and that
        a new connection may succeed where this one failed:

        - the connection came from the pool, where it may have died while idle (a new one
          failing means the database itself is in trouble: a retry would only wait again);
        - no statement completed (one did: the connection was alive, something else failed,
          and what the work did with the results would be done twice);
        - COMMIT was not sent (it may have been applied with only its answer lost: a second
          run could write twice; this also covers writes the engine cannot see, such as a
          COPY through the driver);
        - the driver reported a lost connection, not a timeout (a stalled database or proxy
          would stall the second attempt too, past the function's own timeout)."""
        return (
            self.checked_out
            and not self.new_connection
            and self.statements_completed == 0
            and not self.commit_sent
            and error.connection_invalidated
            and not _caused_by_timeout(error)
        )


_current_attempt: ContextVar[_Attempt | None] = ContextVar("flex_db_attempt", default=None)


def _caused_by_timeout(error: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TimeoutError):
            return True
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return False


def _track_units_of_work(engine: Engine) -> None:
    """Record, for the attempt :func:`run_in_transaction` is making on ``engine``, whether
    its connection is new, how many statements completed and whether COMMIT was sent."""

    def attempt_here() -> _Attempt | None:
        attempt = _current_attempt.get()
        return attempt if attempt is not None and attempt.engine is engine else None

    @event.listens_for(engine, "connect")
    def _new_connection(dbapi_connection: Any, record: Any) -> None:
        record.info["flex_new_connection"] = True

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        new = record.info.pop("flex_new_connection", False)
        if (attempt := attempt_here()) is not None:
            attempt.checked_out = True
            attempt.new_connection = new

    @event.listens_for(engine, "after_cursor_execute")
    def _statement_completed(*args: Any) -> None:
        if (attempt := attempt_here()) is not None:
            attempt.statements_completed += 1

    @event.listens_for(engine, "commit")
    def _commit_sent(connection: Connection) -> None:
        if (attempt := attempt_here()) is not None:
            attempt.commit_sent = True


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


def _connect(engine: Engine) -> Connection:
    """``engine.connect()``, with a bare socket error of pg8000's connect (a timeout waiting
    for a stalled proxy) raised as the ``OperationalError`` it is: SQLAlchemy wraps only the
    driver's own errors, and a bare ``TimeoutError`` could have come from anywhere."""
    try:
        return engine.connect()
    except OSError as error:
        raise OperationalError(None, None, error, connection_invalidated=True) from error


def run_in_transaction(work: Callable[[Connection], _T]) -> _T:
    """``work(connection)`` in one transaction (committed when it returns, rolled back when it
    raises), run a second time, on a new connection, only when the first attempt provably
    changed nothing: its pooled connection turned out to be dead before any statement of
    ``work`` completed and before COMMIT was sent (see ``_Attempt.may_retry``). Whatever
    ``work`` does outside the database before its first statement may happen twice."""
    engine = get_engine()
    for attempt_number in (1, 2):
        attempt = _Attempt(engine)
        token = _current_attempt.set(attempt)
        try:
            with _connect(engine) as connection, connection.begin():
                return work(connection)
        except DBAPIError as error:
            if attempt_number == 1 and attempt.may_retry(error):
                logger.warning(
                    "database connection was gone before the transaction's first statement;"
                    " running it again on a new connection",
                    extra={"error": type(error.orig).__name__},
                )
                continue
            raise
        finally:
            _current_attempt.reset(token)
    raise AssertionError("unreachable: the second attempt returns or raises")


def _server_error_fields(exc: BaseException) -> dict[str, Any]:
    """The fields of the server's ErrorResponse that pg8000 carries as its first argument
    (``C`` SQLSTATE, ``M`` message, ``n`` constraint name, ...), or ``{}``."""
    original = getattr(exc, "orig", exc)
    fields = original.args[0] if getattr(original, "args", None) else None
    return fields if isinstance(fields, dict) else {}


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error, e.g. ``23505``.

    pg8000 raises ``IntegrityError`` only for unique violations (23505); foreign-key (23503)
    and check (23514) violations arrive as ``ProgrammingError``, so match on the code.
    """
    code = _server_error_fields(exc).get("C")
    return str(code) if code else None


def constraint_name(exc: BaseException) -> str | None:
    """The constraint an integrity violation names (``uq_...``, ``..._fkey``), or None. The
    name, unlike the server's message (``Key (x)=(...)``), never holds the row's values."""
    name = _server_error_fields(exc).get("n")
    return str(name) if name else None


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
