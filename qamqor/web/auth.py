"""Log-in (one form, entered per role), log-out, the language switch and the home redirect.
The session cookie holds the API's own JWT (`issue_token`), HttpOnly and SameSite=Lax."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from qamqor.api.security import Principal
from qamqor.ops.users import TOKEN_MINUTES, AuthError, authenticate, issue_token
from qamqor.web import analyst, i18n, labels
from qamqor.web.core import HOME, TOKEN_COOKIE, render, role, safe_next, viewer

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/web/", status_code=303)


@router.get("/web/")
def home(request: Request) -> RedirectResponse:
    p = viewer(request)
    return RedirectResponse(HOME[p.role] if p else "/web/login", status_code=303)


@router.get("/web/login")
def login_form(request: Request, role: str | None = None, next: str | None = None):
    chosen = role if role in labels.ROLES else None
    return render(request, "login.html", None, chosen=chosen, next=safe_next(next, ""))


@router.post("/web/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    role: Annotated[str, Form(max_length=16)] = "",
    next: Annotated[str, Form(max_length=512)] = "",
):
    chosen = role if role in labels.ROLES else None
    try:
        user = authenticate(request.app.state.sessions, username, password)
    except AuthError:
        user = None
    if user is None or (chosen and user.role != chosen):
        return render(
            request, "login.html", None, 401, chosen=chosen, next=safe_next(next, ""), failed=True
        )
    if user.role in ("analyst", "auditor"):
        analyst.warm(request.app)  # the dashboard's aggregates, computed in the background
    token = issue_token(user, request.app.state.key)
    out = RedirectResponse(safe_next(next, HOME[user.role]), status_code=303)
    out.set_cookie(
        TOKEN_COOKIE, token, max_age=TOKEN_MINUTES * 60, httponly=True, samesite="lax", path="/"
    )
    if not request.cookies.get(i18n.COOKIE) and user.language in i18n.LANGS:
        out.set_cookie(i18n.COOKIE, user.language, max_age=365 * 86400, samesite="lax", path="/")
    return out


@router.post("/web/logout")
def logout() -> RedirectResponse:
    out = RedirectResponse("/web/login", status_code=303)
    out.delete_cookie(TOKEN_COOKIE, path="/")
    return out


@router.get("/web/lang/{lang}")
def switch_language(lang: str, next: str | None = None) -> RedirectResponse:
    out = RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LANGS:
        out.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return out


@router.get("/web/integrator")
def integrator(request: Request, p: Principal = Depends(role("integrator"))):
    return render(request, "integrator.html", p)
