"""The access log: every read or change of a person's data, append-only and hash-chained.

A request records its entry in the inbox (durable before the answer, no lock). `seal` moves
inbox entries in order onto the chain: each entry's `hash` is sha256 over the previous entry's
hash and its own fields, and the `access_log_head` row moves in the same transaction, so
`verify` detects an edited entry, a deleted one (anywhere, the newest included) and an inserted
one. The API seals every half second; `verify` seals first."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from qamqor.store.access import ACCESS_FIELDS, AccessLogEntry, AccessLogHead, AccessLogInbox

GENESIS = "0" * 64


def entry_hash(prev_hash: str, entry_id: int, e: Any) -> str:
    """sha256 over the previous entry's hash, the entry's id and its ACCESS_FIELDS."""
    fields = (
        str(entry_id),
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


def _entry(
    *,
    actor: str,
    role: str,
    action: str,
    purpose: str,
    family_id: str | None = None,
    person_id: str | None = None,
    client: str | None = None,
) -> dict:
    return {
        "at": datetime.now(UTC).replace(tzinfo=None),
        "actor": actor,
        "role": role,
        "family_id": family_id,
        "person_id": person_id,
        "action": action[:200],
        "purpose": purpose[:200],
        "client": client[:200] if client else None,
    }


def append(sessions: sessionmaker[Session], **fields: str | None) -> None:
    """Record one access, durably, before the request answers: a plain insert into the inbox
    (no lock); `seal` chains it within a second. Fields: actor, role, action, purpose and
    optionally family_id, person_id, client (the X-Road client)."""
    with sessions.begin() as s:
        s.execute(insert(AccessLogInbox), [_entry(**fields)])  # type: ignore[arg-type]


class InboxWriter:
    """Group commit for the inbox. A request hands its entry over and waits for the returned
    future; one thread inserts everything waiting in one transaction. So N concurrent requests
    share one commit, and each still answers only once its entry is durable (if the insert
    fails, every waiting request fails: no access goes unlogged)."""

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 2_000):
        self.sessions, self.max_batch = sessions, max_batch
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.SimpleQueue[tuple[dict, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, **fields: str | None) -> Future[None]:
        done: Future[None] = Future()
        entry = _entry(**fields)  # type: ignore[arg-type]
        with self._lock:
            if self._pid != os.getpid():  # first use in this (possibly forked) process
                self._pid, self._queue = os.getpid(), queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="access-log-writer", daemon=True
                )
                self._thread.start()
            self._queue.put((entry, done))
        return done

    def append(self, **fields: str | None) -> None:
        """Submit and wait (for callers on a worker thread)."""
        self.submit(**fields).result(timeout=60)

    def _run(self, q: queue.SimpleQueue[tuple[dict, Future[None]]]) -> None:
        while True:
            batch = [q.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.sessions.begin() as s:
                    s.execute(insert(AccessLogInbox), [entry for entry, _ in batch])
            except Exception as e:  # the requests waiting fail with it
                for _, done in batch:
                    done.set_exception(e)
            else:
                for _, done in batch:
                    done.set_result(None)


def seal(sessions: sessionmaker[Session], batch: int = 5_000) -> int:
    """Move inbox entries, oldest first, onto the hash chain; returns how many. Sealers of
    several processes take turns on the head row's lock."""
    moved = 0
    while True:
        for attempt in range(20):
            try:
                with sessions.begin() as s:
                    head = s.get(AccessLogHead, 1, with_for_update=True)
                    last_id, last_hash = (head.last_id, head.last_hash) if head else (0, GENESIS)
                    inbox = AccessLogInbox.__table__
                    rows = s.execute(select(inbox).order_by(inbox.c.id).limit(batch)).all()
                    chained = []
                    for r in rows:
                        last_id += 1
                        h = entry_hash(last_hash, last_id, r)
                        chained.append(
                            {"id": last_id, "prev_hash": last_hash, "hash": h}
                            | {f: getattr(r, f) for f in ACCESS_FIELDS}
                        )
                        last_hash = h
                    if rows:
                        s.execute(insert(AccessLogEntry), chained)
                        s.execute(delete(inbox).where(inbox.c.id.in_([r.id for r in rows])))
                    if rows and head is None:
                        s.add(AccessLogHead(id=1, last_id=last_id, last_hash=last_hash))
                    elif rows:
                        head.last_id, head.last_hash = last_id, last_hash
                break
            except (IntegrityError, OperationalError):  # another sealer went first
                if attempt == 19:
                    raise
        moved += len(rows)
        if len(rows) < batch:
            return moved


class Sealer:
    """A daemon thread sealing the inbox every `every` seconds (started by the API app)."""

    def __init__(self, sessions: sessionmaker[Session], every: float = 0.5):
        self.sessions, self.every = sessions, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log-sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        seal(self.sessions)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                seal(self.sessions)
            except Exception:
                time.sleep(self.every)


@dataclass
class Verification:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(sessions: sessionmaker[Session], limit: int = 20) -> Verification:
    """Seal the inbox, then walk the whole chain; report up to `limit` problems (each names
    the entry)."""
    seal(sessions)
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
            if e.hash != entry_hash(e.prev_hash, e.id, e):
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
    """Who read or changed a family's data, newest first (what a citizen sees), sealed or not."""
    with sessions() as s:
        pending = s.scalars(
            select(AccessLogInbox)
            .where(AccessLogInbox.family_id == family_id)
            .order_by(AccessLogInbox.id.desc())
            .limit(limit)
        ).all()
        sealed = s.scalars(
            select(AccessLogEntry)
            .where(AccessLogEntry.family_id == family_id)
            .order_by(AccessLogEntry.id.desc())
            .limit(limit)
        ).all()
        rows = sorted([*pending, *sealed], key=lambda e: e.at, reverse=True)[:limit]
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
