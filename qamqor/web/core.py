"""What every page uses: the template environment, the signed-in principal from the session
cookie, role checks (a page of another role is 403, never linked), rendering with the
language's translator, and the navigation each role sees."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from qamqor.api.security import Principal, principal_from_token
from qamqor.countries import PACKS_DIR, load_country
from qamqor.measures.catalogue import Catalogue, load_catalogue
from qamqor.web import actions, i18n, labels
from qamqor.web.i18n import N_

TEMPLATES = Path(__file__).parent / "templates"
TOKEN_COOKIE = "qamqor_session"

# what each role may open: (path, label); the navigation shows exactly these
NAV = {
    "citizen": [("/web/me", N_("My family")), ("/web/me/access", N_("Who looked at my data"))],
    "worker": [
        ("/web/queue", N_("Case queue")),
        ("/web/appeals", N_("Appeals")),
        ("/web/children", N_("Children's register")),
    ],
    "analyst": [
        ("/web/dashboard", N_("National dashboard")),
        ("/web/measures", N_("Measures")),
        ("/web/reforms", N_("Reforms")),
    ],
    "auditor": [("/web/audit", N_("Audit findings")), ("/web/dashboard", N_("National dashboard"))],
    "integrator": [("/web/integrator", N_("Registry API"))],
}
HOME = {role: items[0][0] for role, items in NAV.items()}


class LoginRequired(Exception):
    """No valid session: the page redirects to the log-in form."""


class Forbidden(Exception):
    """The signed-in role may not open this page."""


class NotFound(Exception):
    """Nothing to show (or nothing this user may see: a worker's other districts)."""


@cache
def env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def prepare() -> None:
    """Compile every template and read the country's and the catalogue's names once, at the
    app's start (≈ 0.5 s), rather than on the first request of each page."""
    e = env()
    for name in e.list_templates():
        e.get_template(name)
    region_names()
    measure_names()


@cache
def _catalogue(stamp: tuple) -> Catalogue:
    return load_catalogue()


def catalogue() -> Catalogue:
    """The measures' catalogue, parsed again only when one of its files changes."""
    folder = PACKS_DIR / "kz" / "measures"
    return _catalogue(tuple((f.name, f.stat().st_mtime_ns) for f in sorted(folder.glob("*.yaml"))))


def measure_names() -> dict[str, dict[str, str]]:
    return {m.id: m.name for m in catalogue().measures}


@cache
def region_names() -> dict[str, dict[str, str]]:
    c = load_country()
    out = {r.code: r.name for r in c.regions}
    out |= {d.code: d.name for d in c.districts}
    return out


def viewer(request: Request) -> Principal | None:
    """The signed-in principal, or None (no cookie, expired or unknown token)."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    try:
        return principal_from_token(request, token)
    except HTTPException:
        return None


def role(*roles: str):
    """A dependency admitting the given roles: log-in redirect without a session, 403 otherwise.
    POSTs must come from this site (Origin, when sent, names this host)."""

    def check(request: Request) -> Principal:
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.url.netloc:
                raise Forbidden()
        p = viewer(request)
        if p is None:
            raise LoginRequired()
        if p.role not in roles:
            raise Forbidden()
        request.state.principal = p
        return p

    return check


def lang_of(request: Request, p: Principal | None = None) -> str:
    return i18n.pick_lang(request.cookies.get(i18n.COOKIE), p.language if p else None)


def safe_next(target: str | None, default: str = "/web/") -> str:
    """Only local paths (no scheme, no host, no //) are followed after log-in or a switch."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def context(request: Request, p: Principal | None) -> dict:
    lang = lang_of(request, p)
    _ = i18n.translator(lang)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    names = region_names()
    return {
        "request": request,
        "_": _,
        "lang": lang,
        "langs": i18n.LANGS,
        "p": p,
        "nav": NAV.get(p.role, []) if p else [],
        "here": here,
        "here_q": quote(here, safe=""),
        "num": i18n.number(lang),
        "pct": i18n.percent(lang),
        "labels": labels,
        "level_name": lambda x: _(labels.LEVELS[x]) if x in labels.LEVELS else x,
        "place": lambda code: (names.get(code) or {}).get(lang, code) if code else "—",
        "val": lambda v: value_text(v, lang, _),
        "action": lambda a: actions.action_text(a, _),
        "purpose": lambda a: actions.purpose_text(a, _),
        "measure_name": lambda m: (measure_names().get(m) or {}).get(lang, m),
        "measure_list": lambda ids, sep=", ": sep.join(
            (measure_names().get(m) or {}).get(lang, m) for m in ids
        ),
        "label": lambda table, key: _(table[key]) if key in table else key,
    }


def value_text(v, lang: str, _) -> str:
    """A card value for people: yes/no, a number with up to 2 decimals, a dash for nothing."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return _("yes") if v else _("no")
    if isinstance(v, int | float):
        return i18n.format_decimal(v, format="#,##0.##", locale=lang)
    return str(v)


def render(
    request: Request, template: str, p: Principal | None = None, status: int = 200, **values
) -> HTMLResponse:
    ctx = context(request, p) | values
    html = env().get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def back(url: str) -> RedirectResponse:
    """After a form without HTMX: back to the page (303 so the browser GETs it)."""
    return RedirectResponse(url, status_code=303)


def install_handlers(app) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired):
        target = "/web/login?next=" + quote(request.url.path, safe="")
        if is_htmx(request):
            return HTMLResponse("", headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _: Forbidden):
        return render(request, "error.html", viewer(request), 403, code=403)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, _: NotFound):
        return render(request, "error.html", viewer(request), 404, code=404)
