"""The social worker: the district's queue, family cards, cases with plan, contract, notes and
status, appeals to review and the children's register. A worker only reaches families and cases
of their own district (anything else is 404, as if it did not exist)."""

from __future__ import annotations

from datetime import date
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from qamqor.api import queries
from qamqor.api.routes.common import FamilyId, Id, explanation, family_or_404, sessions
from qamqor.api.security import Principal, log_access, log_access_async, require
from qamqor.ops import cases
from qamqor.ops.appeals import AppealError, decide
from qamqor.store.access import Appeal
from qamqor.store.casework import SERVICES, Case

router = APIRouter(tags=["worker"])
worker = require("worker")
reader = require("worker", "auditor")


def _district_family(
    request: Request, p: Principal, family_id: FamilyId, audit: bool = False
) -> dict:
    with request.app.state.engine.connect() as c:
        f = family_or_404(c, family_id, audit_fields=audit)
    if p.role == "worker" and f["district"] != p.district:
        raise HTTPException(404, f"no family {family_id} in your district")
    return f


def _district_case(request: Request, p: Principal, case_id: Id) -> Case:
    with sessions(request)() as s:
        c = s.get(Case, case_id)
    if c is None or c.district != p.district:
        raise HTTPException(404, f"no case {case_id} in your district")
    return c


@router.get("/worker/queue")
def queue(request: Request, p: Principal = Depends(worker)) -> dict:
    on = date.today()
    with sessions(request)() as s:
        items = queries.queue(s, p.district, on)
    return {
        "district": p.district,
        "cases": items,
        "overdue": cases.overdue(sessions(request), on, district=p.district),
    }


@router.get("/families/{family_id}", response_model=dict)
async def family(request: Request, family_id: FamilyId, p: Principal = Depends(reader)) -> Response:
    """A family's published card (the hot path: one indexed read, one group-committed
    access-log entry, the JSON encoded once)."""
    f = await run_in_threadpool(_district_family, request, p, family_id, audit=True)
    await log_access_async(request, p, "read family card", family_id)
    return Response(orjson.dumps(f), media_type="application/json")


@router.get("/families/{family_id}/explanation")
def family_explanation(
    request: Request,
    family_id: FamilyId,
    lang: Literal["kk", "ru", "en"] = "ru",
    p: Principal = Depends(reader),
) -> dict:
    _district_family(request, p, family_id)
    with sessions(request)() as s:
        e = explanation(s, family_id, lang)
    log_access(request, p, "read level explanation", family_id)
    return e


@router.get("/families/{family_id}/members")
def family_members(request: Request, family_id: FamilyId, p: Principal = Depends(reader)) -> list:
    _district_family(request, p, family_id)
    log_access(request, p, "read family members", family_id)
    return queries.members(request.app.state.data_dir, family_id)


@router.get("/families/{family_id}/entitlements")
def family_entitlements(
    request: Request, family_id: FamilyId, p: Principal = Depends(reader)
) -> list:
    _district_family(request, p, family_id)
    with sessions(request)() as s:
        out = queries.entitlements(s, family_id)
    log_access(request, p, "read entitlements", family_id)
    return out


@router.get("/cases/{case_id}")
def case(request: Request, case_id: Id, p: Principal = Depends(worker)) -> dict:
    c = _district_case(request, p, case_id)
    with sessions(request)() as s:
        out = queries.case_detail(s, case_id)
    log_access(request, p, f"read case {case_id}", c.family_id)
    return out


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: Literal[SERVICES]  # type: ignore[valid-type]
    action: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=120)
    due_on: date


class ContractIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(min_length=1, max_length=32)
    obligations: str = Field(min_length=1, max_length=2000)
    employment_measure: str = Field(min_length=1, max_length=120)
    signed_on: date
    months: int = Field(6, ge=1, le=12)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "closure_proposed", "closed"]
    note: str = Field(min_length=1, max_length=2000)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = Field(min_length=1, max_length=120)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accept: bool
    decision: str = Field(min_length=1, max_length=2000)


def _do(request: Request, p: Principal, case_id: Id, what: str, fn):
    c = _district_case(request, p, case_id)
    try:
        out = fn()
    except cases.CaseError as e:
        raise HTTPException(409, str(e)) from None
    log_access(request, p, f"case {case_id}: {what}", c.family_id)
    return out


@router.post("/cases/{case_id}/actions", status_code=201)
def add_action(request: Request, case_id: Id, body: ActionIn, p: Principal = Depends(worker)):
    a = _do(
        request,
        p,
        case_id,
        "plan action",
        lambda: cases.add_action(
            sessions(request), case_id, body.service, body.action, body.owner, body.due_on
        ),
    )
    return {"id": a.id}


@router.post("/cases/{case_id}/actions/{action_id}/done")
def action_done(request: Request, case_id: Id, action_id: Id, p: Principal = Depends(worker)):
    a = _do(
        request,
        p,
        case_id,
        f"action {action_id} done",
        lambda: cases.complete_action(sessions(request), case_id, action_id, date.today()),
    )
    return {"id": a.id, "done_on": a.done_on.isoformat()}


@router.post("/cases/{case_id}/contracts", status_code=201)
def add_contract(request: Request, case_id: Id, body: ContractIn, p: Principal = Depends(worker)):
    k = _do(
        request,
        p,
        case_id,
        "social contract",
        lambda: cases.add_contract(
            sessions(request),
            case_id,
            body.person_id,
            body.obligations,
            body.employment_measure,
            body.signed_on,
            body.months,
        ),
    )
    return {"id": k.id, "ends_on": k.ends_on.isoformat()}


@router.post("/cases/{case_id}/contracts/{contract_id}/outcome")
def contract_outcome(
    request: Request,
    case_id: Id,
    contract_id: Id,
    body: OutcomeIn,
    p: Principal = Depends(worker),
):
    k = _do(
        request,
        p,
        case_id,
        "contract outcome",
        lambda: cases.record_outcome(sessions(request), case_id, contract_id, body.outcome),
    )
    return {"id": k.id, "outcome": k.outcome}


@router.post("/cases/{case_id}/notes", status_code=201)
def add_note(request: Request, case_id: Id, body: NoteIn, p: Principal = Depends(worker)):
    n = _do(
        request,
        p,
        case_id,
        "note",
        lambda: cases.add_note(sessions(request), case_id, p.username, body.text),
    )
    return {"id": n.id}


@router.post("/cases/{case_id}/status")
def set_status(request: Request, case_id: Id, body: StatusIn, p: Principal = Depends(worker)):
    c = _do(
        request,
        p,
        case_id,
        f"status {body.status}",
        lambda: cases.set_status(sessions(request), case_id, body.status, p.username, body.note),
    )
    return {"id": c.id, "status": c.status}


@router.get("/worker/appeals")
def district_appeals(request: Request, p: Principal = Depends(worker)) -> list[dict]:
    with sessions(request)() as s:
        return queries.appeals(s, district=p.district)


@router.post("/appeals/{appeal_id}/decision")
def decide_appeal(
    request: Request, appeal_id: Id, body: DecisionIn, p: Principal = Depends(worker)
) -> dict:
    with sessions(request)() as s:
        a = s.get(Appeal, appeal_id)
        f = a and queries.family(s, a.family_id)
    if a is None or f is None or f["district"] != p.district:
        raise HTTPException(404, f"no appeal {appeal_id} in your district")
    try:
        d = decide(sessions(request), appeal_id, body.accept, p.username, body.decision)
    except AppealError as e:
        raise HTTPException(409, str(e)) from None
    log_access(request, p, f"decide appeal {appeal_id}", a.family_id)
    return {
        "id": appeal_id,
        "status": d.appeal.status,
        "level_before": d.level_before,
        "level_after": d.level_after,
        "score_after": d.score_after,
    }


@router.get("/worker/children")
def children(request: Request, p: Principal = Depends(worker)) -> list[dict]:
    with sessions(request)() as s:
        out = queries.children(s, p.district)
    log_access(request, p, "read children's register")
    return out
