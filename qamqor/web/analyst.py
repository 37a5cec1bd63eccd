"""The analyst's pages (auditors may read the dashboard too): the national dashboard, a region's
breakdown, the catalogue of measures and the reform form. Aggregates only: any cell of fewer
than MIN_CELL families is shown as suppressed."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

import qamqor
from qamqor.api import queries
from qamqor.api.security import Principal
from qamqor.engine import background
from qamqor.measures.catalogue import MeasureError
from qamqor.measures.simulate import simulate
from qamqor.web import charts, reads
from qamqor.web.core import (
    NotFound,
    catalogue,
    lang_of,
    measure_names,
    prepare,
    region_names,
    render,
    role,
)
from qamqor.web.i18n import translator
from qamqor.web.labels import LEVELS

router = APIRouter(include_in_schema=False)
stats = role("analyst", "auditor")
analyst = role("analyst")
EXAMPLES = Path(qamqor.__file__).resolve().parents[1] / "examples"
LEVEL_KEYS = tuple(LEVELS)


def aggregate(app, key: tuple, fn, *args, wait: bool = True):
    """`fn(session, *args)` for the published run, cached (`reads.cached`) per store and date;
    with `wait=False`, None while it is first being computed (`reads.ready`)."""

    def compute():
        with app.state.sessions() as s:
            return fn(s, *args)

    return (reads.cached if wait else reads.ready)((*key, fn.__name__, *args), compute)


def pending(request: Request, p: Principal, title: str) -> HTMLResponse:
    """The page of national figures that are still being computed (after a start): it says so
    and reloads itself."""
    return render(request, "analyst/pending.html", p, title=title)


def warm(app) -> None:
    """Compute the dashboard's aggregates in the background (at the app's start and when an
    analyst or an auditor signs in), so the first dashboard does not wait for them; the first
    time, compile the templates and load Plotly's validators at once (Python work in a thread
    would slow the first requests as much as it saves them)."""
    prepare()
    charts.warm()

    def run() -> None:
        try:
            with app.state.sessions() as s:
                key = (app.state.url, queries.run_date(s))
                reads.warm_explanation(s)
            for fn in (queries.level_stats_all, queries.measure_stats, reads.money_at_risk):
                aggregate(app, key, fn)
            reads.catalogue_overlaps(app.state.data_dir, key[1])
        except queries.NotPublished:
            pass

    background(run, "dashboard-warm-up")


def _pivot(cells: list[dict], key: str) -> tuple[list[str], dict[str, dict[str, dict]]]:
    groups: dict[str, dict[str, dict]] = {}
    for c in cells:
        groups.setdefault(str(c[key]), {})[c["level"]] = c
    return sorted(groups), groups


@router.get("/web/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, p: Principal = Depends(stats)):
    lang = lang_of(request, p)
    _ = translator(lang)
    names = {k: _(v) for k, v in LEVELS.items()}
    place = region_names()
    app = request.app
    with app.state.sessions() as s:
        key = (app.state.url, queries.run_date(s))
        runs = queries.runs(s)
    levels = aggregate(app, key, queries.level_stats_all, wait=False)
    measures = aggregate(app, key, queries.measure_stats, wait=False)
    risk = aggregate(app, key, reads.money_at_risk, wait=False)
    if levels is None or measures is None or risk is None:
        return pending(request, p, _("National dashboard"))
    national, by_region, by_urban = levels["national"], levels["region"], levels["urban"]
    summary = reads.levels_summary(request.app.state.data_dir)
    regions, region_cells = _pivot(by_region["cells"], "region")
    urban_keys, urban_cells = _pivot(by_urban["cells"], "urban")
    trend = reads.level_trend(request.app.state.data_dir)
    nat = {c["level"]: c for c in national["cells"]}
    families = sum(c["families"] or 0 for c in national["cells"])
    people = sum(c["people"] or 0 for c in national["cells"])
    region_label = [place.get(r, {}).get(lang, r) for r in regions]

    def figures() -> dict[str, str]:
        figs = {
            "levels": charts.bars(
                [f"{k} {names[k]}" for k in LEVEL_KEYS],
                [(nat.get(k) or {}).get("families") for k in LEVEL_KEYS],
                _("Families by well-being level"),
                y=_("families"),
                colours=list(charts.LEVEL_COLOURS.values()),
            ),
            "regions": charts.stacked_levels(
                region_label,
                {
                    k: [(region_cells[r].get(k) or {}).get("families") for r in regions]
                    for k in LEVEL_KEYS
                },
                _("Families by level and region"),
                names,
                x=_("families"),
            ),
            "measures": charts.hbars(
                [_measure(m["measure"], lang) for m in measures["cells"]],
                [m["annual_cost"] for m in measures["cells"]],
                _("Annual cost of each measure, ₸"),
            ),
        }
        if trend:
            figs["trend"] = charts.lines(
                [t["date"] for t in trend],
                {k: [t["levels"].get(k) for t in trend] for k in LEVEL_KEYS},
                _("Families by level across runs"),
                names,
            )
        return figs

    # the figures follow the cached aggregates (same key) and the language
    figs = reads.cached((*key, "figures", lang, len(trend)), figures)
    cost = sum(m["annual_cost"] or 0 for m in measures["cells"])
    return render(
        request,
        "analyst/dashboard.html",
        p,
        nat=nat,
        families=families,
        people=people,
        regions=regions,
        region_cells=region_cells,
        urban_keys=urban_keys,
        urban_cells=urban_cells,
        summary=summary,
        measures=measures["cells"],
        cost=cost,
        risk=risk,
        runs=runs,
        trend=trend,
        figs=figs,
        level_keys=LEVEL_KEYS,
        min_cell=queries.MIN_CELL,
        run_date=national["run_date"],
    )


def _measure(measure_id: str, lang: str) -> str:
    return (measure_names().get(measure_id) or {}).get(lang, measure_id)


@router.get("/web/dashboard/regions/{code}", response_class=HTMLResponse)
def region(request: Request, code: str, p: Principal = Depends(stats)):
    lang = lang_of(request, p)
    _ = translator(lang)
    place = region_names()
    if code not in place:
        raise NotFound()
    with request.app.state.sessions() as s:
        key = (request.app.state.url, queries.run_date(s))
    levels = aggregate(request.app, key, queries.level_stats_all, wait=False)
    if levels is None:
        return pending(request, p, place[code].get(lang, code))
    cells = [c for c in levels["district"]["cells"] if c["district"].startswith(code + "-")]
    districts, district_cells = _pivot(cells, "district")
    names = {k: _(v) for k, v in LEVELS.items()}
    fig = charts.stacked_levels(
        [place.get(d, {}).get(lang, d) for d in districts],
        {k: [(district_cells[d].get(k) or {}).get("families") for d in districts] for k in names},
        _("Families by level and district"),
        names,
        x=_("families"),
    )
    af = reads.levels_summary(request.app.state.data_dir).get("by_region", {}).get(code)
    return render(
        request,
        "analyst/region.html",
        p,
        code=code,
        districts=districts,
        district_cells=district_cells,
        figs={"districts": fig},
        af=af,
        level_keys=LEVEL_KEYS,
        min_cell=queries.MIN_CELL,
    )


@router.get("/web/measures", response_class=HTMLResponse)
def measures(request: Request, p: Principal = Depends(analyst)):
    with request.app.state.sessions() as s:
        on = queries.run_date(s)
    agg = aggregate(request.app, (request.app.state.url, on), queries.measure_stats, wait=False)
    if agg is None:
        return pending(request, p, translator(lang_of(request, p))("Measures"))
    cells = {c["measure"]: c for c in agg["cells"]}
    cat = catalogue()
    overlaps = reads.catalogue_overlaps(request.app.state.data_dir, on)
    return render(
        request,
        "analyst/measures.html",
        p,
        measures=cat.in_force(on),
        stats=cells,
        overlaps=overlaps,
        on=on.isoformat(),
        min_cell=queries.MIN_CELL,
    )


def examples() -> dict[str, str]:
    """The example reform files shipped in examples/ (name -> YAML text)."""
    out = {}
    for f in sorted(EXAMPLES.glob("*.yaml")):
        text = f.read_text()
        if "\nreform:" in "\n" + text:
            out[f.stem] = text
    return out


@router.get("/web/reforms", response_class=HTMLResponse)
def reform_form(request: Request, example: str | None = None, p: Principal = Depends(analyst)):
    known = examples()
    chosen = example if example in known else next(iter(known), None)
    return render(
        request,
        "analyst/reforms.html",
        p,
        examples=known,
        chosen=chosen,
        text=known.get(chosen, ""),
    )


@router.post("/web/reforms", response_class=HTMLResponse)
def run_reform(
    request: Request,
    text: Annotated[str, Form(max_length=100_000)],
    p: Principal = Depends(analyst),
):
    """Run the simulation of the posted reform file over the published run."""
    lang = lang_of(request, p)
    _ = translator(lang)
    data_dir = Path(request.app.state.data_dir)
    with request.app.state.sessions() as s:
        on = queries.run_date(s)
    result, error = None, None
    work = data_dir / "simulations"
    work.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".web-") as tmp:
        path = Path(tmp) / "reform.yaml"
        path.write_text(text)
        try:
            result = simulate(path, data_dir, on, out=Path(tmp) / "impact.json")
        except (MeasureError, yaml.YAMLError, ValueError) as e:
            error = str(e).replace(str(path), "reform.yaml")
    figs = {}
    if result:
        regions = sorted(result["by_region"])
        place = region_names()
        figs["regions"] = charts.hbars(
            [place.get(r, {}).get(lang, r) for r in regions],
            [result["by_region"][r]["annual_change"] for r in regions],
            _("Change of annual payments by region, ₸"),
        )
        deciles = sorted(result["by_decile"], key=int)
        figs["deciles"] = charts.bars(
            deciles,
            [result["by_decile"][d]["annual_change"] for d in deciles],
            _("Change of annual payments by income decile (1 = poorest), ₸"),
            x=_("decile"),
        )
    return render(
        request,
        "analyst/_impact.html",
        p,
        r=result,
        error=error,
        figs=figs,
        min_cell=queries.MIN_CELL,
        on=on.isoformat(),
        today=date.today().isoformat(),
    )
