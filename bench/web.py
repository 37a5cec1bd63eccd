"""Server response time of every web page (issue 7: each page within 300 ms).

    .venv/bin/python bench/web.py DATA_DIR [--requests 20] [--out bench/work/web.json]

DATA_DIR is a published nation with the demo users (`qamqor run`, `qamqor publish`,
`qamqor demo-users`). The app is served by uvicorn on a free loopback port in this process and
each page is requested N times over HTTP with a signed-in cookie after a first request (which
fills the caches, timed apart as `first_ms`); p50/p95/max in milliseconds are printed and written
as JSON. The national aggregates are computed first (`cold_start_ms`: what the first dashboard
after a start waits for). Requests carry `X-Purpose: benchmark`, so the access-log entries they
cause are recognisable (run it on a copy of a nation whose log matters).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qamqor.api.app import create_app  # noqa: E402

PASSWORD = "qamqor-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(base: str, user: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=120, headers={"X-Purpose": "benchmark"})
    r = c.post("/web/login", data={"username": user, "password": PASSWORD})
    if r.status_code != 303:
        raise SystemExit(f"cannot sign in as {user}: run `qamqor demo-users DIR` first")
    return c


def _first(pattern: str, html: str) -> str | None:
    m = re.search(pattern, html)
    return m.group(1) if m else None


def pages(base: str) -> dict[str, tuple[httpx.Client, str]]:
    """name -> (signed-in client, path) for every page, ids taken from the pages themselves."""
    citizen, worker, analyst, auditor = (
        _client(base, u) for u in ("citizen", "worker", "analyst", "auditor")
    )
    queue = worker.get("/web/queue").text
    case = _first(r'href="(/web/cases/\d+)"', queue)
    family = _first(r'href="(/web/families/[0-9a-f]+)"', queue)
    audit = auditor.get("/web/audit").text
    trail = _first(r'href="(/web/audit/payments/[0-9a-f]+)"', audit)
    out = {
        "citizen: my family": (citizen, "/web/me"),
        "citizen: who looked": (citizen, "/web/me/access"),
        "worker: queue": (worker, "/web/queue"),
        "worker: children's register": (worker, "/web/children"),
        "analyst: dashboard": (analyst, "/web/dashboard"),
        "analyst: region": (analyst, "/web/dashboard/regions/KZ-75"),
        "analyst: measures": (analyst, "/web/measures"),
        "analyst: reform form": (analyst, "/web/reforms"),
        "auditor: findings": (auditor, "/web/audit"),
        "auditor: findings filtered": (auditor, "/web/audit?type=exclusion_error"),
    }
    if case:
        out["worker: case"] = (worker, case)
    if family:
        out["worker: family card"] = (worker, family)
        out["worker: family why/why-not (HTMX part)"] = (worker, family + "/why")
        out["worker: family history (HTMX part)"] = (worker, family + "/history")
    if trail:
        out["auditor: payment trail"] = (auditor, trail)
    return out


def measure(client: httpx.Client, path: str, n: int) -> dict:
    t = time.perf_counter()
    r = client.get(path)  # the first request fills the caches (aggregates, catalogue…)
    first = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        return {"path": path, "status": r.status_code}
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    times.sort()
    return {
        "path": path,
        "status": 200,
        "n": n,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, round(0.95 * n) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "first_ms": round(first, 1),
        "bytes": len(r.content),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "work" / "web.json")
    args = ap.parse_args()
    port = _free_port()
    config = uvicorn.Config(
        create_app(args.data_dir), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        todo = pages(base)
        # signing in as the analyst started the aggregates' warm-up: wait for it, timed apart
        t = time.perf_counter()
        for name in ("analyst: dashboard", "analyst: region", "analyst: measures"):
            client, path = todo[name]
            client.get(path)
        warm = round((time.perf_counter() - t) * 1000, 1)
        print(f"{'cold start: national aggregates':42} {warm:>7} ms")
        for name, (client, path) in todo.items():
            results[name] = measure(client, path, args.requests)
            r = results[name]
            print(
                f"{name:42} p50 {r.get('p50_ms', '-'):>7} ms  p95 {r.get('p95_ms', '-'):>7} ms"
                f"  first {r.get('first_ms', '-'):>7} ms"
            )
    finally:
        server.should_exit = True
        thread.join(10)
    report = {
        "data_dir": str(args.data_dir),
        "requests": args.requests,
        "cold_start_ms": warm,
        "pages": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
