"""Support measures as dated rules (SPEC §9): the catalogue files of a country pack.

`qamqor/countries/<code>/measures/*.yaml` holds one file for the national catalogue and one per
region with local measures. Each measure declares its legal name (kk/ru/en), legal basis, the
need it serves, whether it is paid to the family or to a person, its eligibility conditions and
amount as checked expressions (`qamqor.expressions`), its period, the measures it cannot be
combined with, whether it is assigned proactively, and `valid_from` / `valid_to`.

Expressions read the card's family columns (`qamqor.card.columns.FAMILY_COLUMNS`), the derived
family facts of `FAMILY_FACTS`, per-person facts `person_*` (person-level measures only) and the
dated parameters of `PARAMETERS`. A condition with a `switch` is a switchable rule: it applies
only when that switch is on (its `default`, or the caller's choice).

`load_catalogue` rejects a bad file with `MeasureError("FILE:LINE: problem")`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.countries import PACKS_DIR, load_country
from qamqor.datafile import load_model
from qamqor.expressions import ExpressionError, check_expression

# Dated values usable in expressions, looked up for the run date (and the family's region).
PARAMETERS = {
    "mrp": "monthly calculation index (MRP) in force",
    "pm": "regional subsistence minimum in force",
    "national_pm": "national subsistence minimum in force",
    "poverty_line": "regional poverty line in force (SPEC §8: median-based from 2025)",
    "median_income": "median per-capita income of the previous quarter, from the card",
    "min_pension": "minimum solidarity pension in force",
    "base_pension": "minimum basic state pension in force",
    "pension_age_men": "pension age of men",
    "pension_age_women": "pension age of women",
    "housing_share": "the region's share of income above which housing costs are assisted",
}
# Family facts derived from the person facts (not card columns yet).
FAMILY_FACTS = {
    "breadwinner_dependents": "int",  # dependants (<18, students <23) whose parent has died
    "long_ill_able": "int",  # able-bodied members ill for more than 2 months
    "asp_3m": "float",  # ASP paid to the family, monthly mean of the last 3 months
    "income_for_asp": "float",  # per-capita income of the last 3 months without ASP itself
}
# Per-person facts (person-level measures): name -> kind.
PERSON_FACTS = {
    "person_age": "int",
    "person_age_months": "int",
    "person_sex": "text",
    "person_role": "text",
    "person_disability_group": "int",
    "person_student": "bool",
    "person_pension_age": "bool",
    "person_insured": "bool",
    "person_mother_insured": "bool",
    "person_award": "text",
    "person_birth_order": "int",
    "person_long_ill": "bool",
    "person_parent_died": "bool",
}
# The person facts as `persons.parquet` stores them: the months of age are computed from the
# birth date on the day the rules run (`qamqor.measures.persons`), so that a person's row stays
# the same all month.
STORED_PERSON_FACTS = {k: v for k, v in PERSON_FACTS.items() if k != "person_age_months"} | {
    "person_birth_date": "date"
}
FAMILY_NAMES = (
    tuple(n for n in FAMILY_COLUMNS if n not in ("family_id", "district"))
    + tuple(FAMILY_FACTS)
    + tuple(PARAMETERS)
)
PERSON_NAMES = FAMILY_NAMES + tuple(PERSON_FACTS)
LANGUAGES = ("kk", "ru", "en")


class MeasureError(ValueError):
    """A measure file that cannot be used; the message names the file, line and problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str  # what the condition means, in plain English
    when: str  # a boolean expression
    switch: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    default: bool = True  # a switchable rule's state when the caller does not choose


class Measure(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: dict[str, str]
    legal_basis: str
    need: str
    level: Literal["family", "person"]
    eligibility: list[Condition] = Field(min_length=1)
    amount: str
    amount_text: str = ""
    period: Literal["once", "monthly", "quarterly"]
    incompatible_with: list[str] = []
    proactive: bool = False
    valid_from: date
    valid_to: date | None = None
    registry_measure: str | None = None  # the code of the payments registry, if paid there
    spec_recipients: int | None = None  # SPEC §2 recipients at 6.3 M families, if published
    spec_unit: Literal["families", "people"] = "families"
    region: str | None = None  # set by the loader from the file

    def in_force(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)

    @property
    def names(self) -> tuple[str, ...]:
        return PERSON_NAMES if self.level == "person" else FAMILY_NAMES


class CatalogueFile(_Model):
    catalogue: str
    region: str | None = None
    measures: list[Measure] = Field(min_length=1)


class Catalogue(_Model):
    measures: list[Measure]
    sources: dict[str, str]  # measure id -> file it came from

    def measure(self, measure_id: str) -> Measure:
        for m in self.measures:
            if m.id == measure_id:
                return m
        known = ", ".join(m.id for m in self.measures)
        raise KeyError(f"no measure {measure_id!r} (known: {known})")

    def in_force(self, on: date) -> list[Measure]:
        return [m for m in self.measures if m.in_force(on)]

    @property
    def switches(self) -> dict[str, bool]:
        return {c.switch: c.default for m in self.measures for c in m.eligibility if c.switch}


def load_measure_file(path: Path, country: str = "kz") -> CatalogueFile:
    """Read and validate one catalogue file."""
    f, data, fail = load_model(path, CatalogueFile, MeasureError)
    regions = set(load_country(country).region_codes)
    if f.region is not None and f.region not in regions:
        raise fail(("region",), f"unknown region {f.region!r}")
    for i, m in enumerate(f.measures):
        loc = ("measures", i)
        if "region" in data["measures"][i]:
            raise fail((*loc, "region"), "a measure takes its region from the file's `region`")
        missing = [lang for lang in LANGUAGES if not m.name.get(lang, "").strip()]
        if missing:
            raise fail((*loc, "name"), f"measure {m.id!r}: name lacks {', '.join(missing)}")
        if m.valid_to is not None and m.valid_to < m.valid_from:
            raise fail((*loc, "valid_to"), f"measure {m.id!r}: valid_to is before valid_from")
        seen: set[str] = set()
        for ci, c in enumerate(m.eligibility):
            if c.id in seen:
                raise fail((*loc, "eligibility", ci, "id"), f"condition {c.id!r} declared twice")
            seen.add(c.id)
            try:
                check_expression(c.when, m.names)
            except ExpressionError as e:
                raise fail((*loc, "eligibility", ci, "when"), f"measure {m.id!r}: {e}") from None
        try:
            check_expression(m.amount, m.names)
        except ExpressionError as e:
            raise fail((*loc, "amount"), f"measure {m.id!r}: {e}") from None
    return f.model_copy(
        update={"measures": [m.model_copy(update={"region": f.region}) for m in f.measures]}
    )


def load_catalogue(country: str = "kz", folder: Path | None = None) -> Catalogue:
    """Every catalogue file of the country pack, checked together (unique ids, known
    incompatibilities)."""
    folder = Path(folder) if folder else PACKS_DIR / country / "measures"
    measures: list[Measure] = []
    sources: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        f = load_measure_file(path, country)
        for m in f.measures:
            if m.id in sources:
                raise MeasureError(
                    f"{path}:1: measure {m.id!r} is also declared in {sources[m.id]}"
                )
            sources[m.id] = str(path)
            measures.append(m)
    if not measures:
        raise MeasureError(f"{folder}: no measure files")
    for m in measures:
        for other in m.incompatible_with:
            if other not in sources:
                raise MeasureError(
                    f"{sources[m.id]}:1: measure {m.id!r} is incompatible with unknown {other!r}"
                )
    return Catalogue(measures=measures, sources=sources)
