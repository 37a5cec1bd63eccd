"""Hand-computed cases for every national measure (family -> amount), dated parameters, the
ASP poverty line, switchable need tests, incompatible measures and broken catalogue files.

Every case runs the batch SQL (`entitlements_sql`) on DuckDB over a one-family nation, in
region KZ-19 (Almaty region, PM coefficient 1.00, housing share 8 %). Figures (SPEC §8):
2025: MRP 3,932, PM 46,228; 2024: MRP 3,692, PM 43,407; 2026: MRP 4,325, PM 50,851.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.countries import PACKS_DIR, load_country
from qamqor.engine import connect
from qamqor.measures.catalogue import (
    FAMILY_FACTS,
    STORED_PERSON_FACTS,
    MeasureError,
    load_catalogue,
    load_measure_file,
)
from qamqor.measures.compute import entitlements_sql, poverty_line

ON = date(2025, 10, 1)
ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "date": pa.date32(),
}
CAT = load_catalogue()
KZ = load_country()


def family(**values) -> dict:
    base = {k: (0 if v in ("int", "float") else None) for k, v in FAMILY_COLUMNS.items()}
    base.update(family_id="f1", region="KZ-19", district="KZ-19-01", urban=True, members=1,
                income_per_capita_3m=500_000.0, housing_area_m2=40.0, tenure="owned")  # fmt: skip
    base.update(values)
    return base


def person(pid: str, **values) -> dict:
    base = {"person_id": pid, "family_id": "f1", "person_age": 40, "person_age_months": 480,
            "person_sex": "F", "person_role": "head", "person_disability_group": 0,
            "person_student": False, "person_pension_age": False, "person_insured": True,
            "person_mother_insured": True, "person_award": None, "person_birth_order": 1,
            "person_long_ill": False, "person_parent_died": False, "asp_3m": 0.0}  # fmt: skip
    base.update(values)
    return base


def born(months: int, on: date) -> date:
    """A birth date `months` whole months before `on` (persons store the birth date; the rules
    compute the months of age)."""
    y, m = divmod(on.year * 12 + on.month - 1 - months, 12)
    return date(y, m + 1, min(on.day, 28))


def entitled(
    fam: dict, people: list[dict] | None = None, facts: dict | None = None, on: date = ON,
    median: float = 100_000.0, switches: dict | None = None,
) -> dict[str, float]:  # fmt: skip
    """measure -> total amount for the one family."""
    people = people or [person("p1")]
    cards = pa.table({k: pa.array([fam[k]], ARROW[v]) for k, v in FAMILY_COLUMNS.items()})
    ff = {"family_id": "f1"} | {k: 0 for k in FAMILY_FACTS if k != "income_for_asp"}
    ff.update(facts or {})
    ff_t = pa.table(
        {"family_id": ["f1"]}
        | {k: pa.array([ff[k]], ARROW[v]) for k, v in FAMILY_FACTS.items() if k != "income_for_asp"}
    )
    kinds = {"person_id": "text", "family_id": "text", **STORED_PERSON_FACTS, "asp_3m": "float"}
    people = [p | {"person_birth_date": born(p["person_age_months"], on)} for p in people]
    persons = pa.table({k: pa.array([p[k] for p in people], ARROW[v]) for k, v in kinds.items()})
    line = poverty_line(KZ, on, median, "test")
    con = connect(threads=1)
    for name, t in (("cards", cards), ("family_facts", ff_t), ("persons", persons)):
        con.register(name, t)
    rows = con.execute(
        f"SELECT measure, sum(amount) FROM ({entitlements_sql(CAT, KZ, on, line, switches)}) "
        "GROUP BY 1"
    ).fetchall()
    con.close()
    return {m: round(a, 2) for m, a in rows}


def test_large_family_4_to_8_children() -> None:
    # 5 children: 20.04 MRP = 20.04 x 3,932 = 78,797.28; 8 children: 4.01 x 8 x 3,932.
    assert (
        entitled(family(dependent_children=5, children=5, members=7))["large_family"] == 78_797.28
    )
    assert entitled(family(dependent_children=8, children=8))["large_family"] == 126_138.56
    assert "large_family" not in entitled(family(dependent_children=3, children=3))


def test_mrp_changes_on_1_january() -> None:
    # 4 children: 16.03 MRP: 16.03 x 3,932 = 63,029.96 on 31 Dec 2025; x 4,325 = 69,329.75 on
    # 1 Jan 2026.
    fam = family(dependent_children=4, children=4)
    assert entitled(fam, on=date(2025, 12, 31))["large_family"] == 63_029.96
    assert entitled(fam, on=date(2026, 1, 1))["large_family"] == 69_329.75


def test_awarded_mothers() -> None:
    # Kumis alka 6.40 x 3,932 = 25,164.80; Altyn alka 7.40 x 3,932 = 29,096.80.
    assert (
        entitled(family(), [person("p1", person_award="kumis_alka")])["awarded_mother"] == 25_164.8
    )
    assert (
        entitled(family(), [person("p1", person_award="altyn_alka")])["awarded_mother"] == 29_096.8
    )


def test_disability_by_group_not_for_pensioners() -> None:
    # Group II: 1.76 x PM 46,228 = 81,361.28; group I: 2.20 x 46,228 = 101,701.60.
    assert entitled(family(), [person("p1", person_disability_group=2)])["disability"] == 81_361.28
    assert entitled(family(), [person("p1", person_disability_group=1)])["disability"] == 101_701.6
    old = person("p1", person_disability_group=3, person_pension_age=True, person_age=70)
    assert "disability" not in entitled(family(), [old])


def test_breadwinner_loss_by_dependants() -> None:
    # 2 dependants: 1.53 x 46,228 = 70,728.84.
    out = entitled(family(children=2), facts={"breadwinner_dependents": 2})
    assert out["breadwinner_loss"] == 70_728.84


def test_carers_are_incompatible_the_larger_stays() -> None:
    # Carer of a disabled child 1.61 x 46,228 = 74,427.08 beats the carer of a group I adult
    # 1.40 x 46,228 = 64,719.20 in the same family: only the first is granted.
    fam = family(members=3, disabled_children=1, disabled_group1=1, disabled=2, able_bodied=1)
    out = entitled(fam)
    assert out["carer_disabled_child"] == 74_427.08
    assert "carer_disabled_adult" not in out
    fam = family(members=2, disabled_group1=1, able_bodied=1)
    assert entitled(fam)["carer_disabled_adult"] == 64_719.2


def test_a_carer_of_a_group_i_adult_is_an_able_bodied_adult() -> None:
    # A group I mother with only her child (or a pensioner) at home: nobody who can care.
    assert "carer_disabled_adult" not in entitled(family(members=2, disabled_group1=1, children=1))
    fam = family(members=2, disabled_group1=1, pensioners=1)
    assert "carer_disabled_adult" not in entitled(fam)


def test_birth_and_childcare() -> None:
    # 4th child born 2 months ago, mother uninsured: birth 63 x 3,932 = 247,716 (once),
    # childcare 8.90 x 3,932 = 34,994.80 a month. A 1st child of an insured mother: birth
    # 38 x 3,932 = 149,416 only.
    baby = person("b", person_role="child", person_age=0, person_age_months=2,
                  person_birth_order=4, person_mother_insured=False)  # fmt: skip
    out = entitled(family(members=2, children=1), [person("p1"), baby])
    assert out["birth"] == 247_716.0 and out["childcare"] == 34_994.8
    first = person("b", person_role="child", person_age=0, person_age_months=5)
    out = entitled(family(members=2, children=1), [person("p1"), first])
    assert out["birth"] == 149_416.0 and "childcare" not in out


def test_age_pension_by_age_and_sex() -> None:
    # Woman 61: base 32,360 + minimum solidarity 62,771 = 95,131. Man 62: not yet.
    assert entitled(family(), [person("p1", person_age=61)])["age_pension"] == 95_131.0
    assert "age_pension" not in entitled(family(), [person("p1", person_age=62, person_sex="M")])


def test_housing_assistance() -> None:
    # 2 people, 40 m2, costs 30,000, income 20,000 a head: norm 36/40 of costs = 27,000, minus
    # 8 % of 40,000 = 3,200 -> 23,800.
    fam = family(members=2, housing_area_m2=40.0, housing_costs=30_000.0,
                 income_per_capita_3m=20_000.0)  # fmt: skip
    assert entitled(fam)["housing_assistance"] == 23_800.0


def test_asp_poverty_line_and_child_supplement() -> None:
    # 2025: line = max(35 % x median 100,000, 70 % x 46,228) = 35,000. 4 members at 20,000
    # a head, one child aged 3, no able-bodied member: (35,000 - 20,000) x 4 + 1.5 x 3,932.
    fam = family(members=4, children=2, children_1_6=1, income_per_capita_3m=20_000.0)
    assert entitled(fam)["asp"] == 65_898.0
    # A low median: the floor 70 % x 46,228 = 32,359.60 applies -> 12,359.60 x 4 + 5,898.
    assert entitled(fam, median=50_000.0)["asp"] == 55_336.4
    # 2024: 70 % of PM 43,407 = 30,384.90 -> 10,384.90 x 4 + 1.5 x 3,692 = 47,077.60.
    assert entitled(fam, on=date(2024, 10, 1))["asp"] == 47_077.6


def test_asp_social_contract_and_unconditional_categories() -> None:
    poor = dict(members=3, children=1, income_per_capita_3m=10_000.0, able_bodied=2)
    assert "asp" not in entitled(family(**poor, children_under_7=0))  # nobody signed
    assert "asp" in entitled(family(**poor, social_contract=2))  # both signed
    # One carer of a child under 7 is exempt; the other signed.
    assert "asp" in entitled(family(**poor, children_under_7=1, social_contract=1))
    # ASP received is not income for ASP: 3 x 10,000 includes 9,000 of ASP.
    fam = family(**poor, social_contract=2)
    assert entitled(fam, facts={"asp_3m": 9_000.0})["asp"] == (35_000 - 7_000) * 3


def test_need_tests_are_off_by_default_and_switchable() -> None:
    fam = family(members=1, income_per_capita_3m=10_000.0, deposits=1_000_000.0)
    assert "asp" in entitled(fam)
    assert "asp" not in entitled(fam, switches={"need_test_deposits": True})  # > 200 MRP
    cars = family(members=1, income_per_capita_3m=10_000.0, vehicles=2.0)
    assert "asp" not in entitled(cars, switches={"need_test_cars": True})


def test_regional_measures_overlap_and_apply_only_in_their_region() -> None:
    fam = family(region="KZ-75", dependent_children=4, children=4, members=6)
    out = entitled(fam)
    assert {
        "large_family",
        "almaty_large_family_supplement",
        "almaty_large_family_transport",
    } <= set(out)
    assert "almaty_large_family_supplement" not in entitled(family(dependent_children=4))


def test_regional_incompatible_pair() -> None:
    # Turkestan: food help (6 MRP = 23,592 a quarter) vs the ASP top-up (2 MRP x 6 members =
    # 47,184 a quarter): the larger stays.
    fam = family(region="KZ-61", dependent_children=4, children=4, members=6,
                 income_per_capita_3m=10_000.0)  # fmt: skip
    out = entitled(fam)
    assert out["turkestan_asp_topup"] == 47_184.0 and "turkestan_large_family_food" not in out


def test_every_national_measure_of_spec_9_is_declared() -> None:
    national = {m.id for m in CAT.measures if m.region is None}
    assert national == {"asp", "birth", "childcare", "large_family", "awarded_mother",
                        "disability", "breadwinner_loss", "carer_disabled_child",
                        "carer_disabled_adult", "housing_assistance", "age_pension"}  # fmt: skip
    assert len({m.region for m in CAT.measures if m.region}) >= 3


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("when: dependent_children >= 4", "when: nonsense >= 4", "unknown indicator 'nonsense'"),
        ("period: monthly", "period: weekly", "period"),
    ],
)
def test_broken_measure_file_names_file_and_line(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    text = (PACKS_DIR / "kz" / "measures" / "KZ-75-almaty.yaml").read_text(encoding="utf-8")
    broken = text.replace(old, new, 1)
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if new in ln)
    path = tmp_path / "bad.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(MeasureError) as e:
        load_measure_file(path)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert problem in str(e.value)


@settings(max_examples=60, deadline=None)
@given(
    families=st.lists(
        st.tuples(st.one_of(st.none(), st.sampled_from([0.0, 50.0, 80.5, 120.0])),
                  st.integers(1, 6)),
        min_size=1, max_size=40,
    )
)  # fmt: skip
def test_median_income_is_the_people_weighted_median(families, tmp_path_factory) -> None:
    """The median per-capita income (the poverty line's base) is the smallest income at which
    the people of the families ordered by income reach half of all people; families without an
    income count among the people but not among the incomes. Many families share an income."""
    import pyarrow.parquet as pq

    from qamqor.measures.compute import median_income

    data_dir = tmp_path_factory.mktemp("median")
    folder = data_dir / "cards" / "history" / "2025-10-01"
    folder.mkdir(parents=True)
    income = [x for x, _ in families]
    members = [n for _, n in families]
    pq.write_table(
        pa.table({"income_per_capita_3m": pa.array(income, pa.float64()), "members": members}),
        folder / "families.parquet",
    )
    total = sum(members)
    known = sorted({x for x in income if x is not None})
    reached = [
        v for v in known if sum(n for x, n in families if x is not None and x <= v) >= total / 2
    ]
    value, _ = median_income(data_dir, date(2025, 10, 2))
    assert value == (reached[0] if reached else 0.0)
