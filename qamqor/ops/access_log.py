"""The access log: every read or change of a person's data, append-only and hash-chained.

Each entry's `hash` is sha256 over the previous entry's hash and the entry's own fields, and the
`access_log_head` row is moved in the same transaction, so `verify` detects an edited entry, a
deleted one (anywhere, the newest included) and an inserted one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from qamqor.store.access import AccessLogEntry, AccessLogHead

GENESIS = "0" * 64


def entry_hash(prev_hash: str, e: AccessLogEntry) -> str:
    fields = (
        str(e.id),
        e.at.isoformat(timespec="microseconds"),
        e.actor,
        e.role,
        e.family_id or "",
        e.person_id or "",
        e.action,
        e.purpose,
        e.client or "",
    )
    return hashlib.sha256((prev_hash + "\x1f" + "\x1f".join(fields)).encode()).hexdigest()


def append(
    sessions: sessionmaker[Session],
    *,
    actor: str,
    role: str,
    action: str,
    purpose: str,
    family_id: str | None = None,
    person_id: str | None = None,
    client: str | None = None,
) -> AccessLogEntry:
    """Append one entry in its own transaction (retried when a concurrent append wins)."""
    for attempt in range(20):
        try:
            with sessions.begin() as s:
                head = s.get(AccessLogHead, 1, with_for_update=True)
                last_id, last_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
                e = AccessLogEntry(
                    id=last_id + 1,
                    at=datetime.now(UTC).replace(tzinfo=None),
                    actor=actor,
                    role=role,
                    family_id=family_id,
                    person_id=person_id,
                    action=action[:200],
                    purpose=purpose[:200],
                    client=client[:200] if client else None,
                    prev_hash=last_hash,
                )
                e.hash = entry_hash(last_hash, e)
                s.add(e)
                if head is None:
                    s.add(AccessLogHead(id=1, last_id=e.id, last_hash=e.hash))
                else:
                    head.last_id, head.last_hash = e.id, e.hash
            return e
        except (IntegrityError, OperationalError):
            if attempt == 19:
                raise
    raise AssertionError("unreachable")


@dataclass
class Verification:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(sessions: sessionmaker[Session], limit: int = 20) -> Verification:
    """Walk the whole chain; report up to `limit` problems (each names the entry)."""
    problems: list[str] = []
    prev_id, prev_hash, n = 0, GENESIS, 0
    with sessions() as s:
        rows = s.execute(select(AccessLogEntry).order_by(AccessLogEntry.id)).scalars()
        for e in rows:
            n += 1
            if e.id != prev_id + 1:
                problems.append(f"entries {prev_id + 1}..{e.id - 1} are missing (deleted)")
            if e.prev_hash != prev_hash:
                problems.append(f"entry {e.id}: its link to the entry before does not match")
            if e.hash != entry_hash(e.prev_hash, e):
                problems.append(f"entry {e.id}: its content was changed after it was written")
            prev_id, prev_hash = e.id, e.hash
            if len(problems) >= limit:
                break
        head = s.get(AccessLogHead, 1)
        total = s.scalar(select(func.count()).select_from(AccessLogEntry))
    if head is None and total:
        problems.append("the chain head is missing")
    elif head is not None and (head.last_id, head.last_hash) != (prev_id, prev_hash):
        problems.append(
            f"the chain ends at entry {prev_id} but its head names entry {head.last_id}: "
            "the newest entries were deleted or the head was changed"
        )
    return Verification(n, problems[:limit])


def who_looked(sessions: sessionmaker[Session], family_id: str, limit: int = 200) -> list[dict]:
    """Who read or changed a family's data, newest first (what a citizen sees)."""
    with sessions() as s:
        rows = s.execute(
            select(AccessLogEntry)
            .where(AccessLogEntry.family_id == family_id)
            .order_by(AccessLogEntry.id.desc())
            .limit(limit)
        ).scalars()
        return [
            {
                "at": e.at.isoformat(timespec="seconds"),
                "actor": e.actor,
                "role": e.role,
                "action": e.action,
                "purpose": e.purpose,
                "client": e.client,
            }
            for e in rows
        ]
