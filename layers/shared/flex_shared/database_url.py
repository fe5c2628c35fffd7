"""``DATABASE_URL`` -> the pg8000 URL and connect arguments the engine is built from. Read by
the configuration (to fail at start-up on a bad URL) and by the engine: one home both import."""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

_SSL_OFF = {"disable", "allow", "prefer"}


def parse_database_url(raw: str) -> tuple[URL, dict[str, Any]]:
    """Turn a seed-style or libpq-style URL into a pg8000 URL plus its connect arguments.

    Accepts ``postgresql://``, ``postgres://`` and ``postgresql+<driver>://``; a ``host``
    query parameter naming a directory (``?host=/run/postgresql``) becomes pg8000's
    ``unix_sock``; ``sslmode`` becomes an SSL context.
    """
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a valid URL") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, got {url.drivername!r}")
    url = url.set(drivername="postgresql+pg8000")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}

    host_param = query.pop("host", None)
    if isinstance(host_param, tuple):
        host_param = host_param[0]
    if host_param:
        if host_param.startswith("/"):
            port = url.port or 5432
            connect_args["unix_sock"] = f"{host_param.rstrip('/')}/.s.PGSQL.{port}"
            url = url.set(host=None)
        else:
            url = url.set(host=host_param)

    sslmode = query.pop("sslmode", None)
    if sslmode and sslmode not in _SSL_OFF:
        context = ssl.create_default_context()
        if sslmode == "require":  # libpq semantics: encrypt, do not verify
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connect_args["ssl_context"] = context

    timeout = query.pop("connect_timeout", None)
    if timeout:
        connect_args["timeout"] = int(str(timeout))
    app_name = query.pop("application_name", None)
    if app_name:
        connect_args["application_name"] = str(app_name)
    if query:
        names = ", ".join(sorted(query))
        raise ConfigError(f"DATABASE_URL has unsupported query parameters: {names}")
    return url.set(query={}), connect_args
