"""`make bench`: wall time and peak memory of generate, ingest and cards; writes bench/results.json.

Sizes come from BENCH_FAMILIES (comma-separated, default 1000000). Each step runs as its own
process so that its peak resident memory is measured alone (os.wait4 → ru_maxrss).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
QAMQOR = [sys.executable, "-m", "qamqor.cli"]


def _measure(args: list[str]) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args)}")
    return {"seconds": round(time.perf_counter() - t, 1), "peak_gib": round(usage.ru_maxrss / 2**20, 2)}


def main() -> None:
    sizes = [int(x) for x in os.environ.get("BENCH_FAMILIES", "1000000").split(",")]
    results = {"machine": {"cpus": os.cpu_count()}, "runs": []}
    for n in sizes:
        work = ROOT / "work" / str(n)
        shutil.rmtree(work, ignore_errors=True)
        run = {"families": n}
        run["generate"] = _measure([*QAMQOR, "generate", "--out", str(work), "--families", str(n)])
        run["ingest"] = _measure([*QAMQOR, "ingest", str(work)])
        run["cards"] = _measure([*QAMQOR, "cards", str(work)])
        results["runs"].append(run)
        print(json.dumps(run))
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
