"""Console output of the measures commands (kept out of cli.py, which stays a thin wrapper)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from qamqor.measures.explain import MeasureExplanation


def _v(x) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else str(x)


def print_measure(e: MeasureExplanation, console: Console) -> None:
    """Each condition with the family's values, then the amount's arithmetic."""
    verdict = "[green]entitled[/green]" if e.eligible else "[red]not entitled[/red]"
    console.print(
        f"[bold]{e.name}[/bold] ({e.measure}) · family {e.family_id} · {e.date}: {verdict}"
    )
    if e.note:
        console.print(f"  {e.note}")
    for s in e.subjects:
        if len(e.subjects) > 1 or s.person_id:
            mark = "entitled" if s.eligible else "not entitled"
            console.print(f"  person {s.person_id}: {mark}")
        table = Table("condition", "values", "held", show_header=False, box=None, padding=(0, 2))
        for c in s.conditions:
            values = ", ".join(f"{k} = {_v(v)}" for k, v in c.values.items())
            table.add_row(f"    {c.text}", values, "yes" if c.held else "[red]no[/red]")
        console.print(table)
        if s.eligible:
            console.print(
                f"    amount = {e.amount_formula} = [bold]{_v(s.amount)}[/bold] ({e.period})"
            )
    values = ", ".join(f"{k} = {_v(v)}" for k, v in e.amount_values.items())
    console.print(f"  rule: {e.amount_text}; with {values}")
    if e.incompatible_with:
        console.print(f"  not combined with {', '.join(e.incompatible_with)} (the larger stays)")


def print_summary(summary: dict, console: Console) -> None:
    table = Table(
        "measure", "recipients", "families", "annual cost, bn", "SPEC §2 scaled", "ratio",
        "registry paid", title=f"Entitlements {summary['date']} · {summary['families']:,} families",
    )  # fmt: skip
    for mid, s in summary["measures"].items():
        spec = s.get("spec") or {}
        paid = (s.get("registry_paid") or {}).get(
            "people" if spec.get("unit") == "people" else "families", ""
        )
        table.add_row(
            mid, f"{s['recipients']:,}", f"{s['families']:,}", f"{s['annual_cost'] / 1e9:,.2f}",
            f"{spec['scaled']:,.0f}" if spec else "", f"{spec['ratio']:.2f}" if spec else "",
            f"{paid:,}" if paid != "" else "",
        )  # fmt: skip
    console.print(table)
    bc = summary["birth_or_childcare_families"]
    console.print(
        f"birth or childcare: {bc['families']:,} families (SPEC: more than "
        f"{bc['spec_lower_bound_scaled']:,.0f} at this scale)"
    )
