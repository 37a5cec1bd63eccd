"""Tables of users, integrator keys, the hash-chained access log, and citizens' appeals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qamqor.store.models import Base

ROLES = ("citizen", "worker", "analyst", "auditor", "integrator")


class User(Base):
    """A person who signs in: `district` for a worker, `family_id` for a citizen."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('citizen', 'worker', 'analyst', 'auditor', 'integrator')",
            name="ck_users_role",
        ),
    )

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    district: Mapped[str | None] = mapped_column(String(16), nullable=True)
    centre_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    language: Mapped[str] = mapped_column(String(2), nullable=False, default="ru")


ACCESS_FIELDS = ("at", "actor", "role", "family_id", "person_id", "action", "purpose", "client")


class _Access:
    """What one access records (who, role, whose data, what, why, when, X-Road client)."""

    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(200), nullable=False)
    purpose: Mapped[str] = mapped_column(String(200), nullable=False)
    client: Mapped[str | None] = mapped_column(String(200), nullable=True)  # X-Road client


class AccessLogEntry(_Access, Base):
    """One read or change of a person's data. Append-only: `hash` = sha256(prev_hash + the
    entry's fields), so editing or deleting any entry breaks the chain (qamqor.ops.access_log)."""

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_family", "family_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AccessLogInbox(_Access, Base):
    """Entries just written by requests, not yet chained: an insert here needs no lock, so
    concurrent requests commit together; `qamqor.ops.access_log.seal` moves them, in id order,
    onto the chain within a second."""

    __tablename__ = "access_log_inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class AccessLogHead(Base):
    """The chain's last id and hash, updated in the same transaction as each append, so that
    deleting the newest entries is detected too."""

    __tablename__ = "access_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    last_id: Mapped[int] = mapped_column(Integer, nullable=False)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class Subscription(Base):
    """An integrator's subscription to changes of the social registry (DCI-style)."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("client", "event", name="uq_subscriptions_client_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(200), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    callback: Mapped[str] = mapped_column(String(500), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class Appeal(Base):
    """A citizen's appeal against one data item of their family card."""

    __tablename__ = "appeals"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'accepted', 'rejected')", name="ck_appeals_status"),
        Index("ix_appeals_family", "family_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    item: Mapped[str] = mapped_column(String(64), nullable=False)
    current_value: Mapped[str] = mapped_column(String(200), nullable=False)
    claimed_value: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Correction(Base):
    """A correction of a card item, recorded with who and why; applied on every later run."""

    __tablename__ = "corrections"
    __table_args__ = (Index("ix_corrections_family", "family_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family_id: Mapped[str] = mapped_column(String(32), nullable=False)
    item: Mapped[str] = mapped_column(String(64), nullable=False)
    old_value: Mapped[str] = mapped_column(String(200), nullable=False)
    new_value: Mapped[str] = mapped_column(String(200), nullable=False)
    by: Mapped[str] = mapped_column(String(64), nullable=False)
    why: Mapped[str] = mapped_column(Text, nullable=False)
    appeal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
