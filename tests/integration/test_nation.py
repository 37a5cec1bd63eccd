"""A small generated nation end to end: determinism, calibration, ingestion, cards, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from qamqor.card.build import DIGEST, build_cards
from qamqor.cli import app
from qamqor.ids import iin_text_sql
from qamqor.registries.ingest import ingest
from qamqor.synth.calibration import calibrate
from qamqor.synth.generate import generate
from tests.parquet import same_rows

FAMILIES = 30_000


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))
    }


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nation")
    generate(out, FAMILIES, seed=7, chunk_families=10_000)
    ingest(out)
    build_cards(out, date(2025, 6, 1))
    build_cards(out, date(2025, 10, 1))
    return out


def test_same_seed_gives_byte_identical_files(nation: Path, tmp_path: Path) -> None:
    generate(tmp_path, FAMILIES, seed=7, chunk_families=10_000)
    assert _digest(tmp_path / "registries") == _digest(nation / "registries")
    generate(tmp_path / "other", 2_000, seed=8)
    assert _digest(tmp_path / "other" / "registries") != _digest(nation / "registries")


def test_every_registry_is_written(nation: Path) -> None:
    names = {p.stem for p in (nation / "registries").glob("*.parquet")}
    assert {"population", "civil_events", "income", "tax", "real_estate", "vehicles", "credit",
            "deposits", "health", "education", "agriculture", "housing", "employment", "awards",
            "payments"} <= names  # fmt: skip
    assert (nation / "truth" / "payment_errors.parquet").exists()


def test_calibration_targets(nation: Path) -> None:
    cal = calibrate(nation)["targets"]
    missed = [k for k, v in cal.items() if not v["within_10pct"]]
    # At 30 k families a few small counts are noisy: allow ±20 % there, ±10 % for the rest.
    for k in missed:
        assert abs(cal[k]["ratio"] - 1) <= 0.2, (k, cal[k])
    assert cal["families"]["generated"] == FAMILIES
    assert json.loads((nation / "calibration.json").read_text())["families"] == FAMILIES


def test_cards_cover_every_living_person_once(nation: Path) -> None:
    con = duckdb.connect()
    fam = str(nation / "cards" / "families.parquet")
    mem = str(nation / "cards" / "members.parquet")
    pop = str(nation / "ingested" / "population.parquet")
    members_sum = con.execute(f"SELECT sum(members) FROM '{fam}'").fetchone()[0]
    alive = con.execute(
        f"SELECT count(*) FROM '{pop}' WHERE death_date IS NULL OR death_date > DATE '2025-10-01'"
    ).fetchone()[0]
    rows, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT person_id) FROM '{mem}'"
    ).fetchone()
    assert members_sum == alive == rows == distinct


def test_cards_match_the_true_families(nation: Path) -> None:
    """Families found from links and addresses equal the generator's true families (≥ 99.5 %)."""
    con = duckdb.connect()
    truth = con.execute(
        f"SELECT count(DISTINCT true_family) FROM '{nation}/truth/persons.parquet' "
        "WHERE true_family >= 0"
    ).fetchone()[0]
    found = con.execute(f"SELECT count(*) FROM '{nation}/cards/families.parquet'").fetchone()[0]
    assert abs(found - truth) <= 0.005 * truth + 200  # duplicate identities form extra families


def test_history_shows_changed_families(nation: Path) -> None:
    changes = nation / "cards" / "history" / "2025-10-01" / "changes.parquet"
    kinds = dict(
        duckdb.connect().execute(f"SELECT change, count(*) FROM '{changes}' GROUP BY 1").fetchall()
    )
    assert kinds.get("changed", 0) > 0 and kinds.get("new", 0) > 0


def test_money_counts_whole_months(nation: Path, tmp_path: Path) -> None:
    """Mid-month cards count the same three and twelve months as the first of the month."""
    for name in ("ingested", "manifest.json"):
        src = nation / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        elif src.exists():
            shutil.copy(src, tmp_path / name)
    build_cards(tmp_path, date(2025, 10, 17))
    money = ["wages_3m", "wages_12m", "self_employment_3m", "pensions_3m", "benefits_3m"]
    first = nation / "cards" / "history" / "2025-10-01" / "families.parquet"
    mid = tmp_path / "cards" / "families.parquet"
    differ = " OR ".join(f"a.{c} IS DISTINCT FROM b.{c}" for c in money)
    [(same, different)] = duckdb.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {differ})
            FROM read_parquet('{first}') a JOIN read_parquet('{mid}') b USING (family_id)
            WHERE a.members = b.members"""
    ).fetchall()
    assert same > 0.9 * FAMILIES and different == 0


def test_membership_digest_matches_the_members(nation: Path) -> None:
    """The digest each card date keeps (what the next date's changes compare with) is the
    count and hash its members.parquet gives, family by family."""
    for day in ("2025-06-01", "2025-10-01"):
        folder = nation / "cards" / "history" / day
        [(families, differ)] = duckdb.execute(
            f"""WITH m AS (SELECT family_id, count(*) AS members,
                                  bit_xor(hash(person_id)) AS members_hash
                           FROM read_parquet('{folder / "members.parquet"}') GROUP BY 1)
                SELECT count(*), count(*) FILTER (WHERE m.family_id IS NULL OR d.family_id IS NULL
                       OR m.members <> d.members OR m.members_hash <> d.members_hash)
                FROM m FULL JOIN read_parquet('{folder / DIGEST}') d USING (family_id)"""
        ).fetchall()
        assert families > 0.9 * FAMILIES and differ == 0


def test_kept_cards_equal_computed_cards(nation: Path, tmp_path: Path) -> None:
    """A later day of the month keeps the indicators of the families nothing happened to and
    computes the others: the cards equal cards computed for every family. Another month, or a
    changed ingested file, computes every family."""
    kept, full = tmp_path / "kept", tmp_path / "full"
    for out in (kept, full):
        shutil.copytree(nation / "ingested", out / "ingested")  # sizes and times kept
    day = nation / "cards" / "history" / "2025-10-01"
    for out in (kept, full):
        shutil.copytree(day, out / "cards" / "history" / day.name)
    r = build_cards(kept, date(2025, 10, 20))
    f = build_cards(full, date(2025, 10, 20), reuse=False)
    assert r.kept_from == "2025-10-01" and f.recomputed is None
    assert 0 < r.recomputed < 0.5 * r.families and r.changed == f.changed > 0
    for name in ("families.parquet", "members.parquet", DIGEST, "changes.parquet"):
        rows = same_rows(kept / "cards" / "history" / "2025-10-20" / name, f.out / name)
        assert rows >= (FAMILIES * 0.9 if name != "changes.parquet" else 50)
    assert build_cards(kept, date(2025, 11, 3)).recomputed is None
    assert build_cards(kept, date(2025, 11, 4)).kept_from == "2025-11-03"
    (kept / "ingested" / "vehicles.parquet").touch()
    assert build_cards(kept, date(2025, 11, 5)).recomputed is None
    # the CLI says what it kept; --full computes every family
    runner = CliRunner()
    r = runner.invoke(app, ["cards", str(kept), "--date", "2025-11-06"])
    assert r.exit_code == 0 and "the others kept from 2025-11-05" in r.output, r.output
    r = runner.invoke(app, ["cards", str(kept), "--date", "2025-11-07", "--full"])
    assert r.exit_code == 0 and "kept from" not in r.output, r.output
    assert "kept_from" not in json.loads((kept / "cards/history/2025-11-07/basis.json").read_text())


def test_cli_card_and_errors(nation: Path) -> None:
    runner = CliRunner()
    fid = (
        duckdb.connect()
        .execute(
            f"SELECT family_id FROM '{nation}/cards/families.parquet' WHERE members >= 3 LIMIT 1"
        )
        .fetchone()[0]
    )
    r = runner.invoke(app, ["card", fid, str(nation), "--json"])
    assert r.exit_code == 0, r.output
    card = json.loads(r.output)
    assert card["family_id"] == fid and len(card["members_list"]) == card["members"]
    assert runner.invoke(app, ["card", "nope", str(nation)]).exit_code == 1
    assert runner.invoke(app, ["cards", str(nation), "--date", "2025-13-01"]).exit_code == 1
    assert runner.invoke(app, ["run", str(nation / "missing")]).exit_code == 1


def test_failed_step_leaves_previous_cards(nation: Path) -> None:
    before = _digest(nation / "cards")
    pop = nation / "ingested" / "population.parquet"
    saved = pop.read_bytes()
    pop.write_bytes(b"not parquet")
    try:
        with pytest.raises(duckdb.Error):
            build_cards(nation, date(2025, 10, 1))
    finally:
        pop.write_bytes(saved)
    assert _digest(nation / "cards") == before


def test_card_partition_matches_truth(nation: Path) -> None:
    """Every true family is exactly one card: the SPEC §5 rules find the generator's families."""
    from qamqor.ids import PSEUDONYM_KEY

    split, merged = (
        duckdb.connect()
        .execute(
            f"""
        WITH t AS (SELECT true_family, substr(sha256('{PSEUDONYM_KEY}' || iin), 1, 16) AS pid
                   FROM '{nation}/truth/persons.parquet' WHERE true_family >= 0),
             j AS (SELECT t.true_family, m.family_id FROM t
                   JOIN '{nation}/cards/members.parquet' m ON m.person_id = t.pid)
        SELECT (SELECT count(*) FROM (SELECT true_family FROM j GROUP BY 1
                                      HAVING count(DISTINCT family_id) > 1)),
               (SELECT count(*) FROM (SELECT family_id FROM j GROUP BY 1
                                      HAVING count(DISTINCT true_family) > 1))
        """
        )
        .fetchone()
    )
    assert (split, merged) == (0, 0)


def _ingested_copy(nation: Path, dest: Path, person_id_sql: str | None) -> Path:
    """`dest` with the nation's ingested registries, the population's `person_id` replaced by
    `person_id_sql` (None: dropped, as an older version ingested it)."""
    shutil.copytree(nation / "ingested", dest / "ingested")
    pop = dest / "ingested" / "population.parquet"
    cols = "* EXCLUDE (person_id)" + (f", {person_id_sql} AS person_id" if person_id_sql else "")
    duckdb.sql(f"COPY (SELECT {cols} FROM '{pop}') TO '{pop}.new' (FORMAT parquet)")
    Path(f"{pop}.new").replace(pop)
    return dest


def test_population_ingested_without_pseudonyms_gives_the_same_cards(nation, tmp_path) -> None:
    older = _ingested_copy(nation, tmp_path, None)
    build_cards(older, date(2025, 10, 1))
    ours = nation / "cards" / "history" / "2025-10-01"
    for name in ("families.parquet", "members.parquet"):
        a, b = f"'{ours / name}'", f"'{older / 'cards' / name}'"
        [(extra, missing)] = duckdb.sql(
            f"SELECT (SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})),"
            f" (SELECT count(*) FROM (FROM {b} EXCEPT ALL FROM {a}))"
        ).fetchall()
        assert (extra, missing) == (0, 0), name


def test_population_ingested_with_another_key_is_refused(nation, tmp_path) -> None:
    other_key = f"substr(sha256('another-key' || {iin_text_sql('iin')}), 1, 16)"
    other = _ingested_copy(nation, tmp_path, other_key)
    with pytest.raises(ValueError, match="another pseudonym key"):
        build_cards(other, date(2025, 10, 1))
    result = CliRunner().invoke(app, ["cards", str(other), "--date", "2025-10-01"])
    assert result.exit_code != 0 and "QAMQOR_PSEUDONYM_KEY" in result.output
    assert not (other / "cards" / "families.parquet").exists()
