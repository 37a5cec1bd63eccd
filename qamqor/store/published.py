"""Tables the daily pipeline publishes into the operational store (qamqor.ops.publish).

Every published row carries its `run_date`; the single row of `publication` names the run that
readers see. A run's rows are written and the pointer moved in one transaction, so readers see
either yesterday's results or today's, never half of a run."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qamqor.store.models import Base, Money


class Run(Base):
    """One published daily run."""

    __tablename__ = "runs"

    run_date: Mapped[date] = mapped_column(Date, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    families: Mapped[int] = mapped_column(Integer, nullable=False)
    entitlements: Mapped[int] = mapped_column(Integer, nullable=False)
    findings: Mapped[int] = mapped_column(Integer, nullable=False)
    published_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class Publication(Base):
    """The one row naming the run readers see (`id` is always 1)."""

    __tablename__ = "publication"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_date: Mapped[date] = mapped_column(Date, nullable=False)


class FamilyCard(Base):
    """A family's card summary, level and score on one run; `card` is the JSON of every card
    indicator (what explanations and appeals start from)."""

    __tablename__ = "family_cards"
    __table_args__ = (Index("ix_family_cards_district", "run_date", "district", "level"),)

    run_date: Mapped[date] = mapped_column(Date, primary_key=True)
    family_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(16), nullable=False)
    district: Mapped[str] = mapped_column(String(16), nullable=False)
    urban: Mapped[bool] = mapped_column(Boolean, nullable=False)
    language: Mapped[str] = mapped_column(String(2), nullable=False)
    members: Mapped[int] = mapped_column(Integer, nullable=False)
    children: Mapped[int] = mapped_column(Integer, nullable=False)
    income_per_capita: Mapped[float] = mapped_column(Float, nullable=False)
    level: Mapped[str] = mapped_column(String(1), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    emergency_trigger: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    vulnerability: Mapped[float | None] = mapped_column(Float, nullable=True)
    hidden_income_flag: Mapped[bool] = mapped_column(Boolean, nullable=False)
    card: Mapped[str] = mapped_column(Text, nullable=False)


class FamilyEntitlement(Base):
    """One entitlement of one family (or member) on one run."""

    __tablename__ = "family_entitlements"
    __table_args__ = (Index("ix_family_entitlements_family", "run_date", "family_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_date: Mapped[date] = mapped_column(Date, nullable=False)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    region: Mapped[str] = mapped_column(String(16), nullable=False)
    measure: Mapped[str] = mapped_column(String(64), nullable=False)
    amount: Mapped[float] = mapped_column(Money, nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    reasons: Mapped[str] = mapped_column(Text, nullable=False)


class PublishedFinding(Base):
    """One audit finding on one run."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_family", "run_date", "family_id"),
        Index("ix_findings_type", "run_date", "type"),
    )

    run_date: Mapped[date] = mapped_column(Date, primary_key=True)
    finding_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # none: deceased
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    measure: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount_at_risk: Mapped[float] = mapped_column(Money, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False)
