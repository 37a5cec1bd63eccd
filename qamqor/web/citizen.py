"""The citizen's pages: my family (level in plain words, entitlements, offers with consent,
appeals) and who looked at my data. A citizen only ever reaches their own family."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from qamqor.api import queries
from qamqor.api.security import Principal, log_access
from qamqor.measures.offers import OfferError, consent, decline
from qamqor.ops import access_log
from qamqor.ops.appeals import KEYS, AppealError, file_appeal
from qamqor.store.cardjson import card_doc
from qamqor.store.models import Offer
from qamqor.store.published import FamilyCard
from qamqor.web import labels, reads
from qamqor.web.core import NotFound, back, is_htmx, lang_of, render, role

router = APIRouter(include_in_schema=False)
citizen = role("citizen")
APPEALABLE = [k for k in labels.CARD_ITEMS if k not in KEYS]


def _card_values(request: Request, family_id: str) -> dict:
    with request.app.state.sessions() as s:
        card = s.get(FamilyCard, (queries.run_date(s), family_id))
    return card_doc(card) if card else {}


def _appeals(request: Request, p: Principal, **extra) -> dict:
    with request.app.state.sessions() as s:
        mine = queries.appeals(s, family_id=p.family_id)
    return {"appeals": mine, "items": APPEALABLE, "values": _card_values(request, p.family_id)} | (
        extra
    )


@router.get("/web/me", response_class=HTMLResponse)
def my_family(request: Request, p: Principal = Depends(citizen)):
    lang = lang_of(request, p)
    with request.app.state.sessions() as s:
        family = queries.family(s, p.family_id)
        if family is None:
            raise NotFound()
        expl = reads.explanation(s, p.family_id, lang)
        if expl is None:
            raise NotFound()
        ents = queries.entitlements(s, p.family_id)
        offers = queries.offers(s, p.family_id)
    # one entry for the page (card, explanation, entitlements), as the API's card read
    log_access(request, p, "read own family card", p.family_id)
    return render(
        request,
        "citizen/me.html",
        p,
        family=family,
        expl=expl,
        entitlements=ents,
        offers=offers,
        **_appeals(request, p),
    )


@router.post("/web/me/offers/{offer_id}", response_class=HTMLResponse)
def answer_offer(
    request: Request,
    offer_id: int,
    answer: Annotated[str, Form(pattern="^(consent|decline)$")],
    p: Principal = Depends(citizen),
):
    with request.app.state.sessions() as s:
        offer = s.get(Offer, offer_id)
    if offer is None or offer.family_id != p.family_id:
        raise NotFound()
    fn = consent if answer == "consent" else decline
    error = None
    try:
        fn(offer_id, url=request.app.state.url, on=date.today())
        log_access(request, p, f"{answer} offer {offer_id} ({offer.measure})", p.family_id)
    except OfferError as e:
        error = str(e)
    if not is_htmx(request):
        return back("/web/me#offers")
    with request.app.state.sessions() as s:
        o = next(x for x in queries.offers(s, p.family_id) if x["id"] == offer_id)
    return render(request, "citizen/_offer.html", p, o=o, error=error)


@router.post("/web/me/appeals", response_class=HTMLResponse)
def appeal(
    request: Request,
    item: Annotated[str, Form(max_length=64)],
    claimed_value: Annotated[str, Form(max_length=200)],
    reason: Annotated[str, Form(max_length=2000)],
    p: Principal = Depends(citizen),
):
    error, filed = None, None
    try:
        a = file_appeal(
            request.app.state.sessions, p.family_id, item, claimed_value, reason, p.username
        )
        log_access(request, p, f"appeal {a.id} on {item}", p.family_id)
        filed = a.id
    except AppealError:
        error = True
    if not is_htmx(request):
        return back("/web/me#appeals")
    return render(
        request,
        "citizen/_appeals.html",
        p,
        **_appeals(request, p, error=error, filed=filed),
    )


@router.get("/web/me/access", response_class=HTMLResponse)
def who_looked(request: Request, p: Principal = Depends(citizen)):
    rows = access_log.who_looked(request.app.state.sessions, p.family_id)
    return render(request, "citizen/access.html", p, rows=rows)
