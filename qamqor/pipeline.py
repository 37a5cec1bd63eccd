"""The daily run, top to bottom: ingest the registry extracts, build the family cards, rank
the families into well-being levels, find every family's entitlements,
offer the newly entitled their proactive measures, audit the payments, and publish the run into
the operational store (cases follow the new levels)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from qamqor.card.build import build_cards
from qamqor.levels.compute import compute_levels
from qamqor.measures.compute import compute_entitlements
from qamqor.measures.offers import create_offers
from qamqor.registries.ingest import ingest


@dataclass
class StageResult:
    name: str
    seconds: float
    summary: str


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)


def run(data_dir: Path, on: date, progress=None, full: bool = False) -> RunResult:
    """Run every stage in order; `progress(stage_name)` is called as each one starts. With
    `full`, the cards and entitlements are computed for every family (else a later day of the
    month computes only the families that changed since the last run)."""
    result = RunResult()

    def stage(name: str, fn) -> None:
        if progress:
            progress(name)
        t = time.perf_counter()
        summary = fn()
        result.stages.append(StageResult(name, time.perf_counter() - t, summary))

    def _ingest() -> str:
        return ingest(data_dir).counts()

    def _cards() -> str:
        r = build_cards(data_dir, on, reuse=not full)
        changed = "" if r.changed is None else f", {r.changed:,} changed since the last card"
        kept = "" if r.kept_from is None else f" ({r.recomputed:,} computed, others kept)"
        return f"{r.families:,} families{kept}, {r.people:,} people{changed}"

    def _levels() -> str:
        r = compute_levels(data_dir, on)
        counts = " ".join(f"{k} {v:,}" for k, v in r.counts.items())
        return f"{r.methodology.id} {r.methodology.version}: {counts}"

    def _scores() -> str:
        from qamqor.scoring.hidden_income import run_hidden_income
        from qamqor.scoring.score import run_scores

        h = run_hidden_income(data_dir, on=on)
        r = run_scores(data_dir, on)
        cats = " ".join(f"{k} {v:,}" for k, v in r.by_category.items())
        return f"{h.flagged:,} hidden-income flags; {cats}"

    def _entitlements() -> str:
        r = compute_entitlements(data_dir, on, keep=not full)
        ms = r.summary["measures"]
        cost = sum(m["annual_cost"] for m in ms.values())
        computed = r.summary.get("computed_families")
        kept = f" ({computed['entitlements']:,} families computed, others kept)" if computed else ""
        return f"{r.rows:,} entitlements{kept} in {len(ms)} measures, {cost / 1e9:,.1f} bn a year"

    stage("ingest", _ingest)
    stage("cards", _cards)
    stage("levels", _levels)
    stage("scores", _scores)

    def _offers() -> str:
        r = create_offers(data_dir, on)
        if r.previous is None:
            return "first entitlements run: the baseline, no offers"
        return f"{r.total:,} new offers since {r.previous}, {r.expired:,} expired"

    stage("entitlements", _entitlements)
    stage("offers", _offers)

    def _audit() -> str:
        from qamqor.audit.findings import run_audit

        r = run_audit(data_dir, on)
        return f"{r.findings:,} findings, {r.amount_at_risk / 1e6:,.1f} M KZT a year at risk"

    stage("audit", _audit)

    def _report() -> str:
        # targeting reads truth/ when present: an evaluation, never an input of the findings
        from qamqor.audit.report import build_report

        r = build_report(data_dir, on)
        t = "targeting vs truth/" if r.targeting else "no truth/: no targeting"
        return f"{r.html.name}: {r.listed:,} of {r.findings:,} findings listed; {t}"

    stage("report", _report)

    def _publish() -> str:
        from qamqor.ops.daily import publish_and_sync

        r = publish_and_sync(data_dir, on)
        p, c = r.published, r.cases
        state = "unchanged" if p.skipped else f"{p.families:,} families published"
        return f"{state}; cases: {c.opened:,} opened, {c.proposed_for_closure:,} to close"

    stage("publish", _publish)
    return result
