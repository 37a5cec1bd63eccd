"""A well-being methodology as data (SPEC §6): dimensions, indicators, cut-offs, weights, level
bands and emergency triggers, valid from a date. Files live in the country pack
(`qamqor/countries/<code>/methodology/*.yaml`); the one in force on a date has the latest
`valid_from` on or before it.

`load_methodology` rejects a bad file with `MethodologyError("FILE:LINE: problem")`.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.countries import PACKS_DIR
from qamqor.datafile import load_model
from qamqor.expressions import ExpressionError, check_expression

LEVELS = ("A", "B", "C", "D", "E")
PARAMETERS = ("pm", "mrp")  # dated values usable in expressions: regional PM, MRP
NAMES = tuple(n for n in FAMILY_COLUMNS if n not in ("family_id", "district")) + PARAMETERS
Scalar = float | bool | str


class MethodologyError(ValueError):
    """A methodology file that cannot be used; the message names the file, line and problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cutoff(_Model):
    op: Literal["<", "<=", ">", ">=", "=", "<>"]
    value: bool | float | str

    def __str__(self) -> str:
        v = self.value
        shown = str(v).lower() if isinstance(v, bool) else (v if isinstance(v, str) else f"{v:g}")
        return f"{self.op} {shown}"

    def sql(self) -> str:
        v = self.value
        lit = (
            ("TRUE" if v else "FALSE")
            if isinstance(v, bool)
            else (f"'{v}'" if isinstance(v, str) else repr(float(v)))
        )
        return f"{self.op} {lit}"


class Indicator(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: dict[str, str]
    value: str
    applies_if: str | None = None
    unit: str | None = None
    cutoff: Cutoff
    weight: float = Field(gt=0)


class Dimension(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: dict[str, str]
    indicators: list[Indicator] = Field(min_length=1)


class Band(_Model):
    level: Literal["A", "B", "C", "D", "E"]
    from_: float = Field(alias="from", ge=0)
    to: float


class Trigger(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: dict[str, str]
    when: str


class Methodology(_Model):
    id: str
    version: str
    valid_from: date
    title: dict[str, str]
    legal_basis: str | None = None
    total_weight: float = Field(gt=0)
    poverty_cutoff: float = Field(gt=0)
    dimensions: list[Dimension] = Field(min_length=1)
    levels: list[Band]
    triggers: list[Trigger] = []
    source: str = ""  # the file it was read from (set by the loader)

    @property
    def indicators(self) -> list[tuple[Dimension, Indicator]]:
        return [(d, i) for d in self.dimensions for i in d.indicators]


def load_methodology(path: Path) -> Methodology:
    """Read and validate one methodology file (parsed once per version of the file: a request
    that explains a level does not parse YAML)."""
    try:
        st = Path(path).stat()
    except OSError:
        return _load.__wrapped__(str(path), 0, 0)  # not cached: the loader names the problem
    return _load(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _load(path: str, _mtime_ns: int, _size: int) -> Methodology:
    m, _, fail = load_model(Path(path), Methodology, MethodologyError, {"source": path})
    _check(m, fail)
    return m


def methodology_in_force(on: date, country: str = "kz", folder: Path | None = None) -> Methodology:
    """The methodology of the country pack with the latest `valid_from` on or before `on`."""
    folder = Path(folder) if folder else PACKS_DIR / country / "methodology"
    found = [load_methodology(f) for f in sorted(folder.glob("*.yaml"))]
    valid = [m for m in found if m.valid_from <= on]
    if not valid:
        raise MethodologyError(f"{folder}: no methodology in force on {on.isoformat()}")
    return max(valid, key=lambda m: m.valid_from)


def _check(m: Methodology, fail) -> None:
    """Checks beyond types: unique ids, known indicators, weights, bands, triggers."""
    seen: set[str] = set()
    for di, d in enumerate(m.dimensions):
        for ii, ind in enumerate(d.indicators):
            loc = ("dimensions", di, "indicators", ii)
            if ind.id in seen:
                raise fail((*loc, "id"), f"indicator {ind.id!r} is declared twice")
            seen.add(ind.id)
            for key in ("value", "applies_if"):
                text = getattr(ind, key)
                if text is not None:
                    try:
                        check_expression(text, NAMES)
                    except ExpressionError as e:
                        raise fail((*loc, key), f"indicator {ind.id!r}: {e}") from None
    total = sum(i.weight for _, i in m.indicators)
    if abs(total - m.total_weight) > 1e-9:
        raise fail(
            ("total_weight",),
            f"weights sum to {total:g}, but total_weight declares {m.total_weight:g}",
        )
    bands = m.levels
    if [b.level for b in bands] != list(LEVELS):
        raise fail(("levels",), "levels must list A, B, C, D, E once each, in that order")
    if bands[0].from_ != 0:
        raise fail(("levels", 0), "level A must start at 0")
    for i, b in enumerate(bands):
        if b.to <= b.from_:
            raise fail(
                ("levels", i), f"level {b.level}: 'to' {b.to:g} is not above 'from' {b.from_:g}"
            )
        if i and b.from_ != bands[i - 1].to:
            kind = "overlaps" if b.from_ < bands[i - 1].to else "leaves a gap after"
            raise fail(("levels", i), f"level {b.level} {kind} level {bands[i - 1].level}")
    if bands[-1].to != m.total_weight:
        raise fail(("levels", 4), f"level E must end at total_weight {m.total_weight:g}")
    if not 0 < m.poverty_cutoff <= m.total_weight:
        raise fail(("poverty_cutoff",), "poverty_cutoff must lie within (0, total_weight]")
    for ti, t in enumerate(m.triggers):
        try:
            check_expression(t.when, NAMES)
        except ExpressionError as e:
            raise fail(("triggers", ti, "when"), f"trigger {t.id!r}: {e}") from None
