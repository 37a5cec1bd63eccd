"""The audit report as one self-contained HTML page: Plotly charts (the library inlined, no
network), the targeting and fairness tables, and a findings list filtered by a small script
over the report's own JSON (embedded in the page, identical to report.json)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
from jinja2 import Environment
from plotly.offline import get_plotlyjs

from qamqor.audit.report_page import PAGE

FIGURES = (  # (key, label, kind) of the targeting tables
    ("recipients", "recipient families", "int"),
    ("poor_recipients", "of them poor", "int"),
    ("inclusion_error", "inclusion error", "pct"),
    ("exclusion_error", "exclusion error", "pct"),
    ("coverage_of_poor", "coverage of the poor", "pct"),
    ("share_to_poor", "spending to the poor", "pct"),
    ("share_to_poorest_20", "to the poorest 20 %", "pct"),
    ("share_to_levels_de", "to levels D–E", "pct"),
    ("concentration_index", "concentration index", "num"),
    ("spending_annual", "spending, KZT a year", "kzt"),
)


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def pp(x) -> str:
    return "—" if x is None else f"{100 * x:+.1f} pp"


def kzt(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def num(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def fmt(x, kind: str) -> str:
    return {"pct": pct, "kzt": kzt, "num": num}.get(kind, lambda v: f"{v:,}")(x)


def _html(fig: go.Figure, div_id: str, height: int = 380) -> str:
    fig.update_layout(
        template="plotly_white", height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}
    )
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{height}px",
        config={"displaylogo": False, "responsive": True},
    )


def charts(data: dict) -> dict[str, str]:
    """Plotly divs: findings by type and region, money at risk, targeting curves, errors and
    coverage of the poor by region."""
    s, names = data["findings"], data["regions"]
    by_type = sorted(s["by_type"], key=lambda r: r["findings"])
    out = {
        "findings_by_type": go.Figure(
            go.Bar(
                x=[r["findings"] for r in by_type],
                y=[r["key"] for r in by_type],
                orientation="h",
                name="findings",
            ),
            layout={"title": "Findings by type"},
        ),
        "money_by_type": go.Figure(
            go.Bar(
                x=[r["amount_at_risk"] for r in by_type],
                y=[r["key"] for r in by_type],
                orientation="h",
                marker_color="#c0392b",
                name="KZT a year",
            ),
            layout={"title": "Money at risk by type (KZT a year)"},
        ),
    }
    regions = [r["key"] for r in sorted(s["by_region"], key=lambda r: r["key"])]
    label = [names.get(r, r) for r in regions]
    stacked = go.Figure(layout={"title": "Findings by region and type", "barmode": "stack"})
    for t in sorted({r["type"] for r in s["by_type_region"]}):
        n = {r["region"]: r["findings"] for r in s["by_type_region"] if r["type"] == t}
        stacked.add_bar(x=label, y=[n.get(r, 0) for r in regions], name=t)
    out["findings_by_region"] = stacked
    money = {r["key"]: r["amount_at_risk"] for r in s["by_region"]}
    out["money_by_region"] = go.Figure(
        go.Bar(x=label, y=[money[r] for r in regions], marker_color="#c0392b"),
        layout={"title": "Money at risk by region (KZT a year)"},
    )
    t = data.get("targeting")
    if t:
        out |= _targeting_charts(t)
    return {k: _html(f, f"chart-{k}", 460 if k == "curves" else 380) for k, f in out.items()}


def _targeting_charts(t: dict) -> dict[str, go.Figure]:
    x = [100 * v for v in t["curves"]["x"]]
    curves = go.Figure(
        layout={
            "title": "Concentration curves: cumulative share of spending by true-income percentile",
            "xaxis": {"title": "people ranked by true per-capita income, poorest first (%)"},
            "yaxis": {"title": "cumulative share of spending (%)"},
        }
    )
    curves.add_scatter(
        x=[0, 100],
        y=[0, 100],
        mode="lines",
        name="equal shares",
        line={"dash": "dot", "color": "grey"},
    )
    for m, c in t["curves"]["measures"].items():
        curves.add_scatter(
            x=x,
            y=[100 * v for v in c["y"]],
            mode="lines",
            name=m,
            line={"width": 4 if m == "system" else 2},
        )
    ms = t["national"]["measures"]
    errors = go.Figure(
        layout={
            "title": "Inclusion and exclusion errors by measure",
            "barmode": "group",
            "yaxis": {"tickformat": ".0%"},
        }
    )
    for key, name in (("inclusion_error", "inclusion"), ("exclusion_error", "exclusion")):
        errors.add_bar(x=list(ms), y=[ms[m][key] for m in ms], name=name)
    reg = t["by_region"]
    codes = sorted(reg, key=lambda c: reg[c]["name"])
    coverage = go.Figure(
        layout={
            "title": "Coverage of the poor by region",
            "barmode": "group",
            "yaxis": {"tickformat": ".0%"},
        }
    )
    for m in ("system", "asp"):
        coverage.add_bar(
            x=[reg[c]["name"] for c in codes],
            y=[reg[c]["measures"].get(m, {}).get("coverage_of_poor") for c in codes],
            name=m,
        )
    return {"curves": curves, "errors": errors, "coverage_by_region": coverage}


def render(data: dict) -> str:
    """The page: PAGE rendered with the data, the charts and the Plotly library inline."""
    env = Environment(autoescape=True)
    env.filters |= {"pct": pct, "pp": pp, "kzt": kzt, "num": num, "fmt": fmt}
    embedded = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    return env.from_string(PAGE).render(
        d=data,
        t=data.get("targeting"),
        charts=charts(data),
        figures=FIGURES,
        plotly_js=get_plotlyjs(),
        embedded=embedded,
    )
