"""Methodology files: validation with line numbers, evaluation of hypothetical families, and the
properties every methodology must have (more income or fewer deprivations never worsens a
level; an emergency trigger always yields E)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qamqor.countries import PACKS_DIR
from qamqor.levels.explain import FamilyDocError, evaluate_family
from qamqor.levels.methodology import (
    LEVELS,
    MethodologyError,
    load_methodology,
    methodology_in_force,
)

REFERENCE = PACKS_DIR / "kz" / "methodology" / "2023-07-01.yaml"
ON = date(2025, 10, 1)
M = load_methodology(REFERENCE)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_reference_methodology_has_seven_groups_and_weights_summing_to_100() -> None:
    assert len(M.dimensions) == 7
    assert sum(i.weight for _, i in M.indicators) == M.total_weight == 100
    assert [b.level for b in M.levels] == list(LEVELS)
    assert {t.id for t in M.triggers} >= {"no_income_with_children", "child_without_parental_care"}


def test_methodology_in_force_depends_on_the_date(tmp_path: Path) -> None:
    assert methodology_in_force(ON).version == "2023.1"
    newer = _broken(tmp_path, 'version: "2023.1"', 'version: "2026.1"')
    newer = newer.rename(tmp_path / "2026-01-01.yaml")
    text = newer.read_text(encoding="utf-8").replace(
        "valid_from: 2023-07-01", "valid_from: 2026-01-01"
    )
    newer.write_text(text, encoding="utf-8")
    (tmp_path / "2023-07-01.yaml").write_text(REFERENCE.read_text(encoding="utf-8"))
    assert methodology_in_force(ON, folder=tmp_path).version == "2023.1"
    assert methodology_in_force(date(2026, 3, 1), folder=tmp_path).version == "2026.1"
    with pytest.raises(MethodologyError, match="no methodology in force on 2020-01-01"):
        methodology_in_force(date(2020, 1, 1), folder=tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "line_of", "message"),
    [
        ("value: max_overdue_days", "value: max_overdue_dayz", "max_overdue_dayz",
         "unknown indicator 'max_overdue_dayz'"),
        ("weight: 18", "weight: 19", "total_weight:",
         "weights sum to 101, but total_weight declares 100"),
        ("{level: C, from: 18, to: 28}", "{level: C, from: 16, to: 28}", "level: C",
         "level C overlaps level B"),
        ("{level: C, from: 18, to: 28}", "{level: C, from: 20, to: 28}", "level: C",
         "level C leaves a gap after level B"),
        ("value: working", "value: sha256(working)", "sha256", "function 'SHA256(working)'"),
        ("value: working", "value: (SELECT 1)", "SELECT 1", "is not allowed"),
        ("        weight: 4\n", "        weight: 4\n        wieght: 4\n", "wieght",
         "Extra inputs are not permitted"),
        ("poverty_cutoff: 33", "poverty_cutoff: 33\npoverty_cutoff: 34", "poverty_cutoff: 34",
         "duplicate key 'poverty_cutoff'"),
        ("weight: 6", "weight: -6", "weight: -6", "greater than 0"),
        ("when: children > 0 AND children = members", "when: children >", "when: children >",
         "cannot parse expression"),
    ],
)  # fmt: skip
def test_a_broken_file_is_rejected_naming_line_and_problem(
    tmp_path: Path, old: str, new: str, line_of: str, message: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(MethodologyError) as e:
        load_methodology(path)
    assert f"{path}:{_line_of(path, line_of)}:" in str(e.value)
    assert message in str(e.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ndimensions: [\n")
    with pytest.raises(MethodologyError, match="invalid YAML"):
        load_methodology(bad)
    with pytest.raises(MethodologyError, match="cannot read"):
        load_methodology(tmp_path / "nope.yaml")


# --- hypothetical families ----------------------------------------------------------------

COMFORTABLE = {
    "region": "KZ-75", "urban": True, "members": 4, "children": 2, "dependent_children": 2,
    "able_bodied": 2, "working": 2, "pensioners": 0, "disabled": 0, "disabled_children": 0,
    "disabled_group1": 0, "school_age_not_enrolled": 0, "preschool_not_enrolled": 0,
    "income_per_capita_3m": 250_000.0, "max_overdue_days": 0, "loan_payments": 50_000.0,
    "dwellings": 1.0, "tenure": "owned", "property_value": 30e6, "vehicle_value": 5e6,
    "deposits": 1e6, "dependency_ratio": 1.0, "pensions_3m": 0.0, "benefits_3m": 0.0,
    "registered_unemployed": 0, "large_livestock": 0.0, "small_livestock": 0.0,
    "land_plots": 0.0, "area_per_person": 20.0, "water": True, "sewerage": True,
    "heating": "central", "housing_costs": 40_000.0,
}  # fmt: skip


def test_a_comfortable_family_is_level_a_and_explained() -> None:
    e = evaluate_family(COMFORTABLE, ON)
    assert (e.level, e.score, e.emergency_trigger) == ("A", 0.0, None)
    assert len(e.indicators) == 19 and not any(i.deprived for i in e.indicators)
    assert e.parameters["mrp"] == 3932


def test_points_add_up_and_bands_apply() -> None:
    poor = {**COMFORTABLE, "income_per_capita_3m": 30_000.0, "water": False, "sewerage": False}
    e = evaluate_family(poor, ON)
    deprived = {i.indicator for i in e.indicators if i.deprived}
    assert {"income_below_pm", "no_piped_water", "no_sewerage"} <= deprived
    assert e.score == sum(i.points for i in e.indicators) >= 18 + 3 + 2
    assert e.level == next(b["level"] for b in e.bands if b["from"] <= e.score < b["to"])


def test_bad_family_documents_are_rejected() -> None:
    with pytest.raises(FamilyDocError, match="unknown indicator"):
        evaluate_family({**COMFORTABLE, "incomee": 1}, ON)
    missing = dict(COMFORTABLE)
    del missing["water"]
    with pytest.raises(FamilyDocError, match=r"missing indicator.*water"):
        evaluate_family(missing, ON)
    with pytest.raises(FamilyDocError, match="members: expected int"):
        evaluate_family({**COMFORTABLE, "members": "four"}, ON)


FIXES = {  # values that remove one deprivation each, and can only improve a family
    "water": True, "sewerage": True, "heating": "central", "school_age_not_enrolled": 0,
    "preschool_not_enrolled": 0, "max_overdue_days": 0, "registered_unemployed": 0,
    "disabled": 0, "disabled_group1": 0, "disabled_children": 0, "loan_payments": 0.0,
    "housing_costs": 0.0, "area_per_person": 40.0, "large_livestock": 5.0, "dwellings": 1.0,
    "deposits": 1e9, "dependency_ratio": 0.0,
}  # fmt: skip

families = st.fixed_dictionaries(
    {
        **{k: st.just(v) for k, v in COMFORTABLE.items()},
        "urban": st.booleans(),
        "members": st.integers(1, 9),
        "children": st.integers(0, 6),
        "dependent_children": st.integers(0, 6),
        "able_bodied": st.integers(0, 3),
        "working": st.integers(0, 3),
        "disabled": st.integers(0, 2),
        "disabled_group1": st.integers(0, 1),
        "disabled_children": st.integers(0, 1),
        "school_age_not_enrolled": st.integers(0, 1),
        "preschool_not_enrolled": st.integers(0, 1),
        "income_per_capita_3m": st.floats(0, 600_000),
        "max_overdue_days": st.integers(0, 400),
        "loan_payments": st.floats(0, 500_000),
        "dwellings": st.sampled_from([0.0, 1.0]),
        "tenure": st.sampled_from(["owned", "rented", "social"]),
        "deposits": st.floats(0, 5e6),
        "property_value": st.floats(0, 5e7),
        "dependency_ratio": st.floats(0, 6),
        "registered_unemployed": st.integers(0, 1),
        "area_per_person": st.floats(5, 60),
        "water": st.booleans(),
        "sewerage": st.booleans(),
        "heating": st.sampled_from(["central", "gas", "stove", "none"]),
        "housing_costs": st.floats(0, 200_000),
    }
)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rank(level: str) -> int:
    return LEVELS.index(level)


@PROPERTY
@given(families, st.floats(0, 1_000_000))
def test_more_income_never_worsens_the_level(family: dict, extra: float) -> None:
    before = evaluate_family(family, ON)
    after = evaluate_family(
        {**family, "income_per_capita_3m": family["income_per_capita_3m"] + extra}, ON
    )
    assert after.score <= before.score
    assert _rank(after.level) <= _rank(before.level)


@PROPERTY
@given(families, st.sets(st.sampled_from(sorted(FIXES)), min_size=1))
def test_fewer_deprivations_never_worsen_the_level(family: dict, fixes: set[str]) -> None:
    before = evaluate_family(family, ON)
    after = evaluate_family({**family, **{k: FIXES[k] for k in fixes}}, ON)
    assert after.deprivations <= before.deprivations
    assert after.score <= before.score
    assert _rank(after.level) <= _rank(before.level)


@PROPERTY
@given(families, st.sampled_from([t.id for t in M.triggers]))
def test_an_emergency_trigger_always_yields_e(family: dict, trigger: str) -> None:
    forced = {
        "no_income_with_children": {"income_per_capita_3m": 0.0, "dependent_children": 2},
        "child_without_parental_care": {"children": 2, "members": 2},
        "alone_with_group1_disability": {"members": 1, "disabled_group1": 1},
    }[trigger]
    e = evaluate_family({**family, **forced}, ON)
    assert e.level == "E"
    assert e.emergency_trigger is not None


def test_the_documented_example_family_evaluates() -> None:
    import json
    import re

    doc = (Path(__file__).parents[2] / "docs" / "methodology.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", doc, re.S)
    assert example is not None
    e = evaluate_family(json.loads(example.group(1)), ON)
    assert (e.score, e.level) == (55.0, "E")
