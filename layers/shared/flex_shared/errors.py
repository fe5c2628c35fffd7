"""The layer's errors. Domain errors (``FlexError`` and its kinds): domain logic raises them
without knowing HTTP, and the API layer (:mod:`flex_shared.api`) maps each to a status code and
a JSON body. ``ConfigError``: a deployment's mistake, raised at start-up."""

from __future__ import annotations

from typing import Any


class FlexError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(FlexError):
    """The caller's input is wrong (maps to 4xx); nothing was changed."""

    code = "invalid_input"


class NotFound(FlexError):
    """A resource the caller named does not exist."""

    code = "not_found"

    def __init__(
        self,
        resource: str,
        identifier: object,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message or f"{resource} {identifier} not found", details=details)
        self.resource = resource
        self.identifier = identifier


class Conflict(FlexError):
    """The request is well-formed but conflicts with the resource's current state."""

    code = "conflict"


class DependencyUnavailable(FlexError):
    """A dependency failed or timed out; retrying later may succeed. Each kind names its
    dependency in ``code`` (the API's 503): see ``EmbeddingUnavailable``."""

    code = "service_unavailable"

    def __init__(self, dependency: str, message: str | None = None) -> None:
        super().__init__(message or f"{dependency} is unavailable")
        self.dependency = dependency


class ConfigError(RuntimeError):
    """Missing, malformed or contradictory configuration. The message names the variable."""
