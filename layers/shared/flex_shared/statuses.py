"""Status enums shared by the models and the API schemas.

Kept apart from :mod:`flex_shared.models` so code that only runs SQL (and its schemas) can use
them without importing ``sqlalchemy.orm``, a tenth of a second of every cold start.
"""

from __future__ import annotations

import enum


class InterviewStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
