"""`make bench`: wall time and peak memory of every batch step; writes bench/results.json.

Sizes come from BENCH_FAMILIES (comma-separated, default 1000000,6300000). Each step runs as its
own process so that its peak resident memory is measured alone (os.wait4 → ru_maxrss). The
machine is often shared, so each step also records its CPU seconds and the 1-minute load average
before and after it: a time measured under a load above the number of CPUs is not the step's own
(the CPU seconds are steadier).

A nation already generated and ingested in bench/work/N is reused when the generator's code is
unchanged since (bench/work/N/generator.sha256; BENCH_REUSE=0 generates it again anyway). Offers
compare two runs, so the first time a nation is used the bench also builds, untimed, the cards and
entitlements of the month before (PREVIOUS). The timed steps are one daily run, on DAY, the day
after the extract date: every bench first runs, untimed, the cards, scores and entitlements of
the day before (DAY_BEFORE, the extract date; the hidden-income model is trained there the first
time), as the daily run of the day before would have. Timed: cards, levels, scores (the saved
model; families whose features did not change keep their predictions), entitlements and offers
(the offers store is emptied first; offers are the families newly entitled since the day
before), then audit. The targets of issues 2-4 are checked on the pairs they name
(levels + scores, entitlements + offers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
QAMQOR = [sys.executable, "-m", "qamqor.cli"]
PREVIOUS = "2025-09-01"  # the earlier run the offers are found against (extract: 2025-10-01)
DAY_BEFORE = "2025-10-01"  # the daily run before the timed one (untimed)
DAY = "2025-10-02"  # the timed daily run
STEPS = ("cards", "levels", "scores", "entitlements", "offers", "audit")
DATED = {"cards", "levels", "scores", "entitlements"}  # the steps given --date DAY
# issue → (steps measured together, seconds, GiB or None), at 6.3 M families
TARGETS = {
    "issue 2: cards": (("cards",), 60, 8),
    "issue 3: levels + scores": (("levels", "scores"), 30, 6),
    "issue 4: entitlements + offers": (("entitlements", "offers"), 30, 6),
    "issue 5: audit (with identity linkage)": (("audit",), 180, None),
}


def measure(args: list[str]) -> dict:
    """Run a command as its own process: wall, peak resident memory, CPU, load around it."""
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args)}")
    return {
        "seconds": round(time.perf_counter() - t, 1),
        "peak_gib": round(usage.ru_maxrss / 2**20, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _run(args: list[str]) -> None:
    subprocess.run(args, stdout=subprocess.DEVNULL, check=True)


def _machine() -> dict:
    import duckdb

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "duckdb": duckdb.__version__,
        "date": dt.date.today().isoformat(),
    }


def _targets(run: dict) -> dict:
    out = {}
    for name, (steps, seconds, gib) in TARGETS.items():
        wall = round(sum(run[s]["seconds"] for s in steps), 1)
        cpu = round(sum(run[s]["cpu_seconds"] for s in steps), 1)
        peak = max(run[s]["peak_gib"] for s in steps)
        out[name] = {
            "seconds": wall,
            "cpu_seconds": cpu,
            "peak_gib": peak,
            "target_seconds": seconds,
            "target_gib": gib,
            "met": wall <= seconds and (gib is None or peak <= gib),
        }
    return out


def generator_fingerprint() -> str:
    """A hash of the generator's and the ingestion's code and of the country packs: a nation
    generated or ingested by other code has other data, columns or planted truth, so it is not
    reused."""
    h = hashlib.sha256()
    package = ROOT.parent / "qamqor"
    for f in sorted(
        [
            *package.glob("synth/*.py"),
            *package.glob("registries/*.py"),
            *package.glob("countries/**/*.yaml"),
        ]
    ):
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def bench(n: int, reuse: bool) -> dict:
    work = ROOT / "work" / str(n)
    run: dict = {"families": n, "day": DAY, "day_before": DAY_BEFORE}
    stamp = work / "generator.sha256"
    current = generator_fingerprint()
    fresh = stamp.exists() and stamp.read_text() == current
    if reuse and fresh and (work / "ingested" / "summary.json").exists():
        run["reused_nation"] = True
    else:
        shutil.rmtree(work, ignore_errors=True)
        run["generate"] = measure([*QAMQOR, "generate", "--out", str(work), "--families", str(n)])
        run["ingest"] = measure([*QAMQOR, "ingest", str(work)])
        stamp.write_text(current)
    if not (work / "entitlements_history" / PREVIOUS).exists():  # untimed: the run before
        _run([*QAMQOR, "cards", str(work), "--date", PREVIOUS])
        _run([*QAMQOR, "entitlements", str(work), "--date", PREVIOUS])
    for step in ("cards", "scores", "entitlements"):  # untimed: the daily run of the day before
        _run([*QAMQOR, step, str(work), "--date", DAY_BEFORE])
    for step in STEPS:
        if step == "offers":
            (work / "qamqor.db").unlink(missing_ok=True)
        dated = ["--date", DAY] if step in DATED else []
        run[step] = measure([*QAMQOR, step, str(work), *dated])
    run["targets"] = _targets(run)
    return run


def main() -> None:
    # no options (sizes and reuse come from the environment), but `--help` must not start a run
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.parse_args()
    sizes = [int(x) for x in os.environ.get("BENCH_FAMILIES", "1000000,6300000").split(",")]
    reuse = os.environ.get("BENCH_REUSE", "1") != "0"
    results = {"machine": _machine(), "runs": []}
    for n in sizes:
        run = bench(n, reuse)
        results["runs"].append(run)
        print(json.dumps(run))
        (ROOT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
