"""The family card (worker of the family's district; auditor read-only): members, indicators,
level with every point explained, scores, entitlements with why/why not (loaded after the page,
it runs the rules on the one family), offers and the card's history between runs."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from qamqor.api import queries
from qamqor.api.security import Principal, log_access
from qamqor.measures.explain import explain_measures
from qamqor.web import reads
from qamqor.web.core import NotFound, catalogue, lang_of, render, role

router = APIRouter(include_in_schema=False)
reader = role("worker", "auditor")


def district_family(request: Request, p: Principal, family_id: str) -> dict:
    """The published family with its audit fields; 404 for a worker of another district."""
    with request.app.state.sessions() as s:
        f = queries.family(s, family_id, audit_fields=True)
    if f is None or (p.role == "worker" and f["district"] != p.district):
        raise NotFound()
    return f


@router.get("/web/families/{family_id}", response_class=HTMLResponse)
def card(request: Request, family_id: str, p: Principal = Depends(reader)):
    f = district_family(request, p, family_id)
    lang = lang_of(request, p)
    with request.app.state.sessions() as s:
        expl = reads.explanation(s, family_id, lang)
        if expl is None:
            raise NotFound()
        ents = queries.entitlements(s, family_id)
        offers = queries.offers(s, family_id)
        case_id = reads.open_case(s, family_id) if p.role == "worker" else None
    members = queries.members(request.app.state.data_dir, family_id)
    # one entry for the page (card, explanation, members, entitlements), as the API's card read
    log_access(request, p, "read family card", family_id)
    return render(
        request,
        "family/card.html",
        p,
        f=f,
        expl=expl,
        entitlements=ents,
        offers=offers,
        members=members,
        case_id=case_id,
    )


@router.get("/web/families/{family_id}/why", response_class=HTMLResponse)
def why(request: Request, family_id: str, p: Principal = Depends(reader)):
    """Every measure of the catalogue for the family: each condition held or not, the amount."""
    f = district_family(request, p, family_id)
    on = date.fromisoformat(f["run_date"])
    try:
        rows = explain_measures(
            request.app.state.data_dir,
            family_id,
            on,
            lang=lang_of(request, p),
            catalogue=catalogue(),
        )
    except (FileNotFoundError, KeyError):
        rows = []
    log_access(request, p, "read entitlement explanation", family_id)
    rows = [r.as_dict() for r in rows if r.in_force and r.in_region]
    rows.sort(key=lambda r: (not r["eligible"], r["measure"]))
    return render(request, "family/_why.html", p, rows=rows)


@router.get("/web/families/{family_id}/history", response_class=HTMLResponse)
def history(request: Request, family_id: str, p: Principal = Depends(reader)):
    """The card at each kept run date and what changed (loaded after the page)."""
    district_family(request, p, family_id)
    rows = reads.card_history(request.app.state.data_dir, family_id)
    log_access(request, p, "read family card history", family_id)
    return render(request, "family/_history.html", p, history=rows)
