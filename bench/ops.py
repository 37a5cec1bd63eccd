"""Operational benchmarks (issue 6): publish a run into PostgreSQL (COPY) and read family cards
through the API under concurrent load.

    .venv/bin/python bench/ops.py DATA_DIR [--concurrency 200] [--seconds 20] [--out F.json]

DATA_DIR must hold a run of the daily pipeline (cards, levels, scores, entitlements, audit). A
throwaway PostgreSQL cluster is started (fsync on, as in production), the run is published into
it, and `qamqor serve` (uvicorn, 2 workers) is loaded by a closed loop of CONCURRENCY clients
reading random family cards (`GET /families/{id}` as the auditor: one indexed read and one
access-log append each). Writes a JSON report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qamqor.levels.compute import card_dates
from qamqor.ops.daily import publish_and_sync
from qamqor.ops.demo import DEFAULT_PASSWORD, seed_demo_users
from qamqor.store.db import session_factory
from qamqor.store.pgcluster import cluster, create_database


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(base: str, token: str, ids: list[str], concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:

        async def client() -> None:
            nonlocal errors
            rnd = random.Random()
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    r = await c.get(f"/families/{rnd.choice(ids)}")
                    errors += r.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1)

    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": errors,
        "throughput_per_s": round(len(lat) / wall, 1),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/ops-results.json"))
    a = ap.parse_args()
    on: date = card_dates(a.data_dir)[-1]
    report: dict = {"data_dir": str(a.data_dir), "run_date": on.isoformat()}
    with cluster(
        fsync=True,
        settings={"shared_buffers": "1GB", "max_wal_size": "8GB", "max_connections": "300"},
    ) as srv:
        url = create_database(srv, "qamqor")
        session_factory(url)  # migrate outside the timing
        t0, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        r = publish_and_sync(a.data_dir, on, url)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        report["publish_postgres"] = {
            "families": r.published.families,
            "entitlements": r.published.entitlements,
            "findings": r.published.findings,
            "cases_opened": r.cases.opened,
            "phases_s": r.published.seconds,
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s_client": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
            "peak_rss_gib_client": round(ru1.ru_maxrss / 2**20, 2),
            "load_avg": os.getloadavg()[0],
        }
        print(json.dumps(report["publish_postgres"]), flush=True)
        seed_demo_users(session_factory(url))
        with session_factory(url)() as s:
            from sqlalchemy import select

            from qamqor.store.published import FamilyCard

            ids = list(s.scalars(select(FamilyCard.family_id).limit(100_000)))
        port = _port()
        env = dict(os.environ, QAMQOR_DATABASE_URL=url)
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "qamqor"), "serve", str(a.data_dir), "--port",
             str(port), "--workers", "2"],
            env=env,
            stderr=open(a.out.with_suffix(".server.log"), "w"),  # noqa: SIM115
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if httpx.get(base + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            token = httpx.post(
                base + "/auth/token", data={"username": "auditor", "password": DEFAULT_PASSWORD}
            ).json()["access_token"]
            asyncio.run(_load(base, token, ids, 10, 3))  # warm up
            report["api_family_card"] = asyncio.run(
                _load(base, token, ids, a.concurrency, a.seconds)
            )
            report["api_family_card"]["load_avg"] = os.getloadavg()[0]
            print(json.dumps(report["api_family_card"]), flush=True)
        finally:
            server.terminate()
            server.wait(30)
    a.out.write_text(json.dumps(report, indent=2))
    print(f"→ {a.out}")


if __name__ == "__main__":
    main()
