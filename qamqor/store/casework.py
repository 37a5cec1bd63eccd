"""Tables of case work (SPEC §11): Family Support Centres, their mobile groups and workers, cases
with support plans, social contracts, notes and status history, and the register of children
left without parental care."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qamqor.store.models import Base

CASE_STATUSES = ("open", "closure_proposed", "closed")
SERVICES = ("education", "health", "social_protection", "police", "probation", "employment")


class Centre(Base):
    """A Family Support Centre serving one or more districts of a region."""

    __tablename__ = "centres"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    region: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class CentreDistrict(Base):
    """Which centre serves which district (every district has exactly one)."""

    __tablename__ = "centre_districts"

    district: Mapped[str] = mapped_column(String(16), primary_key=True)
    centre_id: Mapped[str] = mapped_column(
        String(16), ForeignKey("centres.id", name="fk_centre_districts_centre"), nullable=False
    )


class MobileGroup(Base):
    """A mobile group of a centre (home visits to remote and rural families)."""

    __tablename__ = "mobile_groups"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    centre_id: Mapped[str] = mapped_column(
        String(16), ForeignKey("centres.id", name="fk_mobile_groups_centre"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class Case(Base):
    """One case of one family; at most one case of a family is not closed."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closure_proposed', 'closed')", name="ck_cases_status"),
        Index("ix_cases_centre_status", "centre_id", "status"),
        Index("ix_cases_district_status", "district", "status"),
        Index("ix_cases_family", "family_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    district: Mapped[str] = mapped_column(String(16), nullable=False)
    centre_id: Mapped[str] = mapped_column(
        String(16), ForeignKey("centres.id", name="fk_cases_centre"), nullable=False
    )
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    level: Mapped[str] = mapped_column(String(1), nullable=False)  # level when last evaluated
    urgency: Mapped[int] = mapped_column(Integer, nullable=False)  # 3 trigger, 2 E, 1 D
    recovered_runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    opened_on: Mapped[date] = mapped_column(Date, nullable=False)
    last_run: Mapped[date] = mapped_column(Date, nullable=False)
    closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class CaseEvent(Base):
    """Status history of a case: who changed what, when and why."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cases.id", name="fk_case_events_case"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    by: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)


class PlanAction(Base):
    """One action of a case's support plan, owned by a service."""

    __tablename__ = "plan_actions"
    __table_args__ = (
        Index("ix_plan_actions_case", "case_id"),
        Index("ix_plan_actions_open", "case_id", "done_on", "due_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cases.id", name="fk_plan_actions_case"), nullable=False
    )
    service: Mapped[str] = mapped_column(String(24), nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    owner: Mapped[str] = mapped_column(String(120), nullable=False)
    due_on: Mapped[date] = mapped_column(Date, nullable=False)
    done_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class SocialContract(Base):
    """A social contract of an able-bodied member of an ASP family (SPEC §9)."""

    __tablename__ = "social_contracts"
    __table_args__ = (Index("ix_social_contracts_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cases.id", name="fk_social_contracts_case"), nullable=False
    )
    person_id: Mapped[str] = mapped_column(String(32), nullable=False)
    obligations: Mapped[str] = mapped_column(Text, nullable=False)
    employment_measure: Mapped[str] = mapped_column(String(120), nullable=False)
    signed_on: Mapped[date] = mapped_column(Date, nullable=False)
    ends_on: Mapped[date] = mapped_column(Date, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(120), nullable=True)


class CaseNote(Base):
    __tablename__ = "case_notes"
    __table_args__ = (Index("ix_case_notes_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cases.id", name="fk_case_notes_case"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    by: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)


class ChildInCare(Base):
    """A child left without parental care, with an individual protection plan (SPEC §11)."""

    __tablename__ = "children_register"
    __table_args__ = (UniqueConstraint("person_id", name="uq_children_register_person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), nullable=False)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    district: Mapped[str] = mapped_column(String(16), nullable=False)
    case_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("cases.id", name="fk_children_register_case"), nullable=True
    )
    registered_on: Mapped[date] = mapped_column(Date, nullable=False)
    protection_plan: Mapped[str] = mapped_column(Text, nullable=False)
    next_review_on: Mapped[date] = mapped_column(Date, nullable=False)
