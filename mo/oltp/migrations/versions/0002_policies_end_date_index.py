"""index policies.end_date: renewal reminders and expiries select policies by their end date every day

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_policies_end_date", "policies", ["end_date"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_policies_end_date", table_name="policies")
