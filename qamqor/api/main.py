"""The ASGI entry point for uvicorn: the app of the data directory in QAMQOR_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

from qamqor.api.app import create_app

app = create_app(Path(os.environ.get("QAMQOR_DATA_DIR", "data/nation")))
