"""Indexes for a district's case queue and overdue actions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_district_status", "cases", ["district", "status"])
    op.create_index("ix_plan_actions_open", "plan_actions", ["case_id", "done_on", "due_on"])


def downgrade() -> None:
    op.drop_index("ix_plan_actions_open", "plan_actions")
    op.drop_index("ix_cases_district_status", "cases")
