"""Why (or why not) a family gets a measure: each condition with the family's values, and the
amount's arithmetic.

The explanation runs the batch's own SQL (`measure_sql` over `base_sql`) on the one family, so
it agrees with `entitlements.parquet` (before incompatible measures are resolved, which the
explanation names). A hypothetical family (`qamqor evaluate`) is explained for family-level
measures; person-level ones need per-person facts and are reported as not evaluated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from qamqor.countries import load_country
from qamqor.engine import connect, sql_path
from qamqor.expressions import check_expression, names_used
from qamqor.levels.compute import card_path
from qamqor.measures.catalogue import (
    FAMILY_FACTS,
    PERSON_FACTS,
    Catalogue,
    Measure,
    load_catalogue,
)
from qamqor.measures.compute import (
    active_conditions,
    base_sql,
    measure_sql,
    median_income,
    poverty_line,
)


@dataclass
class ConditionResult:
    id: str
    text: str
    when: str
    held: bool
    values: dict[str, Any]


@dataclass
class SubjectResult:
    person_id: str | None
    eligible: bool
    amount: float | None
    conditions: list[ConditionResult] = field(default_factory=list)


@dataclass
class MeasureExplanation:
    measure: str
    name: str
    family_id: str
    date: str
    in_force: bool
    region: str | None
    in_region: bool
    period: str
    amount_formula: str
    amount_text: str
    amount_values: dict[str, Any]
    incompatible_with: list[str]
    subjects: list[SubjectResult] = field(default_factory=list)
    note: str = ""

    @property
    def eligible(self) -> bool:
        return any(s.eligible for s in self.subjects)

    @property
    def total(self) -> float:
        return sum(s.amount or 0 for s in self.subjects if s.eligible)

    def as_dict(self) -> dict:
        return {**asdict(self), "eligible": self.eligible, "total": self.total}


def _names(text: str, m: Measure) -> list[str]:
    return sorted(names_used(check_expression(text, m.names)))


def _explain(con, m: Measure, on: date, family_id: str, lang: str, switches) -> MeasureExplanation:
    conds = active_conditions(m, switches)
    src = "per" if m.level == "person" else "fam"
    used = sorted({n for c in conds for n in _names(c.when, m)} | set(_names(m.amount, m)))
    values = ", ".join(f"{n} AS v_{n}" for n in used)
    sql = (
        f"{con._base}, flags AS ({measure_sql(m, switches, flags=True)}), "
        f"vals AS (SELECT {'person_id' if m.level == 'person' else 'family_id AS k'}, "
        f"{values} FROM {src}) "
        f"SELECT * FROM flags f JOIN vals v ON "
        f"{'v.person_id = f.person_id' if m.level == 'person' else 'v.k = f.family_id'}"
    )
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    out = MeasureExplanation(
        measure=m.id,
        name=m.name.get(lang, m.name["en"]),
        family_id=family_id,
        date=on.isoformat(),
        in_force=m.in_force(on),
        region=m.region,
        in_region=bool(rows and rows[0]["in_region"]),
        period=m.period,
        amount_formula=" ".join(m.amount.split()),
        amount_text=m.amount_text,
        amount_values={},
        incompatible_with=list(m.incompatible_with),
    )
    amount_names = _names(m.amount, m)
    for r in rows:
        subject = SubjectResult(person_id=r["person_id"], eligible=False, amount=r["amount"])
        for c in conds:
            subject.conditions.append(
                ConditionResult(
                    c.id,
                    " ".join(c.text.split()),
                    " ".join(c.when.split()),
                    bool(r[f"cond_{c.id}"]),
                    {n: r[f"v_{n}"] for n in _names(c.when, m)},
                )
            )
        subject.eligible = (
            out.in_force
            and out.in_region
            and all(c.held for c in subject.conditions)
            and (r["amount"] or 0) > 0
        )
        out.subjects.append(subject)
        if not out.amount_values or subject.eligible:
            out.amount_values = {n: r[f"v_{n}"] for n in amount_names}
    if not out.in_force:
        out.note = f"not in force on {on.isoformat()} (valid {m.valid_from} to {m.valid_to})"
    elif not out.in_region:
        out.note = f"a local measure of region {m.region}"
    return out


class _Con:
    """A DuckDB connection holding one family's tables and the base CTEs."""

    def __init__(self, tables: dict[str, pa.Table], base: str) -> None:
        self.con = connect(threads=1)
        for name, t in tables.items():
            self.con.register(name, t)
        self._base = base

    def execute(self, sql: str):
        return self.con.execute(sql)

    def close(self) -> None:
        self.con.close()


def explain_measures(
    data_dir: Path,
    family_id: str,
    on: date,
    measures: list[str] | None = None,
    switches: dict[str, bool] | None = None,
    lang: str = "en",
    catalogue: Catalogue | None = None,
) -> list[MeasureExplanation]:
    """Explain measures (default: all in the catalogue) for one family of the card of `on`.

    Needs DIR/entitlements/ of the same date (its person and family facts); KeyError if there
    is no such family or measure.
    """
    data_dir = Path(data_dir)
    cat = catalogue or load_catalogue()
    chosen = [cat.measure(x) for x in measures] if measures else cat.measures
    ent = data_dir / "entitlements"
    if not (ent / "persons.parquet").exists():
        raise FileNotFoundError(f"{ent}/persons.parquet not found: run `qamqor entitlements`")
    con = connect(threads=1)
    q = "SELECT * FROM read_parquet({}) WHERE family_id = $1"
    tables = {
        "cards": con.sql(q.format(sql_path(card_path(data_dir, on))), params=[family_id]),
        "persons": con.sql(q.format(sql_path(ent / "persons.parquet")), params=[family_id]),
        "family_facts": con.sql(
            q.format(sql_path(ent / "family_facts.parquet")), params=[family_id]
        ),
    }
    tables = {k: v.to_arrow_table() for k, v in tables.items()}
    con.close()
    if tables["cards"].num_rows == 0:
        raise KeyError(f"no family {family_id!r} in the cards of {on.isoformat()}")
    country = load_country()
    median, source = median_income(data_dir, on)
    line = poverty_line(country, on, median, source)
    switches = {**cat.switches, **(switches or {})}
    c = _Con(tables, base_sql(country, on, line))
    try:
        return [_explain(c, m, on, family_id, lang, switches) for m in chosen]
    finally:
        c.close()


def evaluate_measures(
    cards: pa.Table,
    on: date,
    median: float,
    switches: dict[str, bool] | None = None,
    lang: str = "en",
    catalogue: Catalogue | None = None,
) -> list[MeasureExplanation]:
    """Every family-level measure for a hypothetical family (a one-row card table; the family
    facts of `FAMILY_FACTS` default to 0); `median` is the median per-capita income used for
    the poverty line."""
    cat = catalogue or load_catalogue()
    fid = cards.column("family_id")[0].as_py()
    facts = pa.table(
        {"family_id": [fid]}
        | {k: pa.array([0], pa.float64() if v == "float" else pa.int64()) for k, v in
           FAMILY_FACTS.items() if k != "income_for_asp"}
    )  # fmt: skip
    persons = pa.table(
        {"person_id": pa.array([], pa.string()), "family_id": pa.array([], pa.string())}
        | {k: pa.array([], _ARROW[v]) for k, v in PERSON_FACTS.items()}
    )
    country = load_country()
    line = poverty_line(country, on, median, "given")
    switches = {**cat.switches, **(switches or {})}
    c = _Con({"cards": cards, "family_facts": facts, "persons": persons},
             base_sql(country, on, line))  # fmt: skip
    out = []
    try:
        for m in cat.measures:
            if m.level == "person":
                out.append(_not_evaluated(m, fid, on, lang))
            else:
                out.append(_explain(c, m, on, fid, lang, switches))
    finally:
        c.close()
    return out


_ARROW = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "text": pa.string()}


def _not_evaluated(m: Measure, fid: str, on: date, lang: str) -> MeasureExplanation:
    return MeasureExplanation(
        m.id, m.name.get(lang, m.name["en"]), fid, on.isoformat(), m.in_force(on), m.region,
        False, m.period, m.amount, m.amount_text, {}, list(m.incompatible_with),
        note="a per-person measure: needs each member's facts, not evaluated for a document",
    )  # fmt: skip
