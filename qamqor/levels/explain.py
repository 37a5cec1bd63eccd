"""Why a family has its level: every indicator's value, cut-off, weight and points.

The explanation runs the batch's own SQL (`levels_sql`) over the one family, so its total is
the batch score to the last digit. A hypothetical family is given as a JSON document with the
card's indicators (the output of `qamqor card FAMILY_ID DIR --json`; see docs/methodology.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.countries import load_country
from qamqor.engine import connect, lookup_cursor, sql_path
from qamqor.expressions import check_expression, names_used
from qamqor.levels.compute import card_path, levels_sql
from qamqor.levels.methodology import NAMES, PARAMETERS, Methodology, methodology_in_force

ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "text": pa.string()}
IGNORED_KEYS = {"members_list"}


class FamilyDocError(ValueError):
    """A family document that cannot be evaluated (missing, unknown or mistyped indicators)."""


@dataclass
class IndicatorResult:
    dimension: str
    indicator: str
    name: str
    value: Any
    unit: str | None
    cutoff: str
    applies: bool
    deprived: bool
    weight: float
    points: float


@dataclass
class Explanation:
    family_id: str
    date: str
    methodology: str
    score: float
    level: str
    emergency_trigger: str | None
    trigger_name: str | None
    deprivations: int
    parameters: dict[str, float]
    indicators: list[IndicatorResult] = field(default_factory=list)
    bands: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def explain_family(
    data_dir: Path, family_id: str, on: date, m: Methodology | None = None, lang: str = "en"
) -> Explanation:
    """Explain one family of the card of date `on`; KeyError if there is no such family."""
    cards = card_path(data_dir, on)
    con = connect(threads=1)
    table = con.sql(
        f"SELECT * FROM read_parquet({sql_path(cards)}) WHERE family_id = $1", params=[family_id]
    ).to_arrow_table()
    con.close()
    if table.num_rows == 0:
        raise KeyError(f"no family {family_id!r} in the cards of {on.isoformat()}")
    return _explain(table, on, m or methodology_in_force(on), lang)


def evaluate_family(
    doc: dict, on: date, m: Methodology | None = None, lang: str = "en"
) -> Explanation:
    """Explain a hypothetical family given as a card document."""
    m = m or methodology_in_force(on)
    return _explain(family_table(doc, m), on, m, lang)


_NEEDED: dict[tuple, frozenset[str]] = {}


def _needed(m: Methodology) -> frozenset[str]:
    """The card indicators a methodology reads (parsed once per methodology version)."""
    key = (m.id, m.version, m.valid_from, m.source)
    if key not in _NEEDED:
        needed = {"region", "members", "urban"}
        for _, ind in m.indicators:
            for text in (ind.value, ind.applies_if):
                if text:
                    needed |= names_used(check_expression(text, NAMES))
        for t in m.triggers:
            needed |= names_used(check_expression(t.when, NAMES))
        _NEEDED[key] = frozenset(needed)
    return _NEEDED[key]


def family_table(doc: dict, m: Methodology) -> pa.Table:
    """A one-row card table from a document; FamilyDocError names each problem."""
    if not isinstance(doc, dict):
        raise FamilyDocError("a family document must be a JSON object of card indicators")
    unknown = sorted(set(doc) - set(FAMILY_COLUMNS) - IGNORED_KEYS)
    if unknown:
        raise FamilyDocError(f"unknown indicator(s): {', '.join(unknown)}")
    missing = sorted(_needed(m) - set(PARAMETERS) - set(doc))
    if missing:
        raise FamilyDocError(f"missing indicator(s): {', '.join(missing)}")
    arrays, names = [], []
    for name, kind in FAMILY_COLUMNS.items():
        value = doc.get(name, "hypothetical" if name == "family_id" else None)
        if value is not None and not _fits(value, kind):
            raise FamilyDocError(f"{name}: expected {kind}, got {value!r}")
        names.append(name)
        arrays.append(pa.array([value], type=ARROW_TYPES[kind]))
    return pa.Table.from_arrays(arrays, names=names)


def _fits(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "float" or float(value).is_integer()


def _explain(table: pa.Table, on: date, m: Methodology, lang: str) -> Explanation:
    con = lookup_cursor()  # a cursor of the shared DuckDB: "cards" is registered for it alone
    try:
        con.register("cards", table)
        cur = con.execute(levels_sql(m, load_country(), on, values=True))
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    finally:
        con.close()
    trig = next((t for t in m.triggers if t.id == row["emergency_trigger"]), None)
    out = Explanation(
        family_id=row["family_id"],
        date=on.isoformat(),
        methodology=f"{m.id} {m.version} (valid from {m.valid_from.isoformat()})",
        score=row["score"],
        level=row["level"],
        emergency_trigger=row["emergency_trigger"],
        trigger_name=trig.name.get(lang, trig.name.get("en")) if trig else None,
        deprivations=int(row["deprivations"]),
        parameters={p: row[p] for p in PARAMETERS},
        bands=[{"level": b.level, "from": b.from_, "to": b.to} for b in m.levels],
    )
    for dim, ind in m.indicators:
        out.indicators.append(
            IndicatorResult(
                dimension=dim.id,
                indicator=ind.id,
                name=ind.name.get(lang, ind.name.get("en", ind.id)),
                value=row[f"value_{ind.id}"],
                unit=ind.unit,
                cutoff=str(ind.cutoff),
                applies=bool(row[f"applies_{ind.id}"]),
                deprived=row[f"points_{ind.id}"] > 0,
                weight=ind.weight,
                points=row[f"points_{ind.id}"],
            )
        )
    return out
