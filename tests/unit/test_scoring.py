"""The scoring criteria as data, hand-scored families, and monotonicity in income."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qamqor.scoring.hidden_income import family_order
from qamqor.scoring.score import CRITERIA_FILE, GROUPS, Criteria, load_criteria, score_family

ON = date(2025, 10, 1)


def _pm(region: str = "KZ-71") -> float:
    from qamqor.countries import load_country

    return load_country("kz").regional_pm(region, ON)


def card(**over) -> dict:
    """A two-parent family of four in an owned, equipped Astana flat; nothing special."""
    base = {
        "family_id": "f0",
        "region": "KZ-71",
        "members": 4,
        "children": 2,
        "pensioners": 0,
        "disabled": 0,
        "disabled_children": 0,
        "disabled_group1": 0,
        "disabled_group2": 0,
        "disabled_group3": 0,
        "able_bodied": 2,
        "working": 1,
        "school_age_not_enrolled": 0,
        "preschool_not_enrolled": 0,
        "wages_3m": 400_000.0,
        "wages_12m": 400_000.0,
        "self_employment_3m": 0.0,
        "self_employment_12m": 0.0,
        "pensions_3m": 0.0,
        "benefits_3m": 0.0,
        "dwellings": 1.0,
        "commercial": 0.0,
        "land_plots": 0.0,
        "property_value": 30_000_000.0,
        "vehicles": 0.0,
        "vehicle_value": 0.0,
        "debt": 0.0,
        "loan_payments": 0.0,
        "max_overdue_days": 0,
        "microcredit_debt": 0.0,
        "deposits": 0.0,
        "large_livestock": 0.0,
        "small_livestock": 0.0,
        "registered_unemployed": 0,
        "tenure": "owned",
        "housing_area_m2": 72.0,
        "water": True,
        "sewerage": True,
        "gas": False,
        "heating": "central",
        "internet": True,
        "housing_costs": 30_000.0,
    }
    base.update(over)
    return _derived(base)


def _derived(c: dict) -> dict:
    income_3m = c["wages_3m"] + c["self_employment_3m"] + c["pensions_3m"] + c["benefits_3m"]
    income_12m = c["wages_12m"] + c["self_employment_12m"] + c["pensions_3m"] + c["benefits_3m"]
    c["income_per_capita_3m"] = income_3m / c["members"]
    c["income_per_capita_12m"] = income_12m / c["members"]
    c["area_per_person"] = c["housing_area_m2"] / c["members"]
    c["dependency_ratio"] = (c["members"] - c["working"]) / max(c["working"], 1)
    return c


def test_criteria_file_validates() -> None:
    crit = load_criteria()
    assert len(crit.criteria) == 23
    assert {c.group for c in crit.criteria} == set(GROUPS)
    codes = [c.code for c in crit.categories]
    assert (codes[0], codes[-1]) == ("extreme_need", "high_well_being")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["criteria"].append(dict(d["criteria"][0])),  # duplicate name
        lambda d: d["criteria"][0].update(group="luck"),
        lambda d: d["criteria"][0].update(bands=[]),
        lambda d: d["categories"].reverse(),
        lambda d: d["criteria"][0]["bands"][0].update(colour="red"),
    ],
)
def test_bad_criteria_are_rejected(change) -> None:
    data = yaml.safe_load(CRITERIA_FILE.read_text())
    change(data)
    with pytest.raises(ValidationError):
        Criteria.model_validate(data)


def _points(result: dict) -> dict[str, int]:
    return {c["name"]: c["points"] for c in result["criteria"] if c["points"]}


def test_ordinary_family_by_hand() -> None:
    # 400 k for four in Astana: 100 k a head, 2.1 PM (4 points); 18 m² each (no points);
    # 3 dependants per earner (5); one able-bodied adult without work is not a penalty.
    r = score_family(card(), on=ON)
    per_head = 100_000 / _pm()
    assert 1.5 <= per_head < 2.5
    assert _points(r) == {"income_level": 4, "dependency_load": 5}
    assert (r["material"], r["non_material"], r["dependency_load"], r["capacity"]) == (4, 0, 5, 0)
    assert r["total"] == 9 and r["category"] == "vulnerable"


def test_family_without_money_for_food_is_in_extreme_need() -> None:
    # A single mother of three, 40 k a month, renting 30 m² with stove heating.
    c = card(
        members=4, children=3, able_bodied=1, working=1, wages_3m=40_000.0,
        wages_12m=40_000.0, tenure="rented", housing_area_m2=30.0, heating="stove",
        sewerage=False, housing_costs=45_000.0, dwellings=0.0, property_value=0.0,
    )  # fmt: skip
    r = score_family(c, on=ON)
    p = _points(r)
    assert p["income_level"] == 40 and p["income_sustained"] == 5
    assert p["single_parent"] == 5 and p["tenure"] == 4 and p["amenities"] == 4
    assert p["living_space"] == 4 and p["housing_cost_burden"] == 5
    assert r["category"] == "extreme_need"
    reasons = {c["name"]: c["reason"] for c in r["criteria"]}
    assert "not enough for food" in reasons["income_level"]


def test_wealthy_family_is_high_well_being() -> None:
    c = card(
        wages_3m=2_000_000.0, wages_12m=2_000_000.0, working=2, vehicles=2.0,
        vehicle_value=30_000_000.0, deposits=5_000_000.0, dwellings=2.0, commercial=1.0,
    )  # fmt: skip
    r = score_family(c, on=ON)
    p = _points(r)
    assert p["real_estate"] == -12 and p["deposits"] == -10 and p["vehicles"] == -8
    assert r["category"] == "high_well_being"


def test_hidden_income_flag_counts_and_is_explained() -> None:
    hidden = {"hidden_income_flag": True, "explanation": "driven by: value of vehicles 9,000,000"}
    plain, flagged = score_family(card(), on=ON), score_family(card(), hidden, on=ON)
    assert flagged["total"] == plain["total"] - 15 and flagged["hidden_income_flag"]
    reason = next(c["reason"] for c in flagged["criteria"] if c["name"] == "hidden_income")
    assert "value of vehicles" in reason


@settings(max_examples=25, deadline=None)
@given(
    wages=st.floats(0, 3_000_000),
    pensions=st.floats(0, 300_000),
    factor=st.floats(1.0, 20.0),
    members=st.integers(1, 9),
    loans=st.floats(0, 500_000),
    housing=st.floats(0, 300_000),
)
def test_more_income_never_increases_vulnerability(
    wages: float, pensions: float, factor: float, members: int, loans: float, housing: float
) -> None:
    def family(k: float) -> dict:
        return card(
            members=members, children=max(members - 2, 0), working=1 if wages > 0 else 0,
            wages_3m=wages * k, wages_12m=wages * k, pensions_3m=pensions * k,
            loan_payments=loans, housing_costs=housing,
        )  # fmt: skip

    assert score_family(family(factor), on=ON)["total"] <= score_family(family(1.0), on=ON)["total"]


@pytest.mark.parametrize(
    "ids",
    [
        ["00000000000000ff", "a000000000000000", "0000000000000001", "7fffffffffffffff"],
        ["F-3", "F-10", "F-1", "F-2"],  # not pseudonyms: compared as text
    ],
)
def test_family_order_follows_the_ids(ids: list[str]) -> None:
    series = pd.Series(ids, dtype="str")
    assert [ids[i] for i in family_order(series)] == sorted(ids)
