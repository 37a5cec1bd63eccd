"""SPEC §2 calibration targets beside the values of a generated nation (DIR/calibration.json).

Counts scale with the number of families (target × families / 6.3 M); shares and incomes stay.
Computed with DuckDB over the written registries and the truth folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from qamqor.countries import load_country
from qamqor.engine import connect, sql_path

FULL_FAMILIES = 6_300_000
TOLERANCE = 0.10
# name: (target at full scale, kind) — kind "count" scales with families, "share"/"value" do not.
TARGETS: dict[str, tuple[float, str]] = {
    "people": (19_500_000, "count"),
    "families": (6_300_000, "count"),
    "regions": (20, "value"),
    "rural_share": (0.37, "share"),
    "children_share": (0.336, "share"),
    "pensioners": (2_500_000, "count"),
    "disability_benefit_recipients": (542_000, "count"),
    "breadwinner_loss_families": (195_000, "count"),
    "large_family_paid": (613_000, "count"),
    "awarded_mothers": (243_000, "count"),
    "birth_childcare_families": (200_000, "count"),
    "carer_disabled_child": (110_000, "count"),
    "asp_families": (48_000, "count"),
    "asp_social_contract": (8_300, "count"),
    "payment_recipients": (4_500_000, "count"),
    "payments_per_year_tenge": (6e12, "count"),
    "poor_people_share": (0.053, "share"),
    "poor_families": (190_000, "count"),
    "persons_with_disabilities": (743_000, "count"),
    "children_with_disabilities": (117_000, "count"),
    "mean_income_per_capita": (194_971, "value"),
    "mean_income_turkestan": (109_628, "value"),
    "mean_income_atyrau": (362_866, "value"),
    "median_to_mean_income": (0.6, "share"),
    "household_size_urban": (3.0, "value"),
    "household_size_rural": (4.0, "value"),
    "people_in_households_5plus": (0.26, "share"),
}


def calibrate(data_dir: Path) -> dict:
    """Compute every target's generated value; write and return DIR/calibration.json."""
    data_dir = Path(data_dir)
    reg, truth = data_dir / "registries", data_dir / "truth"
    manifest = json.loads((reg / "manifest.json").read_text())
    families = manifest["families"]
    extract = manifest["extract_date"]
    country = load_country(manifest["country"])
    con = connect()
    for name in ("population", "payments", "health", "employment", "awards"):
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({sql_path(reg / f'{name}.parquet')})"
        )
    con.execute(
        f"CREATE VIEW persons AS SELECT * FROM read_parquet({sql_path(truth / 'persons.parquet')})"
    )
    pm = ", ".join(f"('{r.code}', {country.regional_pm(r.code, extract)})" for r in country.regions)
    con.execute(f"CREATE TABLE pm(region VARCHAR, pm DOUBLE); INSERT INTO pm VALUES {pm}")
    v = _values(con, extract)
    v["regions"] = float(con.execute("SELECT count(DISTINCT region) FROM population").fetchone()[0])
    scale = families / FULL_FAMILIES
    rows = {}
    for name, (target, kind) in TARGETS.items():
        want = target * scale if kind == "count" else target
        got = v[name]
        rows[name] = {
            "target": round(want, 4),
            "generated": round(got, 4),
            "ratio": round(got / want, 4) if want else None,
            "within_10pct": abs(got - want) <= TOLERANCE * abs(want),
        }
    result = {"families": families, "scale": scale, "targets": rows}
    (data_dir / "calibration.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def _values(con, extract: str) -> dict[str, float]:
    d = f"DATE '{extract}'"
    q = f"""
    WITH real AS (
        SELECT p.*, t.true_family, t.declared_wage, t.pension,
               date_diff('year', p.birth_date, {d}) -
               CASE WHEN strftime(p.birth_date, '%m-%d') > strftime({d}, '%m-%d') THEN 1 ELSE 0 END
               AS age
        FROM population p JOIN persons t USING (iin)
        WHERE t.true_family >= 0
    ),
    benefits AS (
        SELECT iin, sum(amount) / 3 AS monthly FROM payments
        WHERE measure NOT IN ('birth', 'age_pension') GROUP BY iin
    ),
    fam AS (
        SELECT true_family, any_value(region) AS region, any_value(address_id) AS address,
               count(*) AS size,
               sum(declared_wage + pension + coalesce(b.monthly, 0)) / count(*) AS pc
        FROM real LEFT JOIN benefits b USING (iin) GROUP BY true_family
    ),
    med AS (
        SELECT quantile_cont(pc, 0.5) AS median FROM (
            SELECT pc FROM fam, range(size::BIGINT))
    ),
    line AS (
        SELECT f.*, greatest(0.35 * med.median, 0.7 * pm.pm) AS line
        FROM fam f, med JOIN pm ON pm.region = f.region
    ),
    hh AS (SELECT address_id, any_value(urban) AS urban, count(*) AS size FROM real GROUP BY 1)
    SELECT
        (SELECT count(*) FROM real),
        (SELECT count(DISTINCT true_family) FROM real),
        (SELECT avg(CASE WHEN urban THEN 0 ELSE 1 END) FROM real),
        (SELECT avg(CASE WHEN age < 18 THEN 1 ELSE 0 END) FROM real),
        (SELECT count(*) FROM real WHERE (sex = 'F' AND age >= 61) OR (sex = 'M' AND age >= 63)),
        (SELECT sum(size * pc) / sum(size) FROM fam),
        (SELECT sum(size * pc) / sum(size) FROM fam WHERE region = 'KZ-61'),
        (SELECT sum(size * pc) / sum(size) FROM fam WHERE region = 'KZ-23'),
        (SELECT median FROM med) / (SELECT sum(size * pc) / sum(size) FROM fam),
        (SELECT sum(size) FILTER (WHERE pc < line) / sum(size) FROM line),
        (SELECT count(*) FILTER (WHERE pc < line) FROM line),
        (SELECT avg(size) FROM hh WHERE urban),
        (SELECT avg(size) FROM hh WHERE NOT urban),
        (SELECT sum(size) FILTER (WHERE size >= 5) / sum(size) FROM hh),
        (SELECT count(*) FROM health h JOIN real USING (iin) WHERE h.disability_since IS NOT NULL),
        (SELECT count(*) FROM health h JOIN real r USING (iin)
            WHERE h.disability_since IS NOT NULL AND r.age < 18)
    """
    names = [
        "people", "families", "rural_share", "children_share", "pensioners",
        "mean_income_per_capita", "mean_income_turkestan", "mean_income_atyrau",
        "median_to_mean_income", "poor_people_share", "poor_families",
        "household_size_urban", "household_size_rural", "people_in_households_5plus",
        "persons_with_disabilities", "children_with_disabilities",
    ]  # fmt: skip
    v = dict(zip(names, (float(x or 0) for x in con.execute(q).fetchone()), strict=True))
    last = "(SELECT max(period) FROM payments)"
    pay = con.execute(
        f"""
        SELECT
          count(DISTINCT iin) FILTER (WHERE measure = 'disability'),
          count(DISTINCT iin) FILTER (WHERE measure = 'breadwinner_loss'),
          count(DISTINCT iin) FILTER (WHERE measure = 'large_family'),
          count(DISTINCT iin) FILTER (WHERE measure = 'awarded_mother'),
          count(DISTINCT iin) FILTER (WHERE measure IN ('birth', 'childcare')),
          count(DISTINCT iin) FILTER (WHERE measure = 'carer_disabled_child'),
          count(DISTINCT iin) FILTER (WHERE measure = 'asp'),
          count(DISTINCT iin)
        FROM payments WHERE period = {last}
        """
    ).fetchone()
    for name, x in zip(
        [
            "disability_benefit_recipients",
            "breadwinner_loss_families",
            "large_family_paid",
            "awarded_mothers",
            "birth_childcare_families",
            "carer_disabled_child",
            "asp_families",
            "payment_recipients",
        ],
        pay,
        strict=True,
    ):
        v[name] = float(x)
    v["payments_per_year_tenge"] = float(
        con.execute("SELECT sum(amount) * 4 FROM payments").fetchone()[0]
    )
    v["asp_social_contract"] = float(
        con.execute("SELECT count(*) FROM employment WHERE status = 'social_contract'").fetchone()[
            0
        ]
    )
    return v
