"""Require pgvector 0.8 or newer (iterative index scans) and PostgreSQL 15 or newer.

A database migrated to 0001 on an older pgvector has its extension updated in place when the
server offers 0.8; otherwise the upgrade stops here, before changing anything, naming the
installed and the required version and the fix (``migrations/server_requirements.py``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from migrations.server_requirements import require_supported_server

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    require_supported_server(op.get_bind())


def downgrade() -> None:
    # The extension is never downgraded: other objects may use it, and 0001 works on 0.8 too.
    pass
