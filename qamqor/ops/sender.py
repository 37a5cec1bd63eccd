"""Delivery of the offers outbox, exactly once per offer.

Exactly-once across a crash needs both sides: the sender claims each offer in the store before
it sends (UNIQUE per offer) and always sends it with the same idempotency key (the offer key),
and the channel keeps the keys it has accepted (as the eGov SMS/notification gateways do). A
sender that crashes after the channel accepted a message but before marking the offer sent
re-sends it on restart with the same key; the channel accepts it once. `FileChannel` is the
channel of this installation: one JSON line per accepted message in DIR/outbox/messages.jsonl."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qamqor.store.models import Offer, OfferDelivery


class Channel(Protocol):
    name: str

    def deliver(self, key: str, message: dict) -> bool:
        """Deliver unless `key` was delivered before; True if this call delivered it."""


class FileChannel:
    """Messages as JSON lines, deduplicated by idempotency key, fsynced before returning."""

    name = "outbox-file"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keys: set[str] = set()
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                self.keys = {json.loads(line)["key"] for line in f if line.strip()}

    def deliver(self, key: str, message: dict) -> bool:
        if key in self.keys:
            return False
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, **message}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.keys.add(key)
        return True


class SimulatedCrash(RuntimeError):
    pass


@dataclass
class SendResult:
    sent: int = 0
    resent_after_crash: int = 0  # claimed before a crash; the channel had it or took it now


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def send_pending(
    sessions: sessionmaker[Session],
    channel: Channel,
    on: date,
    limit: int | None = None,
    crash_after: int | None = None,
) -> SendResult:
    """Send every pending offer; `crash_after=k` raises after the k-th channel delivery and
    before it is recorded (tests use it to prove a restart duplicates nothing)."""
    r = SendResult()
    with sessions() as s:
        q = select(Offer.id).where(Offer.status == "pending").order_by(Offer.id)
        ids = list(s.scalars(q.limit(limit) if limit else q))
    for offer_id in ids:
        with sessions.begin() as s:  # 1. claim (or find our own earlier claim)
            offer = s.get(Offer, offer_id)
            if offer is None or offer.status != "pending":
                continue
            d = s.scalar(select(OfferDelivery).where(OfferDelivery.offer_id == offer_id))
            if d is None:
                d = OfferDelivery(
                    offer_id=offer_id,
                    channel=channel.name,
                    idempotency_key=offer.offer_key,
                    state="claimed",
                    claimed_at=_now(),
                )
                s.add(d)
                try:
                    s.flush()
                except IntegrityError:  # another sender claimed it first
                    continue
            else:
                r.resent_after_crash += 1
            payload = {
                "offer_id": offer.id,
                "family_id": offer.family_id,
                "person_id": offer.person_id,
                "measure": offer.measure,
                "amount": offer.amount,
                "language": offer.language,
                "message": offer.message,
            }
            key = d.idempotency_key
        channel.deliver(key, payload)  # 2. send (idempotent by key)
        if crash_after is not None and r.sent + 1 >= crash_after:
            raise SimulatedCrash(f"crashed after delivering offer {offer_id}")
        with sessions.begin() as s:  # 3. record
            d = s.scalar(select(OfferDelivery).where(OfferDelivery.offer_id == offer_id))
            d.state, d.delivered_at = "delivered", _now()
            offer = s.get(Offer, offer_id)
            if offer.status == "pending":
                offer.status, offer.status_on = "sent", on
        r.sent += 1
    return r
