"""Citizens' appeals against a data item of their family card. A worker accepts or rejects an
appeal; an accepted one is recorded as a correction (who, why, old and new value) and the family
is re-evaluated at once with the methodology in force; corrections are re-applied on every later
publication until the source registry itself is corrected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session, sessionmaker

from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.levels.explain import FamilyDocError, evaluate_family
from qamqor.store.access import Appeal, Correction
from qamqor.store.cardjson import card_doc, sparse_json
from qamqor.store.published import FamilyCard, Publication

KEYS = {"family_id", "region", "district", "urban", "language"}  # identity, not appealable


class AppealError(ValueError):
    pass


@dataclass
class Decision:
    appeal: Appeal
    level_before: str
    level_after: str
    score_after: float


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _current(s: Session, family_id: str) -> FamilyCard:
    run = s.scalar(select(Publication.run_date))
    card = run and s.get(FamilyCard, (run, family_id))
    if not card:
        raise AppealError(f"no family {family_id} in the published run")
    return card


def _parse(item: str, text: str):
    kind = FAMILY_COLUMNS[item]
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind == "int":
            v = float(text)
            if not v.is_integer() or v < 0:
                raise ValueError
            return int(v)
        if kind == "float":
            v = float(text)
            if v < 0 or v != v:
                raise ValueError
            return v
    except ValueError:
        raise AppealError(f"{item}: {text!r} is not a valid {kind}") from None
    return text


def file_appeal(
    sessions: sessionmaker[Session], family_id: str, item: str, claimed: str, reason: str, by: str
) -> Appeal:
    if item not in FAMILY_COLUMNS or item in KEYS:
        raise AppealError(f"{item!r} is not an appealable item of the family card")
    if not reason.strip():
        raise AppealError("an appeal needs a reason")
    _parse(item, claimed)
    with sessions.begin() as s:
        card = _current(s, family_id)
        current = card_doc(card).get(item)
        a = Appeal(
            family_id=family_id,
            item=item,
            current_value=str(current),
            claimed_value=claimed,
            reason=reason,
            status="open",
            created_by=by,
            created_at=_now(),
        )
        s.add(a)
    return a


def decide(
    sessions: sessionmaker[Session], appeal_id: int, accept: bool, by: str, decision: str
) -> Decision:
    """Accept (correct and re-evaluate at once) or reject an open appeal."""
    if not decision.strip():
        raise AppealError("a decision needs a reason")
    with sessions.begin() as s:
        a = s.get(Appeal, appeal_id, with_for_update=True)
        if a is None:
            raise AppealError(f"no appeal {appeal_id}")
        if a.status != "open":
            raise AppealError(f"appeal {appeal_id} is already {a.status}")
        card = _current(s, a.family_id)
        before = card.level
        a.status = "accepted" if accept else "rejected"
        a.decided_by, a.decision, a.decided_at = by, decision, _now()
        if accept:
            s.add(
                Correction(
                    family_id=a.family_id,
                    item=a.item,
                    old_value=a.current_value,
                    new_value=a.claimed_value,
                    by=by,
                    why=decision,
                    appeal_id=a.id,
                    at=_now(),
                )
            )
            s.flush()
            reevaluate(s.connection(), card.run_date, a.family_id)
            s.refresh(card)
        return Decision(a, before, card.level, card.score)


def reevaluate(conn: Connection, run_date, family_id: str) -> None:
    """Apply every correction of the family to its published card and rank it again."""
    t = FamilyCard.__table__
    row = conn.execute(
        select(t).where(t.c.run_date == run_date, t.c.family_id == family_id)
    ).first()
    if row is None:
        return
    doc = card_doc(row)
    fixes = conn.execute(
        select(Correction.item, Correction.new_value)
        .where(Correction.family_id == family_id)
        .order_by(Correction.id)
    ).all()
    for item, value in fixes:
        doc[item] = _parse(item, value)
    try:
        e = evaluate_family(doc, run_date)
    except FamilyDocError as err:
        raise AppealError(f"the corrected card cannot be evaluated: {err}") from err
    conn.execute(
        update(t)
        .where(t.c.run_date == run_date, t.c.family_id == family_id)
        .values(
            card=sparse_json(doc),
            level=e.level,
            score=e.score,
            emergency_trigger=e.emergency_trigger,
        )
    )


def reapply_corrections(conn: Connection, run_date) -> int:
    """Re-apply every family's corrections to a freshly published run (publish calls it)."""
    families = conn.execute(select(Correction.family_id).distinct()).scalars().all()
    for fid in families:
        reevaluate(conn, run_date, fid)
    return len(families)
