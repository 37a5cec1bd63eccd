"""Plotly figures for the pages, built in Python and drawn by plotly.js served from the plotly
package (no CDN). Titles and axes come translated from the caller."""

from __future__ import annotations

from functools import cache

import plotly.graph_objects as go

LEVEL_COLOURS = {"A": "#2e7d32", "B": "#7cb342", "C": "#f9a825", "D": "#ef6c00", "E": "#c62828"}
BLUE = "#0b5fff"


def _layout(fig: go.Figure, title: str, x: str = "", y: str = "", **extra) -> str:
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        xaxis_title=x,
        yaxis_title=y,
        margin={"l": 50, "r": 10, "t": 50, "b": 50},
        autosize=True,
        height=extra.pop("height", 360),
        legend={"orientation": "h", "y": -0.2},
        plot_bgcolor="#fff",
        paper_bgcolor="#fff",
        **extra,
    )
    # safe inside <script type="application/json">
    return fig.to_json().replace("</", "<\\/")


def bars(labels: list[str], values: list, title: str, x: str = "", y: str = "", colours=None):
    fig = go.Figure(go.Bar(x=labels, y=values, marker_color=colours or BLUE))
    return _layout(fig, title, x, y)


def hbars(labels: list[str], values: list, title: str, x: str = "") -> str:
    fig = go.Figure(go.Bar(y=labels, x=values, orientation="h", marker_color=BLUE))
    fig.update_yaxes(automargin=True, autorange="reversed")
    return _layout(fig, title, x, "", height=max(300, 26 * len(labels) + 80))


def stacked_levels(
    groups: list[str], by_level: dict[str, list], title: str, names: dict[str, str], x: str = ""
) -> str:
    """Horizontal stacked bars: one bar per group (e.g. region), one segment per level."""
    fig = go.Figure()
    for level, values in by_level.items():
        fig.add_bar(
            y=groups,
            x=values,
            name=f"{level} {names.get(level, '')}",
            orientation="h",
            marker_color=LEVEL_COLOURS.get(level),
        )
    fig.update_yaxes(automargin=True, autorange="reversed")
    return _layout(fig, title, x, "", barmode="stack", height=max(320, 26 * len(groups) + 120))


def lines(dates: list[str], series: dict[str, list], title: str, names: dict[str, str]) -> str:
    fig = go.Figure()
    for key, values in series.items():
        fig.add_scatter(
            x=dates,
            y=values,
            mode="lines+markers",
            name=f"{key} {names.get(key, '')}",
            line={"color": LEVEL_COLOURS.get(key, BLUE)},
        )
    fig.update_xaxes(type="category")  # one point per run date, however far apart
    return _layout(fig, title)


@cache
def warm() -> None:
    """Build one small figure of each kind, once: Plotly loads its validators on first use
    (≈ 0.2 s), which would otherwise fall on the first dashboard after a start."""
    levels = {k: k for k in LEVEL_COLOURS}
    bars(["a"], [1], "")
    hbars(["a"], [1.0], "")
    stacked_levels(["a"], {k: [1] for k in levels}, "", levels)
    lines(["a"], {k: [1] for k in levels}, "", levels)
