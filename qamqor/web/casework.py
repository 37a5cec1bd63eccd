"""Case work (worker): the district's queue by urgency and overdue actions, the case page with
plan, social contract, notes and status (changes by HTMX), and the children's register."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from qamqor.api import queries
from qamqor.api.security import Principal, log_access
from qamqor.ops import cases
from qamqor.ops.appeals import AppealError, decide
from qamqor.store.access import Appeal
from qamqor.store.casework import SERVICES, Case
from qamqor.web.core import NotFound, back, is_htmx, render, role

router = APIRouter(include_in_schema=False)
worker = role("worker")
PAGE = 100
OVERDUE_SHOWN = 100


@router.get("/web/queue", response_class=HTMLResponse)
def queue(
    request: Request,
    offset: int = Query(0, ge=0, le=10_000_000),
    p: Principal = Depends(worker),
):
    """The queue a page of PAGE cases at a time (a district has hundreds at 1 M families), and
    the OVERDUE_SHOWN oldest overdue actions."""
    on = date.today()
    with request.app.state.sessions() as s:
        items = queries.queue(s, p.district, on)
    overdue = cases.overdue(request.app.state.sessions, on, district=p.district)
    return render(
        request,
        "cases/queue.html",
        p,
        items=items[offset : offset + PAGE],
        total=len(items),
        offset=offset,
        page=PAGE,
        overdue=overdue[:OVERDUE_SHOWN],
        overdue_total=len(overdue),
    )


def _case(request: Request, p: Principal, case_id: int) -> Case:
    with request.app.state.sessions() as s:
        c = s.get(Case, case_id)
    if c is None or c.district != p.district:
        raise NotFound()
    return c


def _page(request: Request, p: Principal, case_id: int, template: str, **extra) -> HTMLResponse:
    with request.app.state.sessions() as s:
        detail = queries.case_detail(s, case_id)
    return render(
        request, template, p, c=detail, services=SERVICES, today=date.today().isoformat(), **extra
    )


@router.get("/web/cases/{case_id}", response_class=HTMLResponse)
def case(request: Request, case_id: int, p: Principal = Depends(worker)):
    c = _case(request, p, case_id)
    log_access(request, p, f"read case {case_id}", c.family_id)
    return _page(request, p, case_id, "cases/case.html")


def _change(
    request: Request, p: Principal, case_id: int, what: str, fn: Callable, part: str
) -> HTMLResponse:
    """Apply a change as the API does (same ops call, same access-log entry) and answer with
    the changed part of the page (HTMX) or the whole page again."""
    c = _case(request, p, case_id)
    error = None
    try:
        fn()
        log_access(request, p, f"case {case_id}: {what}", c.family_id)
    except cases.CaseError as e:
        error = str(e)
    if not is_htmx(request):
        return back(f"/web/cases/{case_id}")
    return _page(request, p, case_id, f"cases/_{part}.html", error=error)


@router.post("/web/cases/{case_id}/notes", response_class=HTMLResponse)
def add_note(
    request: Request,
    case_id: int,
    text: Annotated[str, Form(min_length=1, max_length=5000)],
    p: Principal = Depends(worker),
):
    s = request.app.state.sessions
    return _change(
        request, p, case_id, "note", lambda: cases.add_note(s, case_id, p.username, text), "notes"
    )


@router.post("/web/cases/{case_id}/actions", response_class=HTMLResponse)
def add_action(
    request: Request,
    case_id: int,
    service: Annotated[str, Form(max_length=32)],
    action: Annotated[str, Form(min_length=1, max_length=2000)],
    owner: Annotated[str, Form(min_length=1, max_length=120)],
    due_on: Annotated[date, Form()],
    p: Principal = Depends(worker),
):
    s = request.app.state.sessions
    return _change(
        request,
        p,
        case_id,
        "plan action",
        lambda: cases.add_action(s, case_id, service, action, owner, due_on),
        "plan",
    )


@router.post("/web/cases/{case_id}/actions/{action_id}/done", response_class=HTMLResponse)
def action_done(request: Request, case_id: int, action_id: int, p: Principal = Depends(worker)):
    s = request.app.state.sessions
    return _change(
        request,
        p,
        case_id,
        f"action {action_id} done",
        lambda: cases.complete_action(s, case_id, action_id, date.today()),
        "plan",
    )


@router.post("/web/cases/{case_id}/contracts", response_class=HTMLResponse)
def add_contract(
    request: Request,
    case_id: int,
    person_id: Annotated[str, Form(min_length=1, max_length=32)],
    obligations: Annotated[str, Form(min_length=1, max_length=2000)],
    employment_measure: Annotated[str, Form(min_length=1, max_length=120)],
    signed_on: Annotated[date, Form()],
    months: Annotated[int, Form(ge=1, le=12)] = 6,
    p: Principal = Depends(worker),
):
    s = request.app.state.sessions
    return _change(
        request,
        p,
        case_id,
        "social contract",
        lambda: cases.add_contract(
            s, case_id, person_id, obligations, employment_measure, signed_on, months
        ),
        "contracts",
    )


@router.post("/web/cases/{case_id}/contracts/{contract_id}/outcome", response_class=HTMLResponse)
def contract_outcome(
    request: Request,
    case_id: int,
    contract_id: int,
    outcome: Annotated[str, Form(min_length=1, max_length=120, pattern=r"\S")],
    p: Principal = Depends(worker),
):
    """Record (or correct) what came of a social contract, as the API does."""
    s = request.app.state.sessions
    return _change(
        request,
        p,
        case_id,
        "contract outcome",
        lambda: cases.record_outcome(s, case_id, contract_id, outcome.strip()),
        "contracts",
    )


@router.post("/web/cases/{case_id}/status", response_class=HTMLResponse)
def set_status(
    request: Request,
    case_id: int,
    status: Annotated[str, Form(pattern="^(open|closure_proposed|closed)$")],
    note: Annotated[str, Form(min_length=1, max_length=2000)],
    p: Principal = Depends(worker),
):
    s = request.app.state.sessions
    return _change(
        request,
        p,
        case_id,
        f"status {status}",
        lambda: cases.set_status(s, case_id, status, p.username, note),
        "status",
    )


@router.get("/web/children", response_class=HTMLResponse)
def children(request: Request, p: Principal = Depends(worker)):
    with request.app.state.sessions() as s:
        rows = queries.children(s, p.district)
    log_access(request, p, "read children's register")
    return render(request, "cases/children.html", p, rows=rows, today=date.today().isoformat())


@router.get("/web/appeals", response_class=HTMLResponse)
def appeals(request: Request, p: Principal = Depends(worker)):
    with request.app.state.sessions() as s:
        rows = queries.appeals(s, district=p.district)
    return render(request, "cases/appeals.html", p, rows=rows)


@router.post("/web/appeals/{appeal_id}", response_class=HTMLResponse)
def decide_appeal(
    request: Request,
    appeal_id: int,
    accept: Annotated[str, Form(pattern="^(yes|no)$")],
    decision: Annotated[str, Form(min_length=1, max_length=2000)],
    p: Principal = Depends(worker),
):
    """Accept (the card is corrected and re-evaluated at once) or reject, as the API does."""
    with request.app.state.sessions() as s:
        a = s.get(Appeal, appeal_id)
        f = a and queries.family(s, a.family_id)
    if a is None or f is None or f["district"] != p.district:
        raise NotFound()
    error, outcome = None, None
    try:
        outcome = decide(
            request.app.state.sessions, appeal_id, accept == "yes", p.username, decision
        )
        log_access(request, p, f"decide appeal {appeal_id}", a.family_id)
    except AppealError as e:
        error = str(e)
    if not is_htmx(request):
        return back("/web/appeals")
    with request.app.state.sessions() as s:
        row = next(x for x in queries.appeals(s, district=p.district) if x["id"] == appeal_id)
    return render(request, "cases/_appeal.html", p, a=row, outcome=outcome, error=error)
