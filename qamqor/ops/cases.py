"""Case work (SPEC §11): cases open by themselves for families at level D or E or with an
emergency trigger, go to the Family Support Centre of the family's district, and carry a support
plan, social contracts, notes and a status history. A family that recovers (level C or better for
3 runs in a row) is proposed for closure; only a worker closes a case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import (
    Date,
    DateTime,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from qamqor.store.casework import (
    SERVICES,
    Case,
    CaseEvent,
    CaseNote,
    CentreDistrict,
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


def sync_cases(sessions: sessionmaker[Session], run_date: date, members=None) -> SyncResult:
    """Bring the cases in line with the published run `run_date` (idempotent for one date), in
    set-based SQL so that a national run (≈130 k cases) takes seconds.

    `members(family_id) -> list[dict]` lists a family's children for the children's register
    (person_id, age); without it the register is not touched."""
    r = SyncResult()
    fc, d = FamilyCard, literal(run_date, Date)
    in_need = and_(
        fc.run_date == run_date, or_(fc.level.in_(("D", "E")), fc.emergency_trigger.is_not(None))
    )
    row = (fc.family_id == Case.family_id) & (fc.run_date == run_date)
    followed = Case.status != "closed", Case.last_run < run_date
    with sessions.begin() as s:
        # 1. cases already open follow the family's level on this run
        need_now = exists().where(row, in_need)
        in_run = exists().where(row)
        r.updated = s.execute(
            update(Case)
            .where(*followed, need_now)
            .values(
                level=select(fc.level).where(row).scalar_subquery(),
                urgency=select(_urgency(fc)).where(row).scalar_subquery(),
                recovered_runs=0,
                last_run=d,
            )
        ).rowcount
        r.updated += s.execute(
            update(Case)
            .where(*followed, in_run, ~need_now)
            .values(
                level=select(fc.level).where(row).scalar_subquery(),
                urgency=0,
                recovered_runs=Case.recovered_runs + 1,
                last_run=d,
            )
        ).rowcount
        s.execute(update(Case).where(*followed, ~in_run).values(last_run=d))  # moved, died
        # 2. recovered for RECOVERY_RUNS runs: proposed for closure, never closed here
        due = and_(
            Case.status == "open", Case.recovered_runs >= RECOVERY_RUNS, Case.last_run == run_date
        )
        s.execute(
            insert(CaseEvent).from_select(
                ["case_id", "at", "by", "status", "note"],
                select(
                    Case.id, literal(_now(), DateTime), literal(SYSTEM),
                    literal("closure_proposed"),
                    literal("level ") + Case.level + literal(" for ")
                    + cast(Case.recovered_runs, String) + literal(" runs in a row"),
                ).where(due),
            )
        )  # fmt: skip
        r.proposed_for_closure = s.execute(
            update(Case).where(due).values(status="closure_proposed")
        ).rowcount
        # 3. new cases for families in need without an open one
        orphan = s.scalar(
            select(func.count())
            .select_from(fc)
            .outerjoin(CentreDistrict, CentreDistrict.district == fc.district)
            .where(in_need, CentreDistrict.centre_id.is_(None))
        )
        if orphan:
            raise CaseError(f"{orphan} families in need live in districts no centre serves")
        has_case = exists().where(Case.family_id == fc.family_id, Case.status != "closed")
        reason = case(
            (fc.emergency_trigger.is_not(None), literal("emergency: ") + fc.emergency_trigger),
            else_=literal("level ") + fc.level,
        )
        before = s.scalar(select(func.count()).select_from(Case))
        s.execute(
            insert(Case).from_select(
                [
                    "family_id",
                    "district",
                    "centre_id",
                    "status",
                    "reason",
                    "level",
                    "urgency",
                    "recovered_runs",
                    "opened_on",
                    "last_run",
                ],
                select(
                    fc.family_id,
                    fc.district,
                    CentreDistrict.centre_id,
                    literal("open"),
                    reason,
                    fc.level,
                    _urgency(fc),
                    literal(0),
                    d,
                    d,
                )
                .join(CentreDistrict, CentreDistrict.district == fc.district)
                .where(in_need, ~has_case),
            )
        )
        r.opened = s.scalar(select(func.count()).select_from(Case)) - before  # fmt: skip
        fresh = and_(Case.opened_on == run_date, ~exists().where(CaseEvent.case_id == Case.id))
        s.execute(
            insert(PlanAction).from_select(
                ["case_id", "service", "action", "owner", "due_on"],
                select(
                    Case.id, literal("social_protection"),
                    literal("First home visit and needs assessment"), Case.centre_id,
                    literal(run_date + timedelta(days=3), Date),
                ).where(fresh),
            )
        )  # fmt: skip
        s.execute(
            insert(CaseEvent).from_select(
                ["case_id", "at", "by", "status", "note"],
                select(
                    Case.id, literal(_now(), DateTime), literal(SYSTEM), literal("open"),
                    literal(f"opened by the run of {run_date}: ") + Case.reason,
                ).where(fresh),
            )
        )  # fmt: skip
        # 4. the children's register, for the families whose children are alone
        if members is not None:
            alone = s.scalars(
                select(Case).where(
                    Case.opened_on == run_date, Case.reason == f"emergency: {CHILD_TRIGGER}"
                )
            ).all()
            for c in alone:
                r.children_registered += _register_children(s, c, members(c.family_id), run_date)
    return r


def _urgency(fc):
    """3 for an emergency trigger, 2 at level E, 1 at D, 0 otherwise (SQL)."""
    return case(
        (fc.emergency_trigger.is_not(None), 3), (fc.level == "E", 2), (fc.level == "D", 1), else_=0
    )


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
