"""Case work (SPEC §11): cases open by themselves for families at level D or E or with an
emergency trigger, go to the Family Support Centre of the family's district, and carry a support
plan, social contracts, notes and a status history. A family that recovers (level C or better for
3 runs in a row) is proposed for closure; only a worker closes a case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from qamqor.ops.centres import centre_of
from qamqor.store.casework import (
    SERVICES,
    Case,
    CaseEvent,
    CaseNote,
    ChildInCare,
    PlanAction,
    SocialContract,
)
from qamqor.store.published import FamilyCard

RECOVERY_RUNS = 3
CHILD_TRIGGER = "child_without_parental_care"
SYSTEM = "qamqor"


class CaseError(ValueError):
    pass


@dataclass
class SyncResult:
    opened: int = 0
    updated: int = 0
    proposed_for_closure: int = 0
    children_registered: int = 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def urgency(level: str, trigger: str | None) -> int:
    return 3 if trigger else 2 if level == "E" else 1 if level == "D" else 0


def sync_cases(sessions: sessionmaker[Session], run_date: date, members=None) -> SyncResult:
    """Bring the cases in line with the published run `run_date` (idempotent for one date).

    `members(family_id) -> list[dict]` lists a family's children for the children's register
    (person_id, age); without it the register is not touched."""
    r = SyncResult()
    with sessions.begin() as s:
        open_cases = {
            c.family_id: c for c in s.scalars(select(Case).where(Case.status != "closed")).all()
        }
        in_need = s.execute(
            select(
                FamilyCard.family_id,
                FamilyCard.district,
                FamilyCard.level,
                FamilyCard.emergency_trigger,
            )
            .where(FamilyCard.run_date == run_date)
            .where((FamilyCard.level.in_(("D", "E"))) | FamilyCard.emergency_trigger.is_not(None))
        ).all()
        need = {f.family_id: f for f in in_need}
        now = _now()
        centres: dict[str, str | None] = {}
        for f in in_need:
            if f.family_id in open_cases:
                continue
            if f.district not in centres:
                centres[f.district] = centre_of(s, f.district)
            if centres[f.district] is None:
                raise CaseError(f"no Family Support Centre serves district {f.district}")
            reason = (
                f"emergency: {f.emergency_trigger}" if f.emergency_trigger else f"level {f.level}"
            )
            case = Case(
                family_id=f.family_id,
                district=f.district,
                centre_id=centres[f.district],
                status="open",
                reason=reason,
                level=f.level,
                urgency=urgency(f.level, f.emergency_trigger),
                recovered_runs=0,
                opened_on=run_date,
                last_run=run_date,
            )
            s.add(case)
            s.flush()
            s.add(
                CaseEvent(
                    case_id=case.id,
                    at=now,
                    by=SYSTEM,
                    status="open",
                    note=f"opened by the run of {run_date}: {reason}",
                )
            )
            s.add(
                PlanAction(
                    case_id=case.id,
                    service="social_protection",
                    action="First home visit and needs assessment",
                    owner=centres[f.district],
                    due_on=run_date + timedelta(days=3),
                )
            )
            r.opened += 1
            if f.emergency_trigger == CHILD_TRIGGER and members is not None:
                r.children_registered += _register_children(s, case, members(f.family_id), run_date)
        # cases already open: follow the family's level on this run (once per run date)
        for fid, case in open_cases.items():
            if case.last_run >= run_date:
                continue
            level, _ = _level_on(s, fid, run_date)
            case.last_run = run_date
            r.updated += 1
            if fid in need:
                case.level, case.recovered_runs = need[fid].level, 0
                case.urgency = urgency(need[fid].level, need[fid].emergency_trigger)
                continue
            if level is None:
                continue  # not in this run's cards (moved, died): a worker looks at it
            case.level, case.urgency = level, 0
            case.recovered_runs += 1
            if case.status == "open" and case.recovered_runs >= RECOVERY_RUNS:
                case.status = "closure_proposed"
                s.add(
                    CaseEvent(
                        case_id=case.id,
                        at=now,
                        by=SYSTEM,
                        status="closure_proposed",
                        note=f"level {level} for {case.recovered_runs} runs in a row",
                    )
                )
                r.proposed_for_closure += 1
    return r


def _level_on(s: Session, family_id: str, run_date: date) -> tuple[str | None, str | None]:
    row = s.execute(
        select(FamilyCard.level, FamilyCard.emergency_trigger).where(
            and_(FamilyCard.run_date == run_date, FamilyCard.family_id == family_id)
        )
    ).first()
    return (row.level, row.emergency_trigger) if row else (None, None)


def _register_children(s: Session, case: Case, children: list[dict], on: date) -> int:
    n = 0
    for child in children:
        exists = s.scalar(select(ChildInCare.id).where(ChildInCare.person_id == child["person_id"]))
        if exists:
            continue
        s.add(
            ChildInCare(
                person_id=child["person_id"],
                family_id=case.family_id,
                district=case.district,
                case_id=case.id,
                registered_on=on,
                next_review_on=on + timedelta(days=30),
                protection_plan=(
                    f"Individual protection plan (age {child.get('age', '?')}): guardianship "
                    "decision by the guardianship body within 30 days; school and health check; "
                    "monthly review by the centre."
                ),
            )
        )
        n += 1
    return n


def set_status(
    sessions: sessionmaker[Session], case_id: int, status: str, by: str, note: str
) -> Case:
    """A worker's status change (the only way a case gets closed)."""
    if status not in ("open", "closure_proposed", "closed"):
        raise CaseError(f"unknown status {status!r}")
    if not note.strip():
        raise CaseError("a status change needs a note saying why")
    with sessions.begin() as s:
        case = s.get(Case, case_id, with_for_update=True)
        if case is None:
            raise CaseError(f"no case {case_id}")
        if case.status == "closed":
            raise CaseError(f"case {case_id} is closed")
        case.status = status
        case.closed_on = date.today() if status == "closed" else None
        if status == "open":
            case.recovered_runs = 0
        s.add(CaseEvent(case_id=case_id, at=_now(), by=by, status=status, note=note))
    return case


def add_action(
    sessions, case_id: int, service: str, action: str, owner: str, due_on: date
) -> PlanAction:
    if service not in SERVICES:
        raise CaseError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
    if not action.strip() or not owner.strip():
        raise CaseError("an action needs a description and an owner")
    with sessions.begin() as s:
        _case(s, case_id)
        a = PlanAction(case_id=case_id, service=service, action=action, owner=owner, due_on=due_on)
        s.add(a)
    return a


def complete_action(sessions, case_id: int, action_id: int, on: date) -> PlanAction:
    with sessions.begin() as s:
        a = s.get(PlanAction, action_id)
        if a is None or a.case_id != case_id:
            raise CaseError(f"no action {action_id} in case {case_id}")
        a.done_on = on
    return a


def add_note(sessions, case_id: int, by: str, text: str) -> CaseNote:
    if not text.strip():
        raise CaseError("an empty note")
    with sessions.begin() as s:
        _case(s, case_id)
        n = CaseNote(case_id=case_id, at=_now(), by=by, text=text)
        s.add(n)
    return n


def add_contract(
    sessions,
    case_id: int,
    person_id: str,
    obligations: str,
    employment_measure: str,
    signed_on: date,
    months: int = 6,
) -> SocialContract:
    """A social contract of an able-bodied member (ASP with conditions, SPEC §9)."""
    if not obligations.strip() or not employment_measure.strip():
        raise CaseError("a social contract needs obligations and an employment measure")
    if not 1 <= months <= 12:
        raise CaseError("a social contract lasts 1 to 12 months")
    with sessions.begin() as s:
        _case(s, case_id)
        c = SocialContract(
            case_id=case_id,
            person_id=person_id,
            obligations=obligations,
            employment_measure=employment_measure,
            signed_on=signed_on,
            ends_on=signed_on + timedelta(days=30 * months),
        )
        s.add(c)
    return c


def record_outcome(sessions, case_id: int, contract_id: int, outcome: str) -> SocialContract:
    with sessions.begin() as s:
        c = s.get(SocialContract, contract_id)
        if c is None or c.case_id != case_id:
            raise CaseError(f"no contract {contract_id} in case {case_id}")
        c.outcome = outcome
    return c


def overdue(
    sessions, on: date, centre_id: str | None = None, district: str | None = None
) -> list[dict]:
    """Plan actions past their due date and not done, oldest first."""
    q = (
        select(PlanAction, Case.family_id, Case.district, Case.centre_id)
        .join(Case, Case.id == PlanAction.case_id)
        .where(PlanAction.done_on.is_(None), PlanAction.due_on < on, Case.status != "closed")
        .order_by(PlanAction.due_on)
    )
    if centre_id:
        q = q.where(Case.centre_id == centre_id)
    if district:
        q = q.where(Case.district == district)
    with sessions() as s:
        return [
            {
                "case_id": a.case_id,
                "action_id": a.id,
                "family_id": fid,
                "district": d,
                "service": a.service,
                "action": a.action,
                "owner": a.owner,
                "due_on": a.due_on.isoformat(),
                "days_overdue": (on - a.due_on).days,
            }
            for a, fid, d, _c in s.execute(q).all()
        ]


def _case(s: Session, case_id: int) -> Case:
    case = s.get(Case, case_id)
    if case is None:
        raise CaseError(f"no case {case_id}")
    if case.status == "closed":
        raise CaseError(f"case {case_id} is closed")
    return case
