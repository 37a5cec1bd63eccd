"""The web pages of the platform, served by the API's own app (`mount(app)`): server-rendered
Jinja2 templates with HTMX, Plotly charts, in Kazakh, Russian and English (docs/web.md)."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def mount(app: FastAPI) -> None:
    """Add the pages (/web/…), their static files and error pages to the API's app."""
    from qamqor.web import analyst, auditor, auth, casework, citizen, family
    from qamqor.web.core import install_handlers

    @app.get("/web/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
    for module in (auth, citizen, family, casework, analyst, auditor):
        app.include_router(module.router)
    install_handlers(app)
