"""The Kazakhstan country pack and its loader."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from qamqor.countries import PACKS_DIR, Country, NotInForceError, load_country


@pytest.fixture(scope="module")
def kz() -> Country:
    return load_country("kz")


def _pop(items) -> float:
    return sum(x.population_thousands for x in items)


def test_header(kz: Country) -> None:
    assert kz.code == "kz"
    assert kz.currency == "KZT"
    assert kz.id_kind == "iin"
    assert kz.default_language == "kk"
    assert kz.languages == ["kk", "ru", "en"]
    assert set(kz.names) == {"kk", "ru", "en"}
    assert load_country() is kz  # cached


def test_regions(kz: Country) -> None:
    assert len(kz.regions) == 20
    kinds = [r.kind for r in kz.regions]
    assert kinds.count("oblast") == 17
    assert {r.code for r in kz.regions if r.kind == "city"} == {"KZ-71", "KZ-75", "KZ-79"}
    assert kz.region("KZ-61").name["en"] == "Turkestan Region"
    assert kz.region("KZ-62").name["ru"] == "область Ұлытау"
    for r in kz.regions:
        assert set(r.name) == set(r.capital) == {"kk", "ru", "en"}
        assert 0.05 <= r.housing_share_of_income <= 0.10
        assert 0.8 < r.pm_coefficient < 1.3
        if r.kind == "city":
            assert r.urban_share == 1.0
    assert kz.region("KZ-61").source["mean_income_per_capita"] == "published"
    assert kz.region("KZ-61").mean_income_per_capita == 109628
    assert kz.region("KZ-23").mean_income_per_capita == 362866
    assert kz.region("KZ-47").pm_coefficient > 1 > kz.region("KZ-61").pm_coefficient
    with pytest.raises(KeyError, match="KZ-99"):
        kz.region("KZ-99")


def test_national_urban_share(kz: Country) -> None:
    total = _pop(kz.regions)
    urban = sum(r.population_thousands * r.urban_share for r in kz.regions)
    assert urban / total == pytest.approx(0.63, abs=0.01)


def test_mean_income(kz: Country) -> None:
    total = _pop(kz.regions)
    mean = sum(r.population_thousands * r.mean_income_per_capita for r in kz.regions) / total
    assert mean == pytest.approx(194971, rel=0.03)


def test_districts_cover_regions(kz: Country) -> None:
    assert len(kz.districts) >= 150
    assert len({d.code for d in kz.districts}) == len(kz.districts)
    for r in kz.regions:
        ds = kz.districts_of(r.code)
        assert ds, r.code
        assert all(d.region == r.code and d.code.startswith(r.code + "-") for d in ds)
        if r.kind == "oblast":
            assert any(d.urban for d in ds), r.code
            assert any(not d.urban for d in ds), r.code
        else:
            assert all(d.urban for d in ds), r.code


def test_district_populations_match_regions(kz: Country) -> None:
    for r in kz.regions:
        ds = kz.districts_of(r.code)
        urban = _pop(d for d in ds if d.urban)
        rural = _pop(d for d in ds if not d.urban)
        assert urban == pytest.approx(r.urban_share * r.population_thousands, rel=0.15), r.code
        assert rural == pytest.approx(
            (1 - r.urban_share) * r.population_thousands, rel=0.15, abs=1
        ), r.code


TABLE = [
    ("mrp", date(2024, 6, 1), 3692),
    ("mrp", date(2025, 1, 1), 3932),
    ("mrp", date(2026, 12, 31), 4325),
    ("pm", date(2024, 1, 1), 43407),
    ("pm", date(2025, 7, 15), 46228),
    ("pm", date(2026, 3, 1), 50851),
    ("min_pension", date(2024, 3, 1), 57853),
    ("min_pension", date(2025, 3, 1), 62771),
    ("min_pension", date(2026, 3, 1), 62771),
    ("base_pension", date(2025, 2, 1), 32360),
    ("base_pension", date(2026, 2, 1), 32360),
    ("poverty_line_method", date(2024, 12, 31), "pm_share"),
    ("poverty_line_method", date(2025, 1, 1), "median_share"),
    ("poverty_line_method", date(2026, 6, 1), "median_share"),
    ("poverty_line_pm_share", date(2024, 6, 1), 0.70),
    ("poverty_line_median_share", date(2025, 6, 1), 0.35),
    ("poverty_line_floor_pm_share", date(2026, 6, 1), 0.70),
    ("pension_age_men", date(2024, 6, 1), 63),
    ("pension_age_men", date(2026, 6, 1), 63),
    ("pension_age_women", date(2025, 6, 1), 61),
]


@pytest.mark.parametrize(("name", "when", "expected"), TABLE)
def test_parameter_lookup(kz: Country, name: str, when: date, expected: float | str) -> None:
    assert kz.parameter(name).at(when) == expected


def test_parameter_metadata(kz: Country) -> None:
    for p in kz.parameters.values():
        assert p.description and p.unit and p.reference
        assert all(v.reference for v in p.values), p.name
    assert kz.parameter("mrp").unit == "currency-KZT"


@pytest.mark.parametrize(
    ("name", "when"),
    [
        ("mrp", date(2023, 12, 31)),
        ("base_pension", date(2024, 12, 31)),
        ("poverty_line_median_share", date(2024, 6, 1)),
    ],
)
def test_parameter_before_first_value(kz: Country, name: str, when: date) -> None:
    with pytest.raises(NotInForceError, match=rf"{name}.*{when.isoformat()}"):
        kz.parameter(name).at(when)
    with pytest.raises(KeyError):
        kz.parameter(name).at(when)
    with pytest.raises(ValueError):
        kz.parameter(name).at(when)


def test_unknown_parameter(kz: Country) -> None:
    with pytest.raises(KeyError, match="no_such"):
        kz.parameter("no_such")


def test_regional_pm(kz: Country) -> None:
    astana = kz.region("KZ-71")
    assert kz.regional_pm("KZ-71", date(2025, 5, 1)) == pytest.approx(46228 * astana.pm_coefficient)
    assert kz.regional_pm("KZ-61", "2026-01-01") < 50851


def _copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "kz"
    shutil.copytree(PACKS_DIR / "kz", pack)
    return pack


def _edit(file: Path, change) -> None:
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_copied_pack_loads(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    country = load_country("kz", pack)
    assert len(country.districts) == len(load_country().districts)
    assert load_country("kz", tmp_path) is country  # a directory holding packs works too


def test_district_with_unknown_region_is_rejected(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)

    def change(data):
        data["districts"][3]["region"] = "KZ-98"
        data["districts"][3]["code"] = "KZ-98-01"

    _edit(pack / "districts.yaml", change)
    with pytest.raises(ValueError, match=r"districts\.yaml.*unknown region 'KZ-98'"):
        load_country("kz", pack)


def test_duplicate_district_code_is_rejected(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)

    def change(data):
        data["districts"][1]["code"] = data["districts"][0]["code"]

    _edit(pack / "districts.yaml", change)
    with pytest.raises(ValueError, match=r"districts\.yaml.*duplicate district code"):
        load_country("kz", pack)


def test_missing_language_is_rejected(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / "regions.yaml", lambda data: data["regions"][5]["name"].pop("ru"))
    with pytest.raises(ValueError, match=r"regions\.yaml.*missing language\(s\) ru"):
        load_country("kz", pack)


def test_bad_parameter_file_is_rejected(tmp_path: Path) -> None:
    pack = _copy_pack(tmp_path)
    _edit(pack / "parameters" / "mrp.yaml", lambda data: data["values"].update({"2027-13-01": 1}))
    with pytest.raises(ValueError, match=r"mrp\.yaml"):
        load_country("kz", pack)


def test_unknown_country() -> None:
    with pytest.raises(ValueError, match="no country pack 'zz'"):
        load_country("zz")
