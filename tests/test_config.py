"""Configuration: one clear error naming the variable; URL forms the seed and libpq use."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest

from flex_shared.config import load_settings
from flex_shared.database_url import parse_database_url
from flex_shared.errors import ConfigError
from tests.conftest import REPO_ROOT

URL = {"DATABASE_URL": "postgresql://admin:password@db.example.com:5432/flexdb"}


def error_for(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_defaults_with_only_a_database_url() -> None:
    settings = load_settings(URL)
    assert settings.embedding_provider == "titan"
    assert settings.embedding_model_id == "amazon.titan-embed-text-v2:0"
    assert settings.embedding_dimensions == 1024
    assert settings.db_port == 5432
    assert settings.database_mode == "url"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "DATABASE_URL"),
        ({"DB_HOST": "proxy.example.com", "DB_USER": "app", "DB_IAM_AUTH": "true"}, "DB_NAME"),
        ({"DB_HOST": "proxy.example.com", "DB_NAME": "flex", "DB_IAM_AUTH": "true"}, "DB_USER"),
        ({"DB_HOST": "h", "DB_NAME": "flex", "DB_USER": "app"}, "DB_IAM_AUTH"),
        ({**URL, "DB_PORT": "five"}, "DB_PORT"),
        ({**URL, "DB_PORT": "70000"}, "DB_PORT"),
        ({**URL, "DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
        ({**URL, "DB_IAM_AUTH": "maybe"}, "DB_IAM_AUTH"),
        ({**URL, "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"}, "DB_SECRET_ARN"),
        ({**URL, "EMBEDDING_PROVIDER": "openai"}, "EMBEDDING_PROVIDER"),
        ({**URL, "EMBEDDING_DIMENSIONS": "512"}, "EMBEDDING_DIMENSIONS"),
        ({**URL, "HNSW_EF_SEARCH": "0"}, "HNSW_EF_SEARCH"),
        ({**URL, "DB_SOCKET_TIMEOUT": "soon"}, "DB_SOCKET_TIMEOUT"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], named: str) -> None:
    assert named in error_for(env)


def test_iam_and_secret_together_are_contradictory() -> None:
    message = error_for(
        {
            "DB_HOST": "h",
            "DB_NAME": "flex",
            "DB_USER": "app",
            "DB_IAM_AUTH": "true",
            "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x",
        }
    )
    assert "DB_IAM_AUTH" in message
    assert "DB_SECRET_ARN" in message


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://admin:password@db.example.com:5432/flexdb",
        "postgres://admin:password@db.example.com:5432/flexdb",
        "postgresql+pg8000://admin:password@db.example.com:5432/flexdb",
        "postgresql+psycopg2://admin:password@db.example.com:5432/flexdb",
    ],
)
def test_seed_style_urls_use_pg8000(raw: str) -> None:
    url, connect_args = parse_database_url(raw)
    assert url.drivername == "postgresql+pg8000"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "admin",
        "password",
        "db.example.com",
        5432,
        "flexdb",
    )
    assert connect_args == {}


def test_libpq_socket_directory_becomes_a_unix_socket() -> None:
    url, connect_args = parse_database_url("postgresql://postgres:@/flex?host=/run/postgresql")
    assert url.host is None
    assert url.database == "flex"
    assert connect_args == {"unix_sock": "/run/postgresql/.s.PGSQL.5432"}


def test_sslmode_require_encrypts() -> None:
    _, connect_args = parse_database_url("postgresql://u:p@h/db?sslmode=require")
    assert isinstance(connect_args["ssl_context"], ssl.SSLContext)
    _, connect_args = parse_database_url("postgresql://u:p@h/db?sslmode=disable")
    assert "ssl_context" not in connect_args


def test_unknown_url_parameters_are_named() -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL.*options"):
        parse_database_url("postgresql://u:p@h/db?options=-csearch_path%3Dx")


@pytest.mark.parametrize("function", ["ingest_job", "search", "interview_results"])
def test_a_function_with_bad_configuration_fails_at_start_up_naming_the_variable(
    function: str,
) -> None:
    # Given a container whose DB_PORT is wrong, when the handler module is imported (init),
    # then it fails with ConfigError naming DB_PORT, before any driver is involved.
    # (Not the migrate function: it loads anyway, so that a CloudFormation request still gets
    # its FAILED answer naming the variable; tests/test_migrate.py covers that.)
    script = (
        "import importlib.util, sys\n"
        f"sys.path[:0] = ['layers/shared', 'functions/{function}']\n"
        f"spec = importlib.util.spec_from_file_location('m', 'functions/{function}/app.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "try:\n"
        "    spec.loader.exec_module(module)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__ + ': ' + str(exc))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DB_HOST": "proxy.example.com",
        "DB_NAME": "flex",
        "DB_USER": "app",
        "DB_IAM_AUTH": "true",
        "DB_PORT": "abc",
        "AWS_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.strip() == "ConfigError: DB_PORT must be an integer, got 'abc'"
