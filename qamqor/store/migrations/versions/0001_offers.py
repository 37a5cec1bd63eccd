"""offers and assignments (issue 4 item 5)

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2, asdecimal=False)


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("offer_key", sa.String(200), nullable=False),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=True),
        sa.Column("region", sa.String(16), nullable=True),
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key_date", sa.Date, nullable=False),
        sa.Column("created_on", sa.Date, nullable=False),
        sa.Column("previous_run", sa.Date, nullable=False),
        sa.Column("status_on", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("offer_key", name="uq_offers_offer_key"),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'consented', 'declined', 'expired')",
            name="ck_offers_status",
        ),
        sa.CheckConstraint("kind IN ('entitlement', 'advance_notice')", name="ck_offers_kind"),
    )
    op.create_index("ix_offers_status_created", "offers", ["status", "created_on"])
    op.create_index("ix_offers_family", "offers", ["family_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "offer_id",
            sa.Integer,
            sa.ForeignKey("offers.id", name="fk_assignments_offer"),
            nullable=False,
        ),
        sa.Column("family_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=True),
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("assigned_on", sa.Date, nullable=False),
        sa.UniqueConstraint("offer_id", name="uq_assignments_offer_id"),
    )
    op.create_index("ix_assignments_family", "assignments", ["family_id"])


def downgrade() -> None:
    op.drop_index("ix_assignments_family", table_name="assignments")
    op.drop_table("assignments")
    op.drop_index("ix_offers_family", table_name="offers")
    op.drop_index("ix_offers_status_created", table_name="offers")
    op.drop_table("offers")
