"""The OpenFisca twin of the national measures gives the batch's entitlements on a generated
nation: the same recipients of every national measure and the same amounts (to 0.01)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from qamqor.card.build import build_cards
from qamqor.measures import openfisca_twin as twin
from qamqor.measures.compute import compute_entitlements
from qamqor.registries.ingest import ingest
from qamqor.synth.generate import generate

ON = date(2025, 10, 1)
ALL_ON = dict.fromkeys(twin.SWITCHES, True)


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("openfisca_twin")
    generate(out, 20_000, seed=3)
    ingest(out)
    build_cards(out, ON)
    compute_entitlements(out, ON)
    return out


def _national(entitlements: Path):
    t = pq.read_table(entitlements)
    return t.filter(pc.is_in(t.column("measure"), value_set=pa.array(list(twin.MEASURES))))


def test_twin_gives_the_batch_entitlements(nation: Path) -> None:
    batch = _national(nation / "entitlements" / "entitlements.parquet")
    result = twin.compare(batch, twin.compute(nation, ON))
    # every national measure has recipients here, so each formula is checked on real cases
    assert set(result["by_measure"]) == set(twin.MEASURES)
    for measure, r in result["by_measure"].items():
        assert r["batch_rows"] > 0, measure
        assert r["only_batch"] == r["only_twin"] == r["amount_mismatches"] == 0, (measure, r)
    assert result["agree"] and result["batch_rows"] == result["twin_rows"] == batch.num_rows


def test_incompatible_carers_are_resolved_alike(nation: Path) -> None:
    system = twin.NationalMeasures()
    month = twin.run_period(system, ON)
    families, persons = twin.read_facts(nation, ON)
    sim = twin.simulation(
        system, families, persons, month, twin.default_line(system.country, nation, ON)
    )
    both = (sim.calculate("carer_disabled_child_claim", month) > 0) & (
        sim.calculate("carer_disabled_adult_claim", month) > 0
    )
    assert both.sum() > 0  # the resolution is exercised: the larger (child) benefit stays
    assert (sim.calculate("carer_disabled_adult", month)[both] == 0).all()
    assert (sim.calculate("carer_disabled_child", month)[both] > 0).all()
    ids = families.column("family_id").filter(pa.array(both))
    batch = _national(nation / "entitlements" / "entitlements.parquet")
    paid = batch.filter(pc.is_in(batch.column("family_id"), value_set=ids.combine_chunks()))
    carers = [m for m in paid.column("measure").to_pylist() if m.startswith("carer_")]
    assert sorted(carers) == ["carer_disabled_child"] * len(ids)


def test_need_test_switches(nation: Path, tmp_path: Path) -> None:
    switched = compute_entitlements(nation, ON, switches=ALL_ON, out=tmp_path / "switched")
    batch = _national(switched.out / "entitlements.parquet")
    on = twin.compute(nation, ON, switches=ALL_ON)
    assert twin.compare(batch, on)["agree"]
    # the need tests remove some ASP families: the default twin no longer matches this batch
    off = twin.compare(batch, twin.compute(nation, ON))
    assert not off["agree"] and off["by_measure"]["asp"]["only_twin"] > 0


def test_twin_refuses_a_catalogue_it_does_not_implement() -> None:
    cat = twin.national_catalogue()
    twin.check_against_catalogue(cat, ON)
    fewer = cat.model_copy(update={"measures": [m for m in cat.measures if m.id != "birth"]})
    with pytest.raises(ValueError, match="out of date"):
        twin.check_against_catalogue(fewer, ON)
