"""A DATABASE_URL that cannot be used is a start-up ConfigError naming the variable (SPEC.md,
"Configuration"), not a ValueError from the URL parser at the first request."""

from __future__ import annotations

import pytest

from flex_shared.config import load_settings
from flex_shared.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("postgresql://u:p@db.example.com:notaport/flexdb", "DATABASE_URL is not a valid URL"),
        ("postgresql://u:p@[::1/flexdb", "DATABASE_URL is not a valid URL"),
        ("postgresql://u:p@db.example.com/flexdb?connect_timeout=soon", "DATABASE_URL"),
        ("postgresql://u:p@db.example.com:99999/flexdb", "DATABASE_URL port"),
        ("postgresql://u:p@db.example.com/flexdb?sslrootcert=/ca.pem", "DATABASE_URL"),
    ],
    ids=["port-not-a-number", "broken-ipv6-host", "timeout-not-a-number", "port-range", "param"],
)
def test_unusable_database_url_fails_when_settings_are_read(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"DATABASE_URL": raw})


def test_good_database_urls_still_load() -> None:
    for raw in (
        "postgresql://admin:password@db.example.com:5432/flexdb",
        "postgresql+pg8000://admin@db.example.com/flexdb?sslmode=require&connect_timeout=5",
        "postgresql://postgres:@/flex?host=/run/postgresql",
    ):
        assert load_settings({"DATABASE_URL": raw}).database_url == raw
