"""The web pages in real headless Chromium: every role signs in, opens its pages, clicks and
submits (a consent, an appeal, a case note and plan action, a social contract and its outcome, a
reform, audit filters) in kk, ru and en; no page overflows at 1280×800 or 390×844; no link a
role sees is broken or forbidden; and the catalogues translate every string."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from qamqor.web.core import NAV
from qamqor.web.i18n import LANGS, LOCALES, po_path, translator

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "qamqor-demo"  # the demo users of qamqor.ops.demo
RUN = date(2025, 10, 1)
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def _open(browser, server: str, user: str, lang: str, viewport: str = "desktop"):
    """A new browser page signed in as `user` through the log-in form, in `lang`."""
    w, h = VIEWPORTS[viewport]
    ctx = browser.new_context(viewport={"width": w, "height": h}, base_url=server)
    ctx.add_cookies([{"name": "lang", "value": lang, "url": server}])
    page = ctx.new_page()
    page.goto("/web/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state("load")
    assert "/web/login" not in page.url, f"{user} could not sign in"
    return page


def _no_overflow(page) -> None:
    """No horizontal scrolling: the page is at most as wide as the window (charts redraw on a
    resize, so this waits up to 5 s for the layout to settle)."""
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    try:
        page.wait_for_function(fits, timeout=5000)
    except PlaywrightTimeout:
        width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        pytest.fail(f"{page.url}: content {width}px wider than the window {inner}px")


def _check_layout(page, user: str, lang: str, paths: list[str], artifacts: Path) -> None:
    """Each path at both viewports (the page resized in place): no horizontal overflow; a
    screenshot of each."""
    for path in paths:
        page.set_viewport_size(dict(zip(("width", "height"), VIEWPORTS["desktop"], strict=True)))
        page.goto(path)
        if page.locator(".chart").count():
            page.wait_for_selector(".chart .main-svg")
        for vp, (w, h) in VIEWPORTS.items():
            page.set_viewport_size({"width": w, "height": h})
            _no_overflow(page)
            name = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
            page.screenshot(path=str(artifacts / f"web_{user}_{lang}_{vp}_{name}.png"))
    page.context.close()


def _nav(page) -> list[str]:
    return page.eval_on_selector_all("nav.main a", "els => els.map(e => e.getAttribute('href'))")


@pytest.mark.parametrize("lang", LANGS)
def test_citizen(browser, server, artifacts, lang):
    _ = translator(lang)
    page = _open(browser, server, "citizen", lang)
    assert page.url.endswith("/web/me")
    assert page.get_attribute("html", "lang") == lang
    assert page.inner_text("h1") == _("My family")
    assert _nav(page) == [p for p, _t in NAV["citizen"]]
    # every point of the level explained, with the total
    assert page.locator("table.explain tbody tr").count() >= 10
    assert _("Total") in page.inner_text("table.explain tfoot")
    # consent to one offer (HTMX swaps the row)
    row = page.locator("tr[id^=offer-]", has=page.locator("button[value=consent]")).first
    offer = row.get_attribute("id")
    row.locator("button[value=consent]").click()
    page.wait_for_function(f"!document.querySelector('#{offer} button')")
    assert _("consented") in page.inner_text(f"#{offer} .status")
    # an appeal
    page.select_option("select[name=item]", "working")
    page.fill("input[name=claimed_value]", "1")
    page.fill("textarea[name=reason]", "Я работаю с 1 сентября / since 1 September")
    page.click("#appeals form button[type=submit]")
    page.wait_for_selector("#appeals p.ok")
    assert "working" not in page.inner_text("#appeals p.ok")
    assert page.locator("#appeals tbody tr").count() >= 1
    page.screenshot(path=str(artifacts / f"web_citizen_{lang}_after_answers.png"), full_page=True)
    # who looked: the citizen's own readings are there
    page.click("nav.main a[href='/web/me/access']")
    assert page.inner_text("h1") == _("Who looked at my data")
    assert "citizen" in page.inner_text("table")
    assert _("read the family card") in page.inner_text("table")  # the log's action, translated
    _check_layout(page, "citizen", lang, ["/web/me", "/web/me/access"], artifacts)


@pytest.mark.parametrize("lang", LANGS)
def test_worker(browser, server, artifacts, client_for, lang):
    _ = translator(lang)
    page = _open(browser, server, "worker", lang)
    assert page.url.endswith("/web/queue")
    assert _nav(page) == [p for p, _t in NAV["worker"]]
    urgency = [
        int(x)
        for x in page.eval_on_selector_all(
            "#queue tbody tr td:nth-child(4)", "els => els.map(e => e.textContent)"
        )
    ]
    assert urgency and urgency == sorted(urgency, reverse=True)
    page.click("#queue tbody tr:first-child td:first-child a")
    case_url = page.url
    note = f"Визит к семье, {lang}: всё в порядке"
    page.fill("#notes textarea[name=text]", note)
    page.click("#notes button[type=submit]")
    page.wait_for_selector(f"#notes li:has-text('{note}')")
    # a plan action, then mark it done
    page.fill("#plan input[name=action]", f"Enrol the child in school ({lang})")
    page.click("#plan form.card button[type=submit]")
    row = page.locator("#plan tr", has_text=f"Enrol the child in school ({lang})")
    row.locator("button").click()
    page.wait_for_selector(f"#plan tr:has-text('({lang})') >> text=/\\d{{4}}-\\d\\d-\\d\\d/")
    # a social contract, then what came of it (HTMX swaps the contracts section)
    page.click("#contracts details summary")
    page.fill("#contracts input[name=person_id]", f"member-{lang}")
    page.fill("#contracts textarea[name=obligations]", f"Two job interviews a month ({lang})")
    page.fill("#contracts input[name=employment_measure]", "youth practice")
    page.click("#contracts details button[type=submit]")
    row = page.locator("#contracts tr[id^=contract-]", has_text=f"interviews a month ({lang})")
    row.wait_for()
    assert row.locator(".outcome").inner_text() == "—"
    assert _("Outcome of the contract") in row.inner_text()
    outcome = f"Трудоустроен(а), employed ({lang})"
    row.locator("input[name=outcome]").fill(outcome)
    row.locator("button", has_text=_("Record outcome")).click()
    page.wait_for_selector(f"#contracts .outcome:text-is('{outcome}')")
    contract = int(row.get_attribute("id").removeprefix("contract-"))
    case_id = int(case_url.rstrip("/").rsplit("/", 1)[1])
    token = httpx.post(
        f"{server}/auth/token", data={"username": "worker", "password": PASSWORD}
    ).json()["access_token"]
    api = httpx.get(f"{server}/cases/{case_id}", headers={"Authorization": f"Bearer {token}"})
    assert {k["id"]: k["outcome"] for k in api.json()["contracts"]}[contract] == outcome
    page.reload()
    assert page.locator(f"#contract-{contract} .outcome").inner_text() == outcome
    page.screenshot(path=str(artifacts / f"web_worker_{lang}_case.png"), full_page=True)
    # the family card: every point explained, why/why not loaded by HTMX
    page.click("main p a[href^='/web/families/']")
    family_url = page.url
    assert page.locator("table.explain tbody tr").count() >= 10
    page.wait_for_selector("#why details")
    assert page.locator("#why details").count() >= 5
    page.screenshot(path=str(artifacts / f"web_worker_{lang}_family.png"), full_page=True)
    page.click("nav.main a[href='/web/children']")
    assert page.inner_text("h1").startswith(_("Children's register"))
    # decide a citizen's appeal (the citizen's family is in this worker's district)
    form = {"item": "students", "claimed_value": "1", "reason": f"student ({lang})"}
    assert client_for("citizen").post("/web/me/appeals", data=form).status_code in (200, 303)
    page.click("nav.main a[href='/web/appeals']")
    row = page.locator("#appeals-list tbody tr", has=page.locator("button[value=no]")).first
    appeal = row.get_attribute("id")
    row.locator("input[name=decision]").fill(f"Не подтверждено документами ({lang})")
    row.locator("button[value=no]").click()
    page.wait_for_function(f"!document.querySelector('#{appeal} button')")
    assert _("rejected") in page.inner_text(f"#{appeal} .status")
    # a family of another district does not exist for this worker
    other = client_for("worker2").get("/web/queue").text
    fid = re.search(r"/web/families/([0-9a-f]+)", other).group(1)
    assert client_for("worker").get(f"/web/families/{fid}").status_code == 404
    paths = ["/web/queue", "/web/appeals", "/web/children", urlsplit(case_url).path]
    paths.append(urlsplit(family_url).path)
    _check_layout(page, "worker", lang, paths, artifacts)


@pytest.mark.parametrize("lang", LANGS)
def test_analyst(browser, server, artifacts, lang):
    _ = translator(lang)
    page = _open(browser, server, "analyst", lang)
    assert page.url.endswith("/web/dashboard")
    assert _nav(page) == [p for p, _t in NAV["analyst"]]
    page.wait_for_selector(".chart .main-svg")  # Plotly drew the charts
    assert page.locator(".chart .main-svg").count() >= 3
    assert _("Alkire–Foster multidimensional poverty") in page.inner_text("#af")
    assert "<10" in page.inner_text("main")  # small cells are suppressed
    page.click("main table a[href^='/web/dashboard/regions/']")
    page.wait_for_selector(".chart .main-svg")
    page.click("nav.main a[href='/web/measures']")
    assert page.locator("details[id^=m-]").count() >= 10
    page.click("nav.main a[href='/web/reforms']")
    page.click("a[href='/web/reforms?example=asp-poverty-line-40pct']")
    page.click("form.card button[type=submit]")
    page.wait_for_selector("#impact-result", timeout=120_000)
    assert _("Change, ₸ a year") in page.inner_text("#impact-total")
    page.wait_for_selector("#impact .chart .main-svg")
    _no_overflow(page)
    page.screenshot(path=str(artifacts / f"web_analyst_{lang}_reform.png"), full_page=True)
    paths = ["/web/dashboard", "/web/dashboard/regions/KZ-75", "/web/measures", "/web/reforms"]
    _check_layout(page, "analyst", lang, paths, artifacts)


@pytest.mark.parametrize("lang", LANGS)
def test_auditor(browser, server, artifacts, lang):
    _ = translator(lang)
    page = _open(browser, server, "auditor", lang)
    assert page.url.endswith("/web/audit")
    assert _nav(page) == [p for p, _t in NAV["auditor"]]
    total = page.inner_text("#totals")
    kind = page.eval_on_selector("select[name=type] option:nth-child(2)", "e => e.value")
    page.select_option("select[name=type]", kind)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state("load")
    assert page.inner_text("#totals") != total
    first = page.locator("#findings tbody tr").first
    first.locator("summary").click()
    assert first.locator("details li, details pre").count() >= 1
    first.locator("a[href^='/web/audit/payments/']").click()
    assert page.inner_text("h1").startswith(_("Payment trail"))
    page.click("main p a[href^='/web/families/']")
    assert page.locator("table.explain tbody tr").count() >= 10
    assert page.locator("#plan, #notes, form[action*='/cases/']").count() == 0  # read-only
    _check_layout(page, "auditor", lang, ["/web/audit", "/web/dashboard"], artifacts)


def _route(target: str) -> str:
    """A link's route: ids replaced, query values dropped (one page of each route is opened)."""
    path, _sep, query = target.partition("?")
    path = re.sub(r"/(?:[0-9a-f]{16}|\d+)(?=/|$)", "/{id}", path)
    keys = sorted(k.split("=")[0] for k in query.split("&") if k)
    return path + ("?" + "&".join(keys) if keys else "")


@pytest.mark.parametrize("user", ["citizen", "worker", "analyst", "auditor", "integrator"])
def test_links_work_and_stay_within_the_role(client_for, user):
    """Crawl the role's pages from its start page, opening one link of each route (a family
    card, a case, a region…): each answers below 400 (a link to another role's page would be
    403), and every page's navigation lists exactly the role's pages."""
    c = client_for(user)
    start = c.get("/web/", follow_redirects=True)
    assert start.status_code == 200
    seen, todo, pages = set(), [str(start.url.path)], 0
    while todo:
        path = todo.pop(0)
        if _route(path) in seen:
            continue
        seen.add(_route(path))
        r = c.get(path)
        assert r.status_code < 400, f"{user}: {path} answered {r.status_code}"
        if "text/html" not in r.headers.get("content-type", ""):
            continue
        pages += 1
        nav = re.findall(r'<nav class="main".*?</nav>', r.text, re.S)
        if nav:
            assert re.findall(r'href="([^"]+)"', nav[0]) == [p for p, _t in NAV[user]]
        for href in re.findall(r'(?:href|src)="([^"#]+)', r.text):
            href = href.replace("&amp;", "&")
            url = urlsplit(urljoin(path, href))
            if url.netloc or "/web/lang/" in url.path:
                continue
            target = url.path + (f"?{url.query}" if url.query else "")
            if _route(target) not in seen and target.startswith(("/web", "/docs")):
                todo.append(target)
    assert pages >= 2


def test_other_roles_pages_are_refused(client_for):
    c = client_for("citizen")
    for path in ("/web/queue", "/web/dashboard", "/web/audit", "/web/measures"):
        assert c.get(path).status_code == 403
    assert client_for("analyst").get("/web/families/0000000000000000").status_code == 403
    anonymous = client_for("auditor")
    anonymous.cookies.clear()
    assert anonymous.get("/web/audit").status_code == 303


def test_catalogues_translate_every_string(tmp_path):
    """The .pot matches the sources, and kk, ru and en give every msgid a non-empty msgstr."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"), "extract", "-F", "babel.cfg", "-k", "N_",
            "--no-location", "--omit-header", "--sort-output", "-o", str(pot), "qamqor/web",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )  # fmt: skip
    with pot.open("rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    with (LOCALES / "messages.pot").open("rb") as f:
        kept = {m.id for m in read_po(f) if m.id}
    assert extracted == kept, "messages.pot is stale: run the extract command of docs/web.md"
    for lang in LANGS:
        with po_path(lang).open("rb") as f:
            cat = read_po(f, locale=lang)
        have = {m.id: m for m in cat if m.id}
        missing = sorted(str(i) for i in extracted if i not in have)
        empty = sorted(str(i) for i, m in have.items() if i in extracted and not m.string)
        fuzzy = sorted(str(i) for i, m in have.items() if m.fuzzy)
        assert not missing, f"{lang}: missing {missing[:5]}"
        assert not empty, f"{lang}: untranslated {empty[:5]}"
        assert not fuzzy, f"{lang}: fuzzy {fuzzy[:5]}"


def test_card_history_names_what_changed(nation, tmp_path):
    """Two kept runs of the card: the history lists the changed items of the later run."""
    import shutil

    from qamqor.engine import connect, sql_path
    from qamqor.web.reads import card_history

    data = tmp_path / "d"
    (data / "cards" / "history").mkdir(parents=True)
    first = data / "cards" / "history" / "2025-10-01"
    shutil.copytree(nation / "cards" / "history" / "2025-10-01", first)
    second = data / "cards" / "history" / "2025-11-01"
    second.mkdir()
    con = connect(threads=1)
    fid = con.execute(
        f"SELECT family_id FROM read_parquet({sql_path(first / 'families.parquet')}) LIMIT 1"
    ).fetchone()[0]
    con.execute(
        f"""COPY (SELECT * REPLACE (CASE WHEN family_id = '{fid}' THEN working + 1
                                          ELSE working END AS working)
                  FROM read_parquet({sql_path(first / "families.parquet")}))
            TO {sql_path(second / "families.parquet")} (FORMAT parquet)"""
    )
    con.close()
    history = card_history(data, fid)
    assert [h["date"] for h in history] == ["2025-11-01", "2025-10-01"]
    assert [c["item"] for c in history[0]["changes"]] == ["working"]
    assert history[0]["changes"][0]["after"] == history[0]["changes"][0]["before"] + 1


def test_page_readers_match_the_api(nation):
    """The pages' faster readers give what the API's do: the level explanation and members."""
    from qamqor.api import queries
    from qamqor.api.routes.common import explanation
    from qamqor.store.access import User
    from qamqor.store.db import database_url, session_factory
    from qamqor.web import reads
    from qamqor.web.actions import action_text

    sessions = session_factory(database_url(nation))
    with sessions() as s:
        fid = s.get(User, "citizen").family_id
        for lang in LANGS:
            assert reads.explanation(s, fid, lang) == explanation(s, fid, lang)
        assert reads.explanation(s, "no-such-family", "en") is None
    members = queries.members(nation, fid)
    assert members and {m["role"] for m in members} & {"head", "spouse", "child"}
    _ = translator("ru")
    assert action_text("case 12: note", _) == "добавил(а) заметку в случай № 12"
    assert action_text("consent offer 3 (asp)", _) == "дал(а) согласие на предложение № 3"
    assert action_text("something new", _) == "something new"


def test_templates_have_no_untranslated_text():
    """Outside `{{ … }}` and `{% … %}` a template holds markup only: every word a user reads
    goes through `_()` (and so through the catalogues checked above)."""
    letters = r"[A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі]{2,}"
    for f in sorted((ROOT / "qamqor" / "web" / "templates").rglob("*.html")):
        text = f.read_text()
        for pattern in (r"\{#.*?#\}", r"\{\{.*?\}\}|\{%.*?%\}", r"<script.*?</script>"):
            text = re.sub(pattern, " ", text, flags=re.S)
        attrs = re.findall(r'(?:title|alt|placeholder|aria-label)="([^"]*)"', text)
        text = re.sub(r"<[^>]+>|&\w+;", " ", text)
        words = [w for w in re.findall(letters, " ".join([text, *attrs])) if w != "qamqor"]
        assert not words, f"{f.relative_to(ROOT)}: text outside _(): {words[:5]}"


def test_dashboard_answers_at_once_while_its_figures_are_computed(client_for, monkeypatch):
    """After a start the national figures take a while (≈ 10 s at 1 M families): the dashboard,
    a region and the measures answer at once, saying so, and show the figures once ready."""
    import threading
    import time

    from qamqor.api import queries
    from qamqor.web import reads

    c = client_for("analyst")
    deadline = time.monotonic() + 60
    while "data-pending" in c.get("/web/dashboard").text:  # the start's warm-up is over
        assert time.monotonic() < deadline, "the figures never arrived"
        time.sleep(0.2)
    gate = threading.Event()
    real = queries.level_stats_all

    def slow(s):
        gate.wait(60)
        return real(s)

    slow.__name__ = real.__name__  # the same cache key
    monkeypatch.setattr(queries, "level_stats_all", slow)
    with reads._lock:
        for key in [k for k in reads._cache if "level_stats_all" in k]:
            del reads._cache[key]
    _ = translator("ru")
    waiting = _(
        "The national figures are being computed after the server's start. This page reloads "
        "itself every few seconds until they are ready."
    )
    c = client_for("analyst")  # signing in starts the computation again
    try:
        for path in ("/web/dashboard", "/web/dashboard/regions/KZ-75"):
            t = time.perf_counter()
            r = c.get(path)
            assert time.perf_counter() - t < 5
            assert r.status_code == 200 and "data-pending" in r.text and waiting in r.text
            assert 'http-equiv="refresh"' in r.text and "<10" not in r.text
    finally:
        gate.set()
    deadline = time.monotonic() + 60
    while "data-pending" in (r := c.get("/web/dashboard")).text:
        assert time.monotonic() < deadline, "the figures never arrived"
        time.sleep(0.2)
    assert _("Alkire–Foster multidimensional poverty") in r.text and waiting not in r.text


def test_dashboard_aggregates_are_the_api_s(nation):
    """The one scan behind the pages (`level_stats_all`) gives the API's `level_stats` for the
    nation and every grouping, suppressed cells included."""
    from qamqor.api import queries
    from qamqor.store.db import database_url, session_factory

    with session_factory(database_url(nation))() as s:
        every = queries.level_stats_all(s)
        assert set(every) == {"national", *queries.GROUPS}
        for by in (None, *queries.GROUPS):
            assert every[by or "national"] == queries.level_stats(s, by)
        assert any(c["suppressed"] for c in every["district"]["cells"])


def test_why_reads_the_same_without_scanning(nation, monkeypatch):
    """Why / why not of families with family-level and person-level measures: the same when
    qamqor.engine.lookup reads the family's row groups with PyArrow (here every output is one
    row group, so ordered by family) as when DuckDB scans the outputs; and every measure the
    batch pays the family is explained as due."""
    import duckdb

    from qamqor.engine import lookup
    from qamqor.measures.explain import explain_measures

    ent = nation / "entitlements" / "entitlements.parquet"
    fids = [
        f
        for (f,) in duckdb.sql(
            f"SELECT family_id FROM (SELECT family_id, bool_or(person_id IS NOT NULL) AS p "
            f"FROM '{ent}' GROUP BY 1) ORDER BY p, family_id LIMIT 4"
        ).fetchall()
    ]
    fids += [
        f
        for (f,) in duckdb.sql(
            f"SELECT DISTINCT family_id FROM '{ent}' WHERE person_id IS NOT NULL ORDER BY 1 LIMIT 4"
        ).fetchall()
    ]
    for rel in ("cards/history/2025-10-01/families.parquet", "entitlements/persons.parquet"):
        assert lookup._index(nation / rel) is not None  # read by row group, not scanned
    read = {f: [e.as_dict() for e in explain_measures(nation, f, RUN)] for f in fids}
    monkeypatch.setattr(lookup, "_index", lambda path: None)  # every read a DuckDB scan
    monkeypatch.setattr(lookup, "_ask", lambda *a: None)
    for f in fids:
        scanned = [e.as_dict() for e in explain_measures(nation, f, RUN)]
        assert scanned == read[f]
        due = duckdb.sql(
            f"SELECT measure, sum(amount) FROM '{ent}' WHERE family_id = '{f}' GROUP BY 1"
        )
        for measure, amount in due.fetchall():
            [e] = [e for e in read[f] if e["measure"] == measure]
            # the batch then keeps the larger of two incompatible measures: never more
            assert e["eligible"] and e["total"] >= amount - 0.01
