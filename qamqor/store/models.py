"""Tables of the operational store. Portable types only (String, Text, Integer, Numeric, Date,
DateTime): the same models run on SQLite and PostgreSQL. The schema itself is created by the
Alembic migrations in `qamqor/store/migrations/`, never by `create_all`."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OFFER_STATUSES = ("pending", "sent", "consented", "declined", "expired")
OPEN_STATUSES = ("pending", "sent")  # still waiting for the citizen's answer
OFFER_KINDS = ("entitlement", "advance_notice")
Money = Numeric(14, 2, asdecimal=False)


class Base(DeclarativeBase):
    pass


class Offer(Base):
    """One proactive offer to one family (or one member) for one measure.

    `offer_key` = family:person:measure:key_date is UNIQUE, so a re-run of the same day (or a
    concurrent run) cannot insert the same offer twice; `key_date` is the run date for a newly
    found entitlement and the date the person reaches pension age for an advance notice."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("offer_key", name="uq_offers_offer_key"),
        CheckConstraint(
            "status IN ('pending', 'sent', 'consented', 'declined', 'expired')",
            name="ck_offers_status",
        ),
        CheckConstraint("kind IN ('entitlement', 'advance_notice')", name="ck_offers_kind"),
        Index("ix_offers_status_created", "status", "created_on"),
        Index("ix_offers_family", "family_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_key: Mapped[str] = mapped_column(String(200), nullable=False)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    measure: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="entitlement")
    amount: Mapped[float] = mapped_column(Money, nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    language: Mapped[str] = mapped_column(String(2), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    key_date: Mapped[date] = mapped_column(Date, nullable=False)
    created_on: Mapped[date] = mapped_column(Date, nullable=False)  # the run date
    previous_run: Mapped[date] = mapped_column(Date, nullable=False)  # compared with
    status_on: Mapped[date] = mapped_column(Date, nullable=False)  # last status change
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)  # wall clock, UTC


class Assignment(Base):
    """A measure assigned after the citizen's consent: at most one per offer."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("offer_id", name="uq_assignments_offer_id"),
        Index("ix_assignments_family", "family_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("offers.id", name="fk_assignments_offer"), nullable=False
    )
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    measure: Mapped[str] = mapped_column(String(64), nullable=False)
    amount: Mapped[float] = mapped_column(Money, nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    assigned_on: Mapped[date] = mapped_column(Date, nullable=False)


class OfferDelivery(Base):
    """One delivery of one offer to the citizen's channel: at most one per offer, so a sender
    that crashes and restarts can never deliver the same offer twice (see qamqor.ops.sender)."""

    __tablename__ = "offer_deliveries"
    __table_args__ = (UniqueConstraint("offer_id", name="uq_offer_deliveries_offer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("offers.id", name="fk_offer_deliveries_offer"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # claimed | delivered
    claimed_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
