"""Fixtures of the browser tests: a small published nation with the demo users and a pending
offer for the citizen, served by uvicorn on a free port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.factories import offer

RUN = date(2025, 10, 1)
PASSWORD = "qamqor-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def nation(tmp_path_factory) -> Path:
    """2,000 families generated, run, published and synced, demo users seeded; the citizen's
    family gets one pending offer per language so each language test can answer one."""
    from qamqor import pipeline
    from qamqor.ops.daily import publish_and_sync
    from qamqor.ops.demo import seed_demo_users
    from qamqor.store.access import User
    from qamqor.store.db import database_url, session_factory
    from qamqor.synth.generate import generate

    out = tmp_path_factory.mktemp("web") / "nation"
    generate(out, 2000, seed=7)
    pipeline.run(out, RUN)
    publish_and_sync(out, RUN)
    sessions = session_factory(database_url(out))
    seed_demo_users(sessions)
    with sessions.begin() as s:
        family = s.get(User, "citizen").family_id
        for i, measure in enumerate(
            ("asp", "large_family", "housing_assistance", "birth", "childcare", "disability")
        ):
            s.add(offer(family, measure, RUN, offer_key=f"web-test-{i}", amount=10000 + i))
    return out


@pytest.fixture(scope="session")
def server(nation: Path) -> Iterator[str]:
    """The API's app (with the web pages) on http://127.0.0.1:PORT."""
    from qamqor.api.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(nation), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def client_for(server: str):
    """`client_for(user)`: an httpx client signed in through the log-in form."""
    clients: list[httpx.Client] = []

    def make(user: str) -> httpx.Client:
        c = httpx.Client(base_url=server, timeout=60)
        r = c.post("/web/login", data={"username": user, "password": PASSWORD})
        assert r.status_code == 303, r.text
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
