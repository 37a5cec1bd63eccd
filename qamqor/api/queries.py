"""Read models over the operational store, shared by the API and the web pages. Every function
takes a session and returns plain dicts/lists; access rules are applied by the callers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.orm import Session

from qamqor.engine import lookup_cursor, sql_path
from qamqor.engine.lookup import family_rows
from qamqor.store.access import Appeal
from qamqor.store.cardjson import card_doc
from qamqor.store.casework import Case, CaseEvent, CaseNote, ChildInCare, PlanAction, SocialContract
from qamqor.store.models import Offer
from qamqor.store.published import FamilyCard, FamilyEntitlement, Publication, PublishedFinding, Run

MIN_CELL = 10  # analysts never see a cell with fewer families than this


class NotPublished(LookupError):
    pass


def run_date(s: Session | Connection) -> date:
    d = s.scalar(select(Publication.run_date))
    if d is None:
        raise NotPublished("no run has been published yet: run `qamqor run DIR`")
    return d


_CARDS = FamilyCard.__table__


def family(s: Session | Connection, family_id: str, *, audit_fields: bool = False) -> dict | None:
    """A family's published card (one indexed read, joined to the current publication)."""
    card = s.execute(
        select(_CARDS)
        .join(Publication, Publication.run_date == _CARDS.c.run_date)
        .where(_CARDS.c.family_id == family_id)
    ).first()
    if card is None:
        run_date(s)  # raises NotPublished when nothing is published yet
        return None
    out = {
        "family_id": card.family_id,
        "run_date": card.run_date.isoformat(),
        "region": card.region,
        "district": card.district,
        "urban": card.urban,
        "language": card.language,
        "members": card.members,
        "children": card.children,
        "income_per_capita": round(card.income_per_capita, 2),
        "level": card.level,
        "score": card.score,
        "emergency_trigger": card.emergency_trigger,
        "category": card.category,
        "indicators": card_doc(card),
    }
    if audit_fields:
        out["vulnerability"] = card.vulnerability
        out["hidden_income_flag"] = card.hidden_income_flag
    return out


def entitlements(s: Session, family_id: str) -> list[dict]:
    rows = s.scalars(
        select(FamilyEntitlement)
        .where(FamilyEntitlement.run_date == run_date(s), FamilyEntitlement.family_id == family_id)
        .order_by(FamilyEntitlement.measure)
    )
    return [
        {
            "measure": e.measure,
            "person_id": e.person_id,
            "amount": e.amount,
            "period": e.period,
            "reasons": e.reasons,
        }
        for e in rows
    ]


def offers(s: Session, family_id: str) -> list[dict]:
    rows = s.scalars(select(Offer).where(Offer.family_id == family_id).order_by(Offer.id.desc()))
    return [
        {
            "id": o.id,
            "measure": o.measure,
            "kind": o.kind,
            "amount": o.amount,
            "period": o.period,
            "message": o.message,
            "status": o.status,
            "created_on": o.created_on.isoformat(),
        }
        for o in rows
    ]


def appeals(s: Session, family_id: str | None = None, district: str | None = None) -> list[dict]:
    q = select(Appeal).order_by(Appeal.id.desc())
    if family_id:
        q = q.where(Appeal.family_id == family_id)
    if district:
        fams = select(FamilyCard.family_id).where(
            FamilyCard.run_date == run_date(s), FamilyCard.district == district
        )
        q = q.where(Appeal.family_id.in_(fams))
    return [
        {
            "id": a.id,
            "family_id": a.family_id,
            "item": a.item,
            "current_value": a.current_value,
            "claimed_value": a.claimed_value,
            "reason": a.reason,
            "status": a.status,
            "decision": a.decision,
            "created_at": a.created_at.isoformat(timespec="seconds"),
        }
        for a in s.scalars(q)
    ]


def members(data_dir: Path, family_id: str) -> list[dict]:
    """The family's members (pseudonymous id, role, sex, age) from the card's members file,
    oldest first."""
    path = Path(data_dir) / "cards" / "members.parquet"
    if not path.exists():
        return []
    rows = family_rows(data_dir, "cards/members.parquet", family_id)
    out = rows.select(["person_id", "role", "sex", "age"]).to_pylist()
    return sorted(out, key=lambda m: (m["age"] is None, -(m["age"] or 0)))


def queue(s: Session, district: str, on: date) -> list[dict]:
    """The district's open cases, most urgent first, with their overdue actions."""
    late = and_(PlanAction.case_id == Case.id, PlanAction.done_on.is_(None), PlanAction.due_on < on)
    n = func.count(PlanAction.id)
    q = (
        select(Case, n)
        .outerjoin(PlanAction, late)
        .where(Case.district == district, Case.status != "closed")
        .group_by(Case.id)
        .order_by(Case.urgency.desc(), n.desc(), Case.opened_on, Case.id)
    )
    return [case_summary(c) | {"overdue_actions": k} for c, k in s.execute(q).all()]


def case_summary(c: Case) -> dict:
    return {
        "id": c.id,
        "family_id": c.family_id,
        "district": c.district,
        "centre_id": c.centre_id,
        "status": c.status,
        "reason": c.reason,
        "level": c.level,
        "urgency": c.urgency,
        "opened_on": c.opened_on.isoformat(),
        "recovered_runs": c.recovered_runs,
    }


def case_detail(s: Session, case_id: int) -> dict | None:
    c = s.get(Case, case_id)
    if c is None:
        return None
    by_case = {"case_id": case_id}
    return case_summary(c) | {
        "plan": [
            {
                "id": a.id,
                "service": a.service,
                "action": a.action,
                "owner": a.owner,
                "due_on": a.due_on.isoformat(),
                "done_on": a.done_on and a.done_on.isoformat(),
            }
            for a in s.scalars(select(PlanAction).filter_by(**by_case).order_by(PlanAction.due_on))
        ],
        "contracts": [
            {
                "id": k.id,
                "person_id": k.person_id,
                "obligations": k.obligations,
                "employment_measure": k.employment_measure,
                "signed_on": k.signed_on.isoformat(),
                "ends_on": k.ends_on.isoformat(),
                "outcome": k.outcome,
            }
            for k in s.scalars(select(SocialContract).filter_by(**by_case))
        ],
        "notes": [
            {"at": n.at.isoformat(timespec="seconds"), "by": n.by, "text": n.text}
            for n in s.scalars(select(CaseNote).filter_by(**by_case).order_by(CaseNote.id))
        ],
        "history": [
            {
                "at": e.at.isoformat(timespec="seconds"),
                "by": e.by,
                "status": e.status,
                "note": e.note,
            }
            for e in s.scalars(select(CaseEvent).filter_by(**by_case).order_by(CaseEvent.id))
        ],
    }


def children(s: Session, district: str) -> list[dict]:
    rows = s.scalars(
        select(ChildInCare).where(ChildInCare.district == district).order_by(ChildInCare.id)
    )
    return [
        {
            "person_id": c.person_id,
            "family_id": c.family_id,
            "case_id": c.case_id,
            "registered_on": c.registered_on.isoformat(),
            "next_review_on": c.next_review_on.isoformat(),
            "protection_plan": c.protection_plan,
        }
        for c in rows
    ]


GROUPS = {"region": FamilyCard.region, "district": FamilyCard.district, "urban": FamilyCard.urban}


def level_stats(s: Session, by: str | None = None) -> dict:
    """Families and people per level, nationally or by region/district/urban; any cell under
    MIN_CELL families is suppressed (value null, `suppressed: true`)."""
    if by is not None and by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}")
    d = run_date(s)
    keys = [GROUPS[by]] if by else []
    q = (
        select(*keys, FamilyCard.level, func.count(), func.sum(FamilyCard.members))
        .where(FamilyCard.run_date == d)
        .group_by(*keys, FamilyCard.level)
        .order_by(*keys, FamilyCard.level)
    )
    return _level_cells(d, by, [tuple(r) for r in s.execute(q).all()])


# family_id ranges (by first character, open at both ends) of `level_stats_all`'s statements
_SLICES = list(zip([None, *"123456789abcdef"], [*"123456789abcdef", None], strict=True))


def level_stats_all(s: Session) -> dict[str, dict]:
    """`level_stats` nationally ("national") and by each of GROUPS, from the run's cards
    grouped by region, district, urban and level (the coarser cells are sums of those). The
    cards are read in 16 statements over family_id ranges (the primary key's index), so that on
    SQLite no read holds off the access log's writes for long (≈ 0.5 s each at 1 M families)."""
    d = run_date(s)
    keys = list(GROUPS.values())
    rows = []
    for low, high in _SLICES:
        q = select(*keys, FamilyCard.level, func.count(), func.sum(FamilyCard.members)).where(
            FamilyCard.run_date == d
        )
        if low is not None:
            q = q.where(FamilyCard.family_id >= low)
        if high is not None:
            q = q.where(FamilyCard.family_id < high)
        rows += s.execute(q.group_by(*keys, FamilyCard.level)).all()
    out = {}
    for by in (None, *GROUPS):
        sums: dict[tuple, list[int]] = {}
        at = list(GROUPS).index(by) if by else None
        for *group, level, families, people in rows:
            cell = sums.setdefault((() if at is None else (group[at],)) + (level,), [0, 0])
            cell[0] += families
            cell[1] += int(people or 0)
        grouped = [(*k, n, people) for k, (n, people) in sorted(sums.items())]
        out[by or "national"] = _level_cells(d, by, grouped)
    return out


def _level_cells(d: date, by: str | None, rows: list[tuple]) -> dict:
    cells = []
    for *group, level, families, people in rows:
        small = families < MIN_CELL
        cells.append(
            {
                **({by: group[0]} if by else {}),
                "level": level,
                "families": None if small else families,
                "people": None if small else int(people),
                "suppressed": small,
            }
        )
    return {"run_date": d.isoformat(), "by": by, "min_cell": MIN_CELL, "cells": cells}


def measure_stats(s: Session, by_region: bool = False) -> dict:
    """Families and money per measure (optionally by region), small cells suppressed."""
    d = run_date(s)
    keys = [FamilyEntitlement.region] if by_region else []
    yearly = case(
        (FamilyEntitlement.period == "monthly", FamilyEntitlement.amount * 12),
        (FamilyEntitlement.period == "quarterly", FamilyEntitlement.amount * 4),
        else_=FamilyEntitlement.amount,
    )
    q = (
        select(
            *keys,
            FamilyEntitlement.measure,
            func.count(func.distinct(FamilyEntitlement.family_id)),
            func.sum(yearly),
        )
        .where(FamilyEntitlement.run_date == d)
        .group_by(*keys, FamilyEntitlement.measure)
        .order_by(*keys, FamilyEntitlement.measure)
    )
    cells = []
    for row in s.execute(q).all():
        *group, measure, families, cost = row
        small = families < MIN_CELL
        cells.append(
            {
                **({"region": group[0]} if by_region else {}),
                "measure": measure,
                "families": None if small else families,
                "annual_cost": None if small else round(float(cost), 2),
                "suppressed": small,
            }
        )
    return {"run_date": d.isoformat(), "min_cell": MIN_CELL, "cells": cells}


def findings(
    s: Session,
    type_: str | None = None,
    region: str | None = None,
    family_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict:
    d = run_date(s)
    cond = [PublishedFinding.run_date == d]
    if type_:
        cond.append(PublishedFinding.type == type_)
    if region:
        cond.append(PublishedFinding.region == region)
    if family_id:
        cond.append(PublishedFinding.family_id == family_id)
    where = and_(*cond)
    total, money = s.execute(
        select(func.count(), func.coalesce(func.sum(PublishedFinding.amount_at_risk), 0)).where(
            where
        )
    ).one()
    rows = s.scalars(
        select(PublishedFinding)
        .where(where)
        .order_by(PublishedFinding.amount_at_risk.desc(), PublishedFinding.finding_id)
        .limit(limit)
        .offset(offset)
    )
    return {
        "run_date": d.isoformat(),
        "total": total,
        "amount_at_risk": round(float(money), 2),
        "findings": [
            {
                "finding_id": f.finding_id,
                "type": f.type,
                "family_id": f.family_id,
                "person_id": f.person_id,
                "region": f.region,
                "measure": f.measure,
                "amount_at_risk": f.amount_at_risk,
                "severity": f.severity,
                "evidence": f.evidence,
            }
            for f in rows
        ],
    }


def payment_trail(data_dir: Path, family_id: str) -> list[dict]:
    """Every payment to a member of the family, from the audit's pseudonymous payment trail
    (`DIR/audit/payments.parquet`, sorted by family so a lookup reads one row group)."""
    path = Path(data_dir) / "audit" / "payments.parquet"
    if not path.exists():
        return []
    con = lookup_cursor()
    try:
        cur = con.execute(
            f"SELECT payment_id, person_id, measure, period, amount, region, paid_date "
            f"FROM read_parquet({sql_path(path)}) WHERE family_id = $1",
            [family_id],
        )
        cols = [d[0] for d in cur.description]
        return [
            {k: (v.isoformat() if isinstance(v, date) else v) for k, v in zip(cols, r, strict=True)}
            for r in cur.fetchall()
        ]
    finally:
        con.close()


def runs(s: Session) -> list[dict]:
    return [
        {
            "run_date": r.run_date.isoformat(),
            "families": r.families,
            "entitlements": r.entitlements,
            "findings": r.findings,
            "published_at": r.published_at.isoformat(timespec="seconds"),
        }
        for r in s.scalars(select(Run).order_by(Run.run_date))
    ]
