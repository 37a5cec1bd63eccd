"""The national support measures written a second time, by hand, in OpenFisca (issue 4).

An independent reference for the batch of `qamqor.measures.compute`: the same entitlements from
the same facts (the card, `persons.parquet`, `family_facts.parquet`), but with each national
measure of `countries/kz/measures/national.yaml` rewritten as an OpenFisca `Variable` whose
formula is numpy (`where`, `select`), as OpenFisca country packages write them. Nothing is
generated from the catalogue's expressions: a slip in either implementation shows up as a
difference (tests/integration/test_openfisca_twin.py; `bench/openfisca.py` compares them at
scale and times both).

What the twin shares with the batch, and why:
- the dated parameters: `countries/kz/parameters/*.yaml` are in OpenFisca's own format and are
  loaded as they are into a `ParameterNode`; the regions' subsistence-minimum coefficients and
  housing shares (`regions.yaml`, undated) and the switch defaults of the need tests (the
  catalogue) are added as nodes beside them;
- the poverty line, a statistic of the data set (the median income of the card): the values of
  `qamqor.measures.compute.poverty_line` are an input per family;
- the facts of the run (`qamqor.measures.compute.write_facts`), read as arrays.

Two departures from stock OpenFisca, both for an exact comparison: money and incomes are float64
variables (OpenFisca holds `float` variables in float32, which moves amounts by cents and flips
families sitting on a threshold), and a NULL float fact is NaN, for which every condition is
false, as SQL's NULL is in the batch's conditions. Every measure is computed for the month of
the run date (`definition_period = MONTH`; `birth` is paid once, in that month), with the
parameters in force on the first day of that month: `compute` refuses a date on which they
differ from those of the run day.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from openfisca_core.entities import build_entity
from openfisca_core.indexed_enums import Enum
from openfisca_core.parameters import ParameterNode
from openfisca_core.periods import DateUnit, Period, period
from openfisca_core.simulation_builder import SimulationBuilder
from openfisca_core.simulations import Simulation
from openfisca_core.taxbenefitsystems import TaxBenefitSystem
from openfisca_core.variables import Variable

from qamqor.countries import PACKS_DIR, Country, load_country
from qamqor.engine import connect
from qamqor.levels.compute import card_path
from qamqor.measures.catalogue import Catalogue, load_catalogue
from qamqor.measures.compute import PovertyLine, median_income, poverty_line
from qamqor.measures.persons import stored_sql, with_age_months

where, select = np.where, np.select
MONTH = DateUnit.MONTH
ALWAYS = "1900-01-01"  # the start of undated reference values (regions.yaml, switch defaults)

# --- entities -----------------------------------------------------------------------------------

Person = build_entity("person", "persons", "A member of a family in the card", is_person=True)
Family = build_entity(
    "family",
    "families",
    "A family of the Digital Family Card",
    roles=[
        {"key": "head", "max": 1, "label": "Head of the family"},
        {"key": "spouse", "label": "Spouse of the head"},
        {"key": "child", "plural": "children", "label": "Child"},
    ],
)
ROLES = ("head", "spouse", "child")  # Family.flattened_roles, in order


class Sex(Enum):
    M = "male"
    F = "female"


class Award(Enum):
    none = "no award"
    kumis_alka = "Kumis alka"
    altyn_alka = "Altyn alka"
    mother_heroine = "Mother-heroine"


class Float64(Variable):
    """Base of the money and income variables: float64, as the batch's DOUBLE (OpenFisca's
    `float` is float32)."""

    def __init__(self, baseline_variable: Variable | None = None) -> None:
        super().__init__(baseline_variable)
        self.dtype = np.float64


# --- inputs: the facts of the run ---------------------------------------------------------------


class region(Variable):
    value_type = str
    entity = Family
    definition_period = MONTH
    label = "Region code (ISO 3166-2:KZ)"


def _family_input(name: str, kind: type, label: str) -> type[Variable]:
    """An input variable of the family (OpenFisca reads a variable's own class attributes)."""
    base = Float64 if kind is float else Variable
    attributes = {"value_type": kind, "entity": Family, "definition_period": MONTH, "label": label}
    return type(name, (base,), attributes)


# the card columns and family facts the national measures read -> label
FAMILY_INTS = {
    "members": "Members of the family",
    "children_1_6": "Children aged 1-6",
    "children_under_7": "Children under 7",
    "dependent_children": "Children under 18 and full-time students under 23",
    "disabled_children": "Children under 18 with a disability",
    "disabled_group1": "Members with disability group I",
    "disabled_group2": "Members with disability group II",
    "able_bodied": "Able-bodied members",
    "pensioners": "Members of pension age",
    "social_contract": "Members who signed a social contract",
    "breadwinner_dependents": "Dependants whose parent died",
    "long_ill_able": "Able-bodied members ill for more than 2 months",
}
FAMILY_FLOATS = {
    "income_per_capita_3m": "Per-capita income, monthly mean of the last 3 months",
    "asp_3m": "ASP paid to the family, monthly mean of the last 3 months",
    "non_mortgage_debt": "Loans and microcredits outstanding",
    "deposits": "Bank deposits",
    "vehicles": "Vehicles owned",
    "housing_costs": "Housing and utility costs a month",
    "housing_area_m2": "Living area, m2",
    "poverty_line": "Regional poverty line in force (a statistic of the data set: given)",
}
PERSON_INPUTS = {  # persons.parquet column -> (variable, kind)
    "person_age": ("age", int),
    "person_age_months": ("age_months", int),
    "person_disability_group": ("disability_group", int),
    "person_birth_order": ("birth_order", int),
    "person_mother_insured": ("mother_insured", bool),
    "person_sex": ("sex", Sex),
    "person_award": ("award", Award),
}


class age(Variable):
    value_type = int
    entity = Person
    definition_period = MONTH
    label = "Age in full years"


class age_months(Variable):
    value_type = int
    entity = Person
    definition_period = MONTH
    label = "Age in full months"


class disability_group(Variable):
    value_type = int
    entity = Person
    definition_period = MONTH
    label = "Disability group in force (0: none)"


class birth_order(Variable):
    value_type = int
    entity = Person
    definition_period = MONTH
    default_value = 1
    label = "Birth order among the mother's children"


class mother_insured(Variable):
    value_type = bool
    entity = Person
    definition_period = MONTH
    label = "The mother paid social contributions in the last 3 months"


class sex(Variable):
    value_type = Enum
    possible_values = Sex
    default_value = Sex.M
    entity = Person
    definition_period = MONTH
    label = "Sex"


class award(Variable):
    value_type = Enum
    possible_values = Award
    default_value = Award.none
    entity = Person
    definition_period = MONTH
    label = "Highest mother's award (Kumis alka < Altyn alka < Mother-heroine)"


# --- intermediate variables ---------------------------------------------------------------------


class pm(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Regional subsistence minimum"

    def formula(family, period, parameters):
        p = parameters(period)
        return p.pm * p.regions.pm_coefficient[family("region", period)]


class housing_share(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Share of family income above which housing costs are assisted (maslikhat)"

    def formula(family, period, parameters):
        return parameters(period).regions.housing_share[family("region", period)]


class income_for_asp(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Per-capita income of the last 3 months without ASP itself"

    def formula(family, period, parameters):
        return family("income_per_capita_3m", period) - family("asp_3m", period) / family(
            "members", period
        )


class pension_age(Variable):
    value_type = bool
    entity = Person
    definition_period = MONTH
    label = "Has reached the pension age"

    def formula(person, period, parameters):
        p = parameters(period)
        years = person("age", period)
        s = person("sex", period)
        return ((s == Sex.M) & (years >= p.pension_age_men)) | (
            (s == Sex.F) & (years >= p.pension_age_women)
        )


class normative_housing_costs(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Housing costs within the norm of 18 m2 a person (30 m2 alone)"

    def formula(family, period, parameters):
        n = family("members", period)
        norm = where(n == 1, 30.0, 18.0 * n)
        # greatest/least of SQL skip a NULL: fmax/fmin
        return family("housing_costs", period) * np.fmin(
            1.0, norm / np.fmax(family("housing_area_m2", period), 1.0)
        )


# --- the national measures ----------------------------------------------------------------------


class asp(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Targeted social assistance (ASP), a month"
    reference = "Social Code of the Republic of Kazakhstan No. 224-VII, ch. 11"

    def formula(family, period, parameters):
        p = parameters(period)
        line = family("poverty_line", period)
        income = family("income_for_asp", period)
        members = family("members", period)
        able = family("able_bodied", period)
        carers = (
            family("children_under_7", period)
            + family("disabled_children", period)
            + family("disabled_group1", period)
            + family("disabled_group2", period)
        ) > 0
        exempt = family("social_contract", period) + family("long_ill_able", period) + carers
        eligible = (income < line) & ((able == 0) | (exempt >= able))
        if p.switches.need_test_loans:
            eligible &= (
                family("non_mortgage_debt", period) <= 2 * 3 * family("pm", period) * members
            )
        if p.switches.need_test_deposits:
            eligible &= family("deposits", period) <= 200 * p.mrp
        if p.switches.need_test_cars:
            eligible &= (
                (family("vehicles", period) <= 1)
                | (family("dependent_children", period) >= 4)
                | (family("disabled_children", period) > 0)
            )
        amount = (line - income) * members + 1.5 * p.mrp * family("children_1_6", period)
        return where(eligible, amount, 0.0)


class birth(Float64):
    value_type = float
    entity = Person
    definition_period = MONTH
    label = "Birth benefit (paid once)"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(person, period, parameters):
        mrp = parameters(period).mrp
        eligible = (person("age_months", period) < 12) & person.has_role(Family.CHILD)
        return where(eligible, where(person("birth_order", period) >= 4, 63.0, 38.0) * mrp, 0.0)


class childcare(Float64):
    value_type = float
    entity = Person
    definition_period = MONTH
    label = "Childcare benefit up to 1.5 years, a month"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(person, period, parameters):
        mrp = parameters(period).mrp
        eligible = (
            (person("age_months", period) < 18)
            & person.has_role(Family.CHILD)
            & ~person("mother_insured", period)
        )
        order = person("birth_order", period)
        rate = select([order >= 4, order == 3, order == 2], [8.90, 7.85, 6.81], 5.76)
        return where(eligible, rate * mrp, 0.0)


class large_family(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Large family benefit, a month"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(family, period, parameters):
        mrp = parameters(period).mrp
        n = family("dependent_children", period)
        rate = select([n >= 8, n == 7, n == 6, n == 5], [4.01 * n, 28.06, 24.05, 20.04], 16.03)
        return where(n >= 4, rate * mrp, 0.0)


class awarded_mother(Float64):
    value_type = float
    entity = Person
    definition_period = MONTH
    label = "Benefit to mothers awarded Kumis / Altyn alka or Mother-heroine, a month"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(person, period, parameters):
        mrp = parameters(period).mrp
        a = person("award", period)
        return where(a != Award.none, where(a == Award.kumis_alka, 6.40, 7.40) * mrp, 0.0)


class disability(Float64):
    value_type = float
    entity = Person
    definition_period = MONTH
    label = "Disability benefit (general illness), a month"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(person, period, parameters):
        group = person("disability_group", period)
        eligible = ((group >= 1) & (group <= 3)) & ~person("pension_age", period)
        rate = select([group == 1, group == 2], [2.20, 1.76], 1.20)
        return where(eligible, rate * person.family("pm", period), 0.0)


class breadwinner_loss(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Loss of breadwinner benefit, a month"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(family, period, parameters):
        n = family("breadwinner_dependents", period)
        rate = select([n >= 4, n == 3, n == 2], [3.0, 2.14, 1.53], 0.92)
        return where(n >= 1, rate * family("pm", period), 0.0)


class carer_disabled_child_claim(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Carer of a disabled child, before incompatibilities"

    def formula(family, period, parameters):
        return where(family("disabled_children", period) >= 1, 1.61 * family("pm", period), 0.0)


class carer_disabled_adult_claim(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Carer of a person with group I disability, before incompatibilities"

    def formula(family, period, parameters):
        g1 = family("disabled_group1", period)
        carer = family("able_bodied", period) >= 1
        return where((g1 >= 1) & carer, 1.40 * family("pm", period), 0.0)


def _kept(own: np.ndarray, own_id: str, other: np.ndarray, other_id: str) -> np.ndarray:
    """`own` where the incompatible `other` does not beat it: the larger amount stays, a tie
    goes to the measure whose id sorts first (the batch's rule); a zero claims nothing."""
    beaten = (other > 0) & ((other > own) | ((other == own) & (other_id < own_id)))
    return where((own > 0) & ~beaten, own, 0.0)


class carer_disabled_child(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Carer of a disabled child, a month (not with carer_disabled_adult)"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(family, period, parameters):
        own = family("carer_disabled_child_claim", period)
        other = family("carer_disabled_adult_claim", period)
        return _kept(own, "carer_disabled_child", other, "carer_disabled_adult")


class carer_disabled_adult(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Carer of a person with group I disability, a month (not with carer_disabled_child)"
    reference = "Social Code No. 224-VII, art. 158"

    def formula(family, period, parameters):
        own = family("carer_disabled_adult_claim", period)
        other = family("carer_disabled_child_claim", period)
        return _kept(own, "carer_disabled_adult", other, "carer_disabled_child")


class housing_assistance(Float64):
    value_type = float
    entity = Family
    definition_period = MONTH
    label = "Housing assistance, a month"
    reference = 'Law "On housing relations", art. 97'

    def formula(family, period, parameters):
        income = family("income_per_capita_3m", period)
        norm = family("normative_housing_costs", period)
        own_share = family("housing_share", period) * income * family("members", period)
        eligible = (income < family("pm", period)) & (norm > own_share)
        return where(eligible, norm - own_share, 0.0)


class age_pension(Float64):
    value_type = float
    entity = Person
    definition_period = MONTH
    label = "Age pension (basic + minimum solidarity part), a month"
    reference = "Social Code No. 224-VII, ch. 17"

    def formula(person, period, parameters):
        p = parameters(period)
        years = person("age", period)
        s = person("sex", period)
        eligible = ((s == Sex.M) & (years >= p.pension_age_men)) | (
            (s == Sex.F) & (years >= p.pension_age_women)
        )
        return where(eligible, p.base_pension + p.min_pension, 0.0)


# measure -> (level, period of payment), as declared in national.yaml; checked against it
MEASURES = {
    "asp": ("family", "monthly"),
    "birth": ("person", "once"),
    "childcare": ("person", "monthly"),
    "large_family": ("family", "monthly"),
    "awarded_mother": ("person", "monthly"),
    "disability": ("person", "monthly"),
    "breadwinner_loss": ("family", "monthly"),
    "carer_disabled_child": ("family", "monthly"),
    "carer_disabled_adult": ("family", "monthly"),
    "housing_assistance": ("family", "monthly"),
    "age_pension": ("person", "monthly"),
}
INCOMPATIBLE = {("carer_disabled_adult", "carer_disabled_child")}
SWITCHES = ("need_test_cars", "need_test_deposits", "need_test_loans")
USED_PARAMETERS = (
    "mrp",
    "pm",
    "base_pension",
    "min_pension",
    "pension_age_men",
    "pension_age_women",
)
VARIABLES = [
    region, age, age_months, disability_group, birth_order, mother_insured, sex, award,
    *(_family_input(k, int, v) for k, v in FAMILY_INTS.items()),
    *(_family_input(k, float, v) for k, v in FAMILY_FLOATS.items()),
    pm, housing_share, income_for_asp, pension_age, normative_housing_costs,
    asp, birth, childcare, large_family, awarded_mother, disability, breadwinner_loss,
    carer_disabled_child_claim, carer_disabled_adult_claim, carer_disabled_child,
    carer_disabled_adult, housing_assistance, age_pension,
]  # fmt: skip


# --- the system -----------------------------------------------------------------------------------


def national_catalogue(country: str = "kz") -> Catalogue:
    """The measures of the national catalogue (no region), as the batch reads them."""
    cat = load_catalogue(country)
    national = [m for m in cat.measures if m.region is None]
    return Catalogue(measures=national, sources={m.id: cat.sources[m.id] for m in national})


def check_against_catalogue(cat: Catalogue, on: date) -> None:
    """Refuse to run when the catalogue's national measures in force are not the ones written
    here (a measure added, removed or changed in level, period, incompatibility or switch)."""
    declared = {m.id: (m.level, m.period) for m in cat.in_force(on)}
    pairs = {tuple(sorted((m.id, o))) for m in cat.in_force(on) for o in m.incompatible_with}
    switches = tuple(sorted({c.switch for m in cat.measures for c in m.eligibility if c.switch}))
    problems = []
    if declared != MEASURES:
        problems.append(f"measures in force {declared} != the twin's {MEASURES}")
    if pairs != INCOMPATIBLE:
        problems.append(f"incompatible pairs {sorted(pairs)} != the twin's {sorted(INCOMPATIBLE)}")
    if switches != SWITCHES:
        problems.append(f"switches {switches} != the twin's {SWITCHES}")
    if problems:
        raise ValueError(
            "the OpenFisca twin is out of date with the catalogue: " + "; ".join(problems)
        )


def _undated(name: str, tree: dict) -> ParameterNode:
    """A parameter node of undated values (in force from ALWAYS): {key: value or subtree}."""

    def data(x: dict | float | bool) -> dict:
        if isinstance(x, dict):
            return {k: data(v) for k, v in x.items()}
        return {"values": {ALWAYS: x}}

    return ParameterNode(name, data=data(tree))


class NationalMeasures(TaxBenefitSystem):
    """The national measures of a country pack as an OpenFisca tax-benefit system."""

    def __init__(self, country: str = "kz", switches: dict[str, bool] | None = None) -> None:
        super().__init__([Person, Family])
        pack = load_country(country)
        self.load_parameters(str(PACKS_DIR / country / "parameters"))
        regions = {
            "pm_coefficient": {r.code: r.pm_coefficient for r in pack.regions},
            "housing_share": {r.code: r.housing_share_of_income for r in pack.regions},
        }
        self.parameters.add_child("regions", _undated("regions", regions))
        defaults = national_catalogue(country).switches
        chosen = {k: bool((switches or {}).get(k, defaults[k])) for k in SWITCHES}
        self.parameters.add_child("switches", _undated("switches", chosen))
        self.add_variables(*VARIABLES)
        self.country = pack


# --- a simulation over the facts of a run ---------------------------------------------------------


def _numpy(t: pa.Table, column: str, kind: type) -> np.ndarray:
    col = t.column(column)
    if kind is float:  # a NULL becomes NaN: every comparison with it is false, as in SQL
        return col.to_numpy(zero_copy_only=False).astype(np.float64)
    if col.null_count:
        raise ValueError(f"{column}: {col.null_count} NULL values where the batch has none")
    return col.to_numpy(zero_copy_only=False)


def _codes(values: pa.ChunkedArray, names: tuple[str, ...], what: str) -> pa.ChunkedArray:
    idx = pc.index_in(values, value_set=pa.array(names))
    if idx.null_count != values.null_count:
        raise ValueError(f"{what}: values other than {names}")
    return idx


def read_facts(data_dir: Path, on: date) -> tuple[pa.Table, pa.Table]:
    """The families (card + family facts, coalesced to 0 as in the batch) and the persons (with
    their months of age on `on`) of a run whose entitlements were computed (DIR/entitlements:
    `qamqor.measures.persons`, `family_facts.parquet`)."""
    data_dir = Path(data_dir)
    given = ("breadwinner_dependents", "long_ill_able", "asp_3m", "poverty_line")
    card_columns = ["family_id", "region"] + [
        c for c in (*FAMILY_INTS, *FAMILY_FLOATS) if c not in given
    ]
    cards = pq.read_table(card_path(data_dir, on), columns=card_columns)
    facts = pq.read_table(data_dir / "entitlements" / "family_facts.parquet")
    families = cards.join(facts, "family_id", join_type="left outer", use_threads=True)
    for c in ("breadwinner_dependents", "long_ill_able", "asp_3m"):
        i = families.schema.get_field_index(c)
        families = families.set_column(i, c, pc.fill_null(families.column(c), 0))
    columns = ", ".join(["person_id", "family_id", "person_role", *PERSON_INPUTS])
    stored = f"({stored_sql(data_dir / 'entitlements')}) p"
    con = connect()
    try:
        persons = con.sql(f"SELECT {columns} FROM ({with_age_months(on, stored)})").to_arrow_table()
    finally:
        con.close()
    return families, persons


def simulation(
    system: NationalMeasures,
    families: pa.Table,
    persons: pa.Table,
    month: Period,
    line: PovertyLine,
) -> Simulation:
    """A simulation of every family and person at once, built from whole arrays (the
    `SimulationBuilder` calls of OpenFisca's "initialise a simulation from data" recipe)."""
    family_of = pc.index_in(persons.column("family_id"), value_set=families.column("family_id"))
    if family_of.null_count:
        raise ValueError(f"{family_of.null_count} persons of no family in the card")
    family_of = family_of.to_numpy(zero_copy_only=False)
    if len(np.unique(family_of)) != families.num_rows:
        raise ValueError("a family of the card has no person in persons.parquet")
    roles = _codes(persons.column("person_role"), ROLES, "person_role")
    sb = SimulationBuilder()
    sb.create_entities(system)
    sb.declare_person_entity("person", np.arange(persons.num_rows))
    group = sb.declare_entity("family", np.arange(families.num_rows))
    sb.join_with_persons(group, family_of, roles.to_numpy(zero_copy_only=False))
    sim = sb.build(system)

    sim.set_input("region", month, families.column("region").to_numpy(zero_copy_only=False))
    for name in FAMILY_INTS:
        sim.set_input(name, month, _numpy(families, name, int))
    for name in FAMILY_FLOATS:
        if name != "poverty_line":
            sim.set_input(name, month, _numpy(families, name, float))
    codes = tuple(line.by_region)
    lines = np.array([line.by_region[c] for c in codes], dtype=np.float64)
    at = _codes(families.column("region"), codes, "region").to_numpy(zero_copy_only=False)
    sim.set_input("poverty_line", month, lines[at])
    for column, (name, kind) in PERSON_INPUTS.items():
        if kind in (Sex, Award):  # enum members by index (a NULL award: none)
            values = persons.column(column)
            if kind is Award:
                values = values.fill_null(Award.none.name)
            codes = _codes(values, tuple(kind.names), column)
            sim.set_input(name, month, codes.to_numpy(zero_copy_only=False))
        elif column == "person_disability_group":  # the batch coalesces it to 0
            sim.set_input(name, month, pc.fill_null(persons.column(column), 0).to_numpy())
        else:
            sim.set_input(name, month, _numpy(persons, column, kind))
    return sim


def entitlements(sim: Simulation, families: pa.Table, persons: pa.Table, month: Period) -> pa.Table:
    """Every national measure due: (family_id, person_id, measure, amount), amount > 0."""
    parts = []
    for measure, (level, _) in MEASURES.items():
        amount = sim.calculate(measure, month)
        rows = np.flatnonzero(amount > 0)
        if level == "person":
            fid = persons.column("family_id").take(rows)
            pid = persons.column("person_id").take(rows)
        else:
            fid = families.column("family_id").take(rows)
            pid = pa.nulls(len(rows), pa.string())
        parts.append(
            pa.table(
                {
                    "family_id": fid,
                    "person_id": pid,
                    "measure": pa.repeat(pa.scalar(measure), len(rows)),
                    "amount": pa.array(amount[rows], pa.float64()),
                }
            )
        )
    return pa.concat_tables(parts)


def run_period(system: NationalMeasures, on: date) -> Period:
    """The month of `on`; refused when a parameter used changes between its first day and `on`."""
    month = period(f"{on.year:04d}-{on.month:02d}")
    first, day = system.parameters(month.start), system.parameters(on.isoformat())
    moved = [n for n in USED_PARAMETERS if first[n] != day[n]]
    if moved:
        raise ValueError(f"parameters {moved} change between {month.start} and {on}")
    return month


def compute(
    data_dir: Path,
    on: date,
    switches: dict[str, bool] | None = None,
    country: str = "kz",
    line: PovertyLine | None = None,
) -> pa.Table:
    """The national entitlements of a run computed by OpenFisca from its facts: a table of
    (family_id, person_id, measure, amount), as the national rows of entitlements.parquet."""
    data_dir = Path(data_dir)
    check_against_catalogue(national_catalogue(country), on)
    system = NationalMeasures(country, switches)
    month = run_period(system, on)
    if line is None:
        line = default_line(system.country, data_dir, on)
    families, persons = read_facts(data_dir, on)
    sim = simulation(system, families, persons, month, line)
    return entitlements(sim, families, persons, month)


def default_line(country: Country, data_dir: Path, on: date) -> PovertyLine:
    """The poverty line the batch uses for this run (median income of the card)."""
    median, source = median_income(data_dir, on)
    return poverty_line(country, on, median, source)


def compare(batch: pa.Table, twin: pa.Table, tolerance: float = 0.01) -> dict:
    """Rows of the batch and of the twin matched on (family_id, person_id, measure): per
    measure the rows of each, the rows only one has and the amounts further apart than
    `tolerance`; `agree` when there are none of either."""
    con = connect(threads=2)
    con.register("b", batch.select(["family_id", "person_id", "measure", "amount"]))
    con.register("t", twin.select(["family_id", "person_id", "measure", "amount"]))
    rows = con.execute(
        f"""SELECT coalesce(b.measure, t.measure), count(b.amount), count(t.amount),
                   count(*) FILTER (WHERE t.amount IS NULL),
                   count(*) FILTER (WHERE b.amount IS NULL),
                   count(*) FILTER (WHERE abs(b.amount - t.amount) > {float(tolerance)!r}),
                   coalesce(max(abs(b.amount - t.amount)), 0)
            FROM b FULL JOIN t ON b.family_id = t.family_id AND b.measure = t.measure
              AND coalesce(b.person_id, '') = coalesce(t.person_id, '')
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    con.close()
    keys = ("batch_rows", "twin_rows", "only_batch", "only_twin", "amount_mismatches")
    by_measure = {
        m: {**dict(zip(keys, v[:5], strict=True)), "max_abs_diff": v[5]} for m, *v in rows
    }
    total = {k: sum(m[k] for m in by_measure.values()) for k in keys}
    total["max_abs_diff"] = max((m["max_abs_diff"] for m in by_measure.values()), default=0.0)
    bad = total["only_batch"] + total["only_twin"] + total["amount_mismatches"]
    return {**total, "agree": bad == 0, "by_measure": by_measure}
