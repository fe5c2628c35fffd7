"""A warm container's connection dropped between invocations (failover, proxy restart, an
administrator's ``pg_terminate_backend``) costs the next request nothing but a new connection,
and no round trip is paid on other requests to find that out. Each decision of which failures
are run again is pinned here, on the real database."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from devtools.layer_env import layer_configured
from flex_shared import config, db
from flex_shared.config import load_settings
from tests.tcp_proxy import tcp_proxy


@pytest.fixture
def admin(database_url: str) -> Iterator[Engine]:
    """A connection of its own, as a database administrator's."""
    engine = db.build_engine(load_settings())
    try:
        yield engine
    finally:
        engine.dispose()


def terminate(admin: Engine, backend_pid: int) -> None:
    """``pg_terminate_backend``, waiting until the backend has exited (PostgreSQL 14+)."""
    with admin.begin() as connection:
        assert connection.execute(
            text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": backend_pid}
        ).scalar_one()


def backend_pid(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def questions(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM questions")).scalar_one())


class CountingWork:
    """A unit of work that writes one row and says which backend ran it; counts its runs."""

    def __init__(self, before: Callable[[Connection], object] | None = None) -> None:
        self.runs = 0
        self.before = before
        self.pid = 0

    def __call__(self, connection: Connection) -> int:
        self.runs += 1
        if self.before is not None:
            self.before(connection)
        connection.execute(
            text("INSERT INTO questions (question_type, question_text) VALUES ('t', 'q')")
        )
        self.pid = backend_pid(connection)
        return self.pid


def warm_pid() -> int:
    """A warm container: its pooled connection has served a request."""
    return db.run_in_transaction(backend_pid)


def test_a_connection_terminated_between_invocations_is_replaced_and_the_work_done_once(
    db_engine: Engine, admin: Engine
) -> None:
    # Given a warm container whose idle connection an administrator terminated
    idle = warm_pid()
    terminate(admin, idle)

    # When the next unit of work runs
    work = CountingWork()
    answered_by = db.run_in_transaction(work)

    # Then it ran again on a new connection, and its write is there exactly once
    assert answered_by != idle
    assert work.runs == 2  # its first statement found the connection dead
    assert questions(db_engine) == 1


def test_no_request_pays_a_round_trip_to_check_its_connection(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm container
    warm_pid()
    sent = record_round_trips(monkeypatch)

    # When a request runs one statement
    db.run_in_transaction(lambda connection: connection.execute(text("SELECT 2")).scalar_one())

    # Then only BEGIN, the statement and COMMIT reach the server (no SELECT 1 ping)
    assert sent == ["BEGIN", "SELECT", "COMMIT"]


def test_a_proxy_that_resets_its_clients_costs_no_request(
    database_url: str, db_engine: Engine
) -> None:
    # Given functions reaching the database over TCP through a proxy
    with tcp_proxy(database_url) as proxy, layer_configured(proxy.url(database_url)):
        warm_pid()

        # When the proxy restarts and resets every client connection
        assert proxy.reset_all() == 1

        # Then the next units of work are served, each once, on new connections
        work = CountingWork()
        db.run_in_transaction(work)
        db.run_in_transaction(work)
        assert work.runs == 3  # the first met the reset before its first statement
    assert questions(db_engine) == 2


def test_after_a_statement_completed_a_lost_connection_is_not_run_again(
    db_engine: Engine, admin: Engine
) -> None:
    # Given a unit of work whose connection dies after its first statement completed
    warm_pid()
    work = CountingWork(before=lambda connection: terminate(admin, backend_pid(connection)))

    # When it runs, the failure reaches the caller (a 503 for the API) and nothing is written
    with pytest.raises(DBAPIError) as failure:
        db.run_in_transaction(work)
    assert failure.value.connection_invalidated
    assert work.runs == 1
    assert questions(db_engine) == 0


def test_a_connection_lost_once_commit_was_sent_is_not_run_again(
    db_engine: Engine, admin: Engine
) -> None:
    # Given a unit of work whose only write goes through the driver itself, where the engine
    # sees no statement (as ingestion's COPY does), and a connection that dies as COMMIT is
    # sent: had COMMIT been applied and only its answer lost, a second run would write twice
    warm_pid()
    runs: list[int] = []

    def copy_through_the_driver(connection: Connection) -> None:
        runs.append(1)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SELECT pg_backend_pid()")
        runs[-1] = cursor.fetchone()[0]
        cursor.execute("INSERT INTO questions (question_type, question_text) VALUES ('t', 'q')")

    engine = db.get_engine()

    def die_at_commit(connection: Connection) -> None:
        terminate(admin, runs[-1])

    event.listen(engine, "commit", die_at_commit)
    try:
        with pytest.raises(DBAPIError):
            db.run_in_transaction(copy_through_the_driver)
    finally:
        event.remove(engine, "commit", die_at_commit)

    # Then it ran once; terminated before COMMIT reached the server, nothing was written
    assert len(runs) == 1
    assert questions(db_engine) == 0


def test_a_new_connection_that_fails_is_not_run_again(db_engine: Engine, admin: Engine) -> None:
    # Given a database that loses each connection as soon as it is made (the database itself
    # is in trouble: another attempt would only wait again)
    db.reset_engine()
    engine = db.get_engine()

    def lost_at_once(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        terminate(admin, cursor.fetchone()[0])

    event.listen(engine, "connect", lost_at_once)
    work = CountingWork()
    try:
        with pytest.raises(DBAPIError):
            db.run_in_transaction(work)
    finally:
        event.remove(engine, "connect", lost_at_once)
    assert work.runs == 1
    assert questions(db_engine) == 0


def test_a_statement_the_database_refuses_is_not_run_again(db_engine: Engine) -> None:
    # Given a warm container and a unit of work whose first statement the database refuses
    warm_pid()
    work = CountingWork(before=lambda connection: connection.execute(text("SELECT 1 / 0")))

    # When it runs, the refusal reaches the caller once: the connection is fine
    with pytest.raises(DBAPIError) as failure:
        db.run_in_transaction(work)
    assert not failure.value.connection_invalidated
    assert work.runs == 1
    assert questions(db_engine) == 0


def test_a_timeout_is_not_run_again(
    db_engine: Engine, admin: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm container with a 1 s socket timeout and a table locked by someone else
    monkeypatch.setenv("DB_SOCKET_TIMEOUT", "1")
    config.reset_settings()
    db.reset_engine()
    warm_pid()
    work = CountingWork()
    try:
        with admin.connect() as locker:
            locker.execute(text("LOCK TABLE questions IN ACCESS EXCLUSIVE MODE"))
            # When the work's first statement waits past the timeout
            with pytest.raises(OperationalError) as failure:
                db.run_in_transaction(work)
            locker.rollback()
    finally:
        monkeypatch.delenv("DB_SOCKET_TIMEOUT")
        config.reset_settings()
        db.reset_engine()

    # Then it fails once (a stalled database would stall a second attempt too)
    assert isinstance(failure.value.orig, TimeoutError) or "timeout" in str(failure.value)
    assert work.runs == 1
    assert questions(db_engine) == 0


def record_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement pg8000 sends to the server, in order."""
    import pg8000.core

    sent: list[str] = []
    for name in ("execute_simple", "execute_unnamed"):
        original = getattr(pg8000.core.CoreConnection, name)

        def counting(
            self: Any, statement: str, *args: Any, _original: Any = original, **kwargs: Any
        ) -> Any:
            sent.append(statement.strip().split()[0].upper())
            return _original(self, statement, *args, **kwargs)

        monkeypatch.setattr(pg8000.core.CoreConnection, name, counting)
    return sent


def test_replacing_a_dropped_connection_logs_a_warning_and_no_error(
    db_engine: Engine, admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warm container whose idle connection was terminated
    terminate(admin, warm_pid())

    # When the next unit of work replaces it
    with caplog.at_level(logging.DEBUG):
        db.run_in_transaction(backend_pid)

    # Then the pool's failed close of the dead connection (an ERROR with a stack trace, for a
    # request that succeeded) is not logged: nothing to page anyone about
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "new connection" in r.msg]
