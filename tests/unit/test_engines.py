"""The two batch engines agree: each query of the battery runs on DuckDB and on Spark (local) over
the same small Parquet files, and the results must be equal row for row (sorted; integer widths
may differ, values may not: doubles are compared exactly). Also: clear errors from the Spark
engine. One Spark session serves the whole file (its start takes 5–20 s).

A sum of doubles depends on the order of the additions, and the engines do not add in the same
order after a join or a shuffle: amounts that are summed (`wage`, `amount`) are quarters, whose
sums are exact in any order; `income` (cents, with awkward values) is rounded, cast, compared,
divided and ranked, never summed."""

from __future__ import annotations

import datetime as dt
import math
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qamqor.engine import EngineError, run_query
from qamqor.engine import spark as spark_engine

# Awkward doubles: ties at the third decimal, binary near-ties, big amounts, negatives, zero.
AWKWARD = [2.675, 1.005, 0.125, 1234.5678, -15.555, 12345678.9, 0.0, 99999.995, 1e-7, 7.5]


def _people(rng: np.random.Generator) -> pa.Table:
    n = 60
    births = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 27000, n)]
    births[:4] = [dt.date(2000, 2, 29), dt.date(1990, 12, 31), dt.date(2010, 10, 1), None]
    income = np.round(rng.lognormal(11, 1.2, n), 2).tolist()
    income[: len(AWKWARD)] = AWKWARD
    income[n - 3 :] = [None, None, 150000.0]
    wage = (rng.integers(0, 4_000_000, n) / 4).tolist()
    wage[7] = None
    disability = [int(g) if g < 4 else None for g in rng.integers(1, 12, n)]
    region = [str(r) for r in rng.choice(["ALA", "AST", "SHY", "KAR"], n)]
    region[5] = None
    return pa.table(
        {
            "iin": [f"{i:012d}" for i in range(100000000000, 100000000000 + n)],
            "family_id": rng.integers(1, 18, n),
            "role": rng.choice(["head", "spouse", "child"], n),
            "sex": rng.choice(["F", "M"], n),
            "name": rng.choice(["Айгүл", "Ерлан", "Dana", "Қанат", "Ольга"], n),
            "birth_date": pa.array(births, pa.date32()),
            "region": region,
            "income": pa.array(income, pa.float64()),
            "wage": pa.array(wage, pa.float64()),
            "children": rng.integers(0, 7, n),
            "disability_group": pa.array(disability, pa.int64()),
            "student": pa.array([None if i % 11 == 0 else bool(i % 3) for i in range(n)]),
        }
    )


def _payments(rng: np.random.Generator, iins: list[str]) -> pa.Table:
    n = 200
    periods = [dt.date(2024 + int(m) // 12, int(m) % 12 + 1, 1) for m in rng.integers(0, 22, n)]
    return pa.table(
        {
            "iin": rng.choice(iins[:45], n),
            "period": pa.array(periods, pa.date32()),
            "measure": rng.choice(["asp", "age_pension", "birth", "disability"], n),
            "amount": rng.integers(4000, 1_000_000, n) / 4,
        }
    )


def _ratios() -> pa.Table:
    a = [1.0, -1.0, 0.0, 7.0, None, 10.0, 2.5, -3.0, 1e308, 5.0]
    b = [0.0, 0.0, 0.0, 2.0, 1.0, None, 0.5, 4.0, 0.1, 3.0]
    ia = [1, -1, 0, 7, None, 10, 5, -7, 9, 5]
    ib = [0, 0, 0, 2, 1, None, 2, 2, 4, 3]
    return pa.table(
        {
            "k": list(range(len(a))),
            "a": pa.array(a, pa.float64()),
            "b": pa.array(b, pa.float64()),
            "ia": pa.array(ia, pa.int64()),
            "ib": pa.array(ib, pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(7)
    people = _people(rng)
    out = {
        "people": people,
        "payments": _payments(rng, people["iin"].to_pylist()),
        "ratios": _ratios(),
    }
    paths = {}
    for name, table in out.items():
        paths[name] = d / f"{name}.parquet"
        pq.write_table(table, paths[name])
    return paths


@pytest.fixture(scope="module")
def spark() -> object:
    """Start the shared Spark session once (fails, never skips, when Java is missing).

    Spark's start and warm-up dominate this file: the C1 compiler only and no adaptive planning
    halve them on 2 cores (same results; see docs/engines.md), unless the environment says else.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (
            ("QAMQOR_SPARK_JAVA_OPTS", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"),
            ("QAMQOR_SPARK_CONF", "spark.sql.adaptive.enabled=false"),
        ):
            mp.setenv(name, os.environ.get(name, value))
        return spark_engine.session()


# --- comparison -----------------------------------------------------------------------------


def _family(t: pa.DataType) -> str:
    # DuckDB writes sum(BIGINT), a HUGEINT, as DOUBLE to Parquet; Spark keeps BIGINT: numbers
    # are one family, and their values are compared exactly.
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_family(t.value_type)}>"
    return str(t)


def _value(v: object) -> object:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, Decimal) and v == v.to_integral_value():
        return int(v)
    if isinstance(v, list):
        return tuple(_value(x) for x in v)
    return v


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, type(v).__name__, v if v is not None else 0) for v in row)


def _result(path: Path) -> tuple[list[tuple[str, str]], list[tuple]]:
    table = pq.read_table(path)
    columns = [(f.name, _family(f.type)) for f in table.schema]
    rows = [tuple(_value(v) for v in r.values()) for r in table.to_pylist()]
    return columns, sorted(rows, key=_sort_key)


def both(sql: str, tables: dict[str, Path], tmp_path: Path) -> list[tuple]:
    """Run `sql` on both engines; assert equal columns, type families and rows; return rows."""
    rows_d = run_query(sql, tables, tmp_path / "duck.parquet", engine="duckdb")
    rows_s = run_query(sql, tables, tmp_path / "spark.parquet", engine="spark")
    cols_d, duck = _result(tmp_path / "duck.parquet")
    cols_s, spark = _result(tmp_path / "spark.parquet")
    assert cols_s == cols_d, spark_engine.to_spark_sql(sql)
    assert rows_s == rows_d == len(duck)
    for i, (d, s) in enumerate(zip(duck, spark, strict=True)):
        assert s == d, f"row {i}: duckdb {d} != spark {s}\n{spark_engine.to_spark_sql(sql)}"
    return duck


# --- the battery ----------------------------------------------------------------------------

BATTERY = {
    "join_group_filter": """
        SELECT p.family_id, count(*) AS members,
               count(*) FILTER (WHERE p.sex = 'F') AS women,
               sum(CASE WHEN p.role = 'child' THEN 1 ELSE 0 END) AS children,
               count_if(p.student) AS students,
               count(p.disability_group) AS with_group,
               count(DISTINCT p.region) AS regions,
               sum(p.children) AS kids_declared,
               sum(pay.amount) AS paid, avg(pay.amount) AS avg_paid,
               min(pay.period) AS first_paid, max(pay.amount) AS max_paid
        FROM people p LEFT JOIN payments pay ON pay.iin = p.iin
        GROUP BY p.family_id HAVING count(*) > 1""",
    "aggregates_nulls": """
        SELECT region, sum(wage) AS s, avg(wage) AS a, min(income) AS lo, max(income) AS hi,
               count(income) AS n, count(*) AS rows_, sum(disability_group) AS g,
               avg(children) AS kids, bool_or(student) AS any_student,
               bool_and(income > 0) AS all_positive
        FROM people GROUP BY region""",
    "empty_aggregate": """
        SELECT count(*) AS n, sum(wage) AS s, avg(income) AS a, max(birth_date) AS d
        FROM people WHERE income < 0 AND income > 0""",
    "case_coalesce_greatest": """
        SELECT iin,
               CASE WHEN income IS NULL THEN 'none' WHEN income < 50000 THEN 'low'
                    WHEN income < 200000 THEN 'mid' ELSE 'high' END AS band,
               CASE disability_group WHEN 1 THEN 'I' WHEN 2 THEN 'II' END AS grp,
               coalesce(disability_group, 0) AS grp0, coalesce(income, 0) AS inc0,
               greatest(children, 2) AS g, least(children, disability_group) AS l,
               greatest(income, 100000.0) AS floor_income, nullif(children, 0) AS nz
        FROM people""",
    "division": """
        SELECT k, a / b AS q, ia / ib AS iq, a / 4 AS q4, ia / 3 AS third,
               ia // 2 AS half, -ia // 2 AS neg_half, ia % 3 AS r3,
               a / nullif(b, 0) AS guarded, a / greatest(b, 1) AS floored,
               (a / b) / 2 AS nested, 10 / 4 AS lit, 1 / 3 AS third_lit
        FROM ratios""",
    "division_by_zero": """
        SELECT k, ia / ib AS q, a / b AS fq, (ia - ia) / (ib - ib) AS nan_ FROM ratios""",
    "rounding": """
        SELECT iin, round(income, 2) AS r2, round(income, 1) AS r1, round(income) AS r0,
               round(income, 0) AS r00, round(-income, 2) AS neg, round(income / 3, 2) AS third,
               round(income * 1.1, 2) AS vat, round(income / 12, 4) AS monthly,
               round(2.675, 2) AS lit_dec, round(2.5) AS half_dec, round(income, -3) AS thousands,
               round(children * 1.0 / 3, 3) AS kid_share, ceil(income) AS up, abs(-income) AS ab
        FROM people""",
    "casts": """
        SELECT iin, CAST(income AS BIGINT) AS i, CAST(income / 7 AS INTEGER) AS i7,
               CAST(income * 0.5 AS BIGINT) AS half, CAST(2.5 AS INTEGER) AS lit25,
               CAST(3.5 AS INTEGER) AS lit35, CAST(-2.5 AS BIGINT) AS litm25,
               CAST(children AS DOUBLE) / 2 AS kids_half, CAST(children AS VARCHAR) AS kids_text,
               CAST(birth_date AS VARCHAR) AS born_text, CAST(student AS INTEGER) AS student01,
               CAST(children AS BOOLEAN) AS has_kids,
               CAST('2025-10-01' AS DATE) AS d, TRY_CAST(name AS INTEGER) AS not_a_number,
               CAST(floor(income) AS BIGINT) AS floor_i, CAST(round(income) AS BIGINT) AS round_i,
               CAST(income AS DECIMAL(18, 2)) AS cents, CAST(income / 3 AS DECIMAL(18, 2)) AS third,
               CAST(income AS DECIMAL(10, 1)) AS dimes, CAST(income AS DECIMAL) AS default_dec
        FROM people""",
    "exact_money": """
        WITH paid AS (
            SELECT iin, sum(CAST(amount AS DECIMAL(18, 2))) AS paid FROM payments GROUP BY iin
        )
        SELECT p.family_id, sum(CAST(p.income AS DECIMAL(18, 2))) AS income,
               sum(coalesce(pd.paid, 0)) AS paid,
               round((sum(CAST(p.income AS DECIMAL(18, 2))) + sum(coalesce(pd.paid, 0)) / 3)
                     / count(*), 2) AS per_capita
        FROM people p LEFT JOIN paid pd USING (iin) GROUP BY p.family_id""",
    "dates": """
        SELECT iin, birth_date,
               date_diff('year', birth_date, DATE '2025-10-01') AS years,
               date_diff('month', birth_date, DATE '2025-10-01') AS months,
               date_diff('day', birth_date, DATE '2025-10-01') AS days,
               date_diff('week', birth_date, DATE '2025-10-01') AS weeks,
               date_diff('quarter', birth_date, DATE '2025-10-01') AS quarters,
               datediff('year', DATE '2025-10-01', birth_date) AS back,
               year(birth_date) AS y, month(birth_date) AS m, day(birth_date) AS d,
               dayofweek(birth_date) AS dow, isodow(birth_date) AS iso,
               birth_date + 30 AS plus30, birth_date - 1 AS minus1,
               CAST(birth_date + INTERVAL 1 MONTH AS DATE) AS next_month,
               CAST(birth_date - INTERVAL 3 MONTH AS DATE) AS m3,
               CAST(birth_date + INTERVAL 1 YEAR AS DATE) AS next_year,
               CAST(birth_date - INTERVAL 10 DAY AS DATE) AS ten_days_before,
               birth_date >= DATE '2000-01-01' AS young,
               birth_date BETWEEN DATE '1990-01-01' AND DATE '1999-12-31' AS nineties,
               last_day(birth_date) AS eom, CAST(date_trunc('month', birth_date) AS DATE) AS som,
               date_trunc('year', birth_date) AS year_start,
               make_date(year(birth_date), 1, 1) AS jan1
        FROM people""",
    "age_as_in_cards": """
        SELECT iin,
               (date_diff('year', birth_date, DATE '2025-10-01')
                 - CASE WHEN month(birth_date) * 100 + day(birth_date)
                        > month(DATE '2025-10-01') * 100 + day(DATE '2025-10-01')
                   THEN 1 ELSE 0 END) AS age
        FROM people""",
    "interval_window": """
        SELECT iin, sum(amount) FILTER (WHERE period >= DATE '2025-10-01' - INTERVAL 3 MONTH) / 3
                 AS pay_3m,
               sum(amount) FILTER (WHERE period >= DATE '2025-10-01' - INTERVAL 12 MONTH) / 12
                 AS pay_12m,
               sum(amount) FILTER (WHERE measure NOT IN ('age_pension', 'birth')) AS benefits
        FROM payments WHERE period < DATE '2025-10-01' GROUP BY iin""",
    "strings": """
        SELECT iin, name || ' ' || sex AS label, region || '-' || iin AS code,
               'child:' || children AS kids, concat(region, '/', name) AS joined,
               upper(name) AS up, lower(name) AS low, length(name) AS len,
               substr(iin, 1, 6) AS birth_part, left(iin, 2) AS yy, right(iin, 1) AS check_digit,
               replace(name, 'а', 'a') AS latin_a, trim('  ' || name || ' ') AS trimmed,
               name LIKE 'А%' AS starts_a, name ILIKE '%ан%' AS has_an,
               sex IN ('F') AS female, region IN ('ALA', 'AST') AS south,
               region NOT IN ('ALA', 'AST') AS north,
               substr(sha256('qamqor-demo-key' || iin), 1, 16) AS pseudonym,
               md5(iin) AS md5_, starts_with(iin, '1000') AS sw, contains(name, 'ол') AS has_ol,
               lpad(CAST(children AS VARCHAR), 3, '0') AS padded
        FROM people""",
    "windows": """
        SELECT iin, family_id,
               row_number() OVER (PARTITION BY family_id ORDER BY birth_date, iin) AS rn,
               rank() OVER (PARTITION BY family_id ORDER BY children) AS rk,
               dense_rank() OVER (ORDER BY children DESC) AS drk,
               sum(wage) OVER (PARTITION BY family_id) AS family_wage,
               count(*) OVER (PARTITION BY family_id) AS members,
               sum(children) OVER (PARTITION BY family_id ORDER BY iin) AS running,
               lag(iin) OVER (PARTITION BY family_id ORDER BY iin) AS prev,
               lead(income, 1, 0) OVER (PARTITION BY family_id ORDER BY iin) AS next_income,
               max(income) OVER (PARTITION BY region) AS region_max,
               row_number() OVER (ORDER BY income DESC, iin) AS by_income
        FROM people""",
    "null_ordering": """
        SELECT iin, row_number() OVER (ORDER BY income, iin) AS asc_nulls_last,
               row_number() OVER (ORDER BY income DESC, iin) AS desc_nulls_last,
               row_number() OVER (ORDER BY region NULLS FIRST, iin) AS region_first,
               rank() OVER (ORDER BY disability_group DESC NULLS FIRST) AS grp_first
        FROM people""",
    "top_n": """
        SELECT iin, income FROM people ORDER BY income DESC NULLS LAST, iin LIMIT 7""",
    "quantiles": """
        SELECT region, median(income) AS med, quantile_cont(income, 0.25) AS q1,
               quantile_cont(income, 0.9) AS p90, quantile_disc(income, 0.5) AS disc,
               median(children) AS med_kids, median(income) FILTER (WHERE sex = 'F') AS med_f,
               percentile_cont(0.75) WITHIN GROUP (ORDER BY income) AS q3,
               quantile_cont(amount, 0.5) AS pay_med
        FROM people JOIN payments USING (iin) GROUP BY region""",
    "median_overall_and_window": """
        SELECT iin, income,
               median(income) OVER (PARTITION BY sex) AS sex_median,
               income < 0.6 * (SELECT median(income) FROM people) AS poor,
               (SELECT quantile_cont(income, 0.1) FROM people) AS p10
        FROM people""",
    "booleans_nulls": """
        SELECT iin, student, NOT student AS not_student, student AND income > 100000 AS a,
               student OR income > 100000 AS o, student IS NULL AS unknown,
               student IS DISTINCT FROM TRUE AS not_true, income = NULL AS eq_null,
               region <> 'ALA' AS not_ala, disability_group IN (1, 2) AS severe,
               disability_group NOT IN (1, 2) AS not_severe,
               disability_group IN (1, NULL) AS in_with_null,
               disability_group NOT IN (3, NULL) AS not_in_with_null,
               coalesce(student, FALSE) AS student0
        FROM people""",
    "subqueries": """
        SELECT p.iin, p.family_id FROM people p
        WHERE p.iin NOT IN (SELECT iin FROM payments WHERE measure = 'asp')
          AND EXISTS (SELECT 1 FROM payments x WHERE x.iin = p.iin)
          AND p.family_id IN (SELECT family_id FROM people WHERE role = 'head')
          AND NOT EXISTS (SELECT 1 FROM people c WHERE c.family_id = p.family_id
                          AND c.disability_group = 1)""",
    "not_in_null_subquery": """
        SELECT iin FROM people
        WHERE disability_group NOT IN (SELECT disability_group FROM people WHERE sex = 'F')""",
    "union_all": """
        SELECT iin AS id, 'person' AS kind, income AS value FROM people WHERE income > 100000
        UNION ALL
        SELECT iin, measure, amount FROM payments WHERE amount > 200000
        UNION ALL
        SELECT CAST(family_id AS VARCHAR), 'family', NULL FROM people WHERE role = 'head'""",
    "union_distinct": """
        SELECT region FROM people UNION SELECT 'ZZZ' UNION SELECT region FROM people""",
    "cte_chain_like_cards": """
        WITH mem AS (
            SELECT family_id, iin, role, sex, wage, disability_group,
                   (date_diff('year', birth_date, DATE '2025-10-01')
                     - CASE WHEN month(birth_date) * 100 + day(birth_date) > 1001
                       THEN 1 ELSE 0 END) AS age
            FROM people WHERE birth_date IS NOT NULL
        ),
        paid AS (
            SELECT iin,
                   sum(amount) FILTER (WHERE measure = 'age_pension'
                     AND period >= DATE '2025-10-01' - INTERVAL 3 MONTH) AS pension_3m,
                   sum(amount) FILTER (WHERE measure NOT IN ('age_pension', 'birth'))
                     AS benefits_12m
            FROM payments WHERE period < DATE '2025-10-01' GROUP BY iin
        ),
        per AS (
            SELECT m.*, coalesce(p.pension_3m, 0) AS pension_3m,
                   coalesce(p.benefits_12m, 0) AS benefits_12m,
                   (m.sex = 'F' AND m.age >= 61) OR (m.sex = 'M' AND m.age >= 63) AS pension_age
            FROM mem m LEFT JOIN paid p USING (iin)
        ),
        fam AS (
            SELECT family_id,
                   any_value(sex) FILTER (WHERE role = 'head') AS head_sex,
                   count(*) AS members, count(*) FILTER (WHERE age < 18) AS children,
                   count(*) FILTER (WHERE pension_age) AS pensioners,
                   count(*) FILTER (WHERE disability_group NOT IN (1, 2)) AS mild,
                   sum(coalesce(wage, 0)) AS income, sum(pension_3m) / 3 AS pensions,
                   sum(benefits_12m) / 12 AS benefits, min(age) FILTER (WHERE role <> 'child')
                     AS youngest_adult
            FROM per GROUP BY family_id
        ),
        scored AS (
            SELECT f.* EXCLUDE (pensions),
                   round((income + pensions + benefits) / members, 2) AS per_capita,
                   (members - children) / greatest(children, 1) AS ratio
            FROM fam f
        )
        SELECT s.*, s.per_capita < 0.6 * (SELECT median(per_capita) FROM scored) AS poor,
               rank() OVER (ORDER BY per_capita) AS poverty_rank
        FROM scored s""",
    "lists": """
        SELECT family_id, list(iin ORDER BY iin) AS members,
               list(income ORDER BY income DESC) AS incomes,
               list(disability_group ORDER BY iin) AS groups,
               string_agg(name, ',' ORDER BY name) AS names,
               list(iin ORDER BY iin) FILTER (WHERE role = 'head') AS heads
        FROM people GROUP BY family_id""",
    "group_by_all_and_ordinal": """
        SELECT region, sex, count(*) AS n, sum(children) AS kids FROM people GROUP BY ALL""",
}


@pytest.mark.parametrize("name", list(BATTERY))
def test_engines_agree(name: str, tables: dict[str, Path], spark: object, tmp_path: Path) -> None:
    rows = both(BATTERY[name], tables, tmp_path)
    # NOT IN over a subquery that yields a NULL is never true: no rows, on both engines.
    assert rows or name == "not_in_null_subquery", "a query of the battery returned nothing"


def test_battery_meets_the_edge_cases(tables: dict[str, Path], spark: object, tmp_path) -> None:
    """The fixtures really exercise the differences the rewrites exist for (on DuckDB)."""
    rows = both(
        """SELECT round(2.675::DOUBLE, 2) AS a, round(1.005::DOUBLE, 2) AS b,
                  CAST(2.5::DOUBLE AS INT) AS c, CAST(3.5::DOUBLE AS INT) AS d,
                  1 / 0 AS e, -1 / 0 AS f, 0 / 0 AS g,
                  date_diff('year', DATE '2000-12-31', DATE '2001-01-01') AS h,
                  date_diff('month', DATE '2000-01-31', DATE '2000-02-01') AS i
           FROM people LIMIT 1""",
        tables,
        tmp_path,
    )
    assert rows == [(2.68, 1.0, 2, 4, math.inf, -math.inf, "NaN", 1, 1)]


def test_median_is_bit_identical_on_many_groups(spark: object, tmp_path: Path) -> None:
    """DuckDB's interpolation, not Spark's percentile: equal to the last bit in every group."""
    rng = np.random.default_rng(3)
    n = 6000
    path = tmp_path / "incomes.parquet"
    pq.write_table(
        pa.table({"g": rng.integers(0, 600, n), "x": np.round(rng.lognormal(11, 1, n), 2)}), path
    )
    sql = """SELECT g, median(x) AS m, quantile_cont(x, 0.1) AS p10, quantile_cont(x, 0.3) AS p30,
                    quantile_cont(x, 0.9) AS p90, quantile_disc(x, 0.3) AS d30
             FROM incomes GROUP BY g"""
    assert len(both(sql, {"incomes": path}, tmp_path)) == 600


def test_round_is_duckdb_rounding_on_many_values(spark: object, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ties = (rng.integers(0, 10**7, 4000) + 0.5) / 100  # x.xx5: where rounding methods differ
    path = tmp_path / "ties.parquet"
    pq.write_table(pa.table({"x": np.concatenate([ties, -ties[:500]])}), path)
    sql = "SELECT x, round(x, 2) AS r2, round(x, 1) AS r1, CAST(x AS BIGINT) AS i FROM ties"
    assert len(both(sql, {"ties": path}, tmp_path)) == 4500


# --- errors and contract --------------------------------------------------------------------


def test_spark_writes_atomically_and_counts_rows(tables, spark, tmp_path: Path) -> None:
    out = tmp_path / "out" / "result.parquet"
    n = run_query("SELECT iin FROM people", tables, out, engine="spark")
    assert n == pq.read_metadata(out).num_rows == 60
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.parquet"]
    with pytest.raises(EngineError, match="Spark failed running the query"):
        run_query("SELECT 9223372036854775807 + children AS x FROM people", tables, out, "spark")
    assert pq.read_metadata(out).num_rows == 60  # the previous result is intact
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.parquet"]


def test_spark_names_the_rejected_sql(tables, spark, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    with pytest.raises(EngineError, match=r"(?i)Spark rejected the query: .*no_such_function"):
        run_query("SELECT no_such_function(iin) FROM people", tables, out, "spark")
    with pytest.raises(EngineError, match=r"Spark rejected the query: .*nope"):
        run_query("SELECT nope FROM people", tables, out, "spark")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT FROM WHERE", "SQLGlot could not parse"),
        ("SELECT 1; SELECT 2", "exactly one SELECT"),
        ("SELECT hash(iin) FROM people", "sha256"),
        ("SELECT date_sub('year', birth_date, DATE '2025-01-01') FROM people", "date_diff"),
        ("SELECT date_diff('hour', birth_date, DATE '2025-01-01') FROM people", "portable"),
        ("SELECT list(iin ORDER BY sex, iin DESC) FROM people", "mixed ASC/DESC"),
    ],
)
def test_refused_before_spark_runs(sql: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        spark_engine.to_spark_sql(sql)


def test_date_minus_date_is_refused(tables, spark, tmp_path: Path) -> None:
    sql = "SELECT DATE '2025-10-01' - birth_date AS days FROM people"
    with pytest.raises(EngineError, match=r"date_diff\('day'"):
        run_query(sql, tables, tmp_path / "x.parquet", engine="spark")


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"nowhere\.parquet"):
        run_query("SELECT 1", {"t": tmp_path / "nowhere.parquet"}, tmp_path / "o.parquet", "spark")


def test_java_missing_says_install_jdk_17(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_engine, "_session", None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EngineError, match="JDK 17"):
        spark_engine.session()
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    assert "JDK 17" in (spark_engine.java_problem() or "")


def test_java_present_here() -> None:
    """CI machines have Java 17+: the Spark tests must run, not skip."""
    assert spark_engine.java_problem() is None, spark_engine.java_problem()


def test_column_types_come_from_the_inputs() -> None:
    """The CAST rewrite needs to know a column is DOUBLE; when in doubt it leaves the cast."""
    schemas = {"people": {"income": "double", "children": "int"}, "kids": {"income": "int"}}
    to_spark = spark_engine.to_spark_sql
    sql = "SELECT CAST(p.income AS BIGINT) AS income, CAST(children AS BIGINT) FROM people p"
    spark_sql = to_spark(sql, schemas)
    assert "CAST(RINT(p.income) AS BIGINT)" in spark_sql  # qualified: people.income
    assert "CAST(children AS BIGINT)" in spark_sql
    assert "RINT" not in to_spark("SELECT CAST(income AS BIGINT) FROM people", schemas)  # 2 kinds
    aliased = "SELECT CAST(income AS BIGINT) FROM (SELECT children AS income FROM people)"
    assert "RINT" not in to_spark(aliased, {"people": {"income": "double", "children": "int"}})
    cte = "WITH people AS (SELECT 1 AS income) SELECT CAST(p.income AS INT) FROM people p"
    assert "RINT" not in to_spark(cte, schemas)


def test_nested_aggregates_are_all_rewritten() -> None:
    sql = """SELECT median(x - (SELECT median(y) FROM u)) AS m,
                    list(x ORDER BY (SELECT quantile_cont(y, 0.2) FROM u)) AS l FROM t"""
    spark_sql = spark_engine.to_spark_sql(sql).upper()
    assert "MEDIAN" not in spark_sql and "PERCENTILE_CONT" not in spark_sql
    assert "COLLECT_LIST(X)" not in spark_sql


def test_unknown_engine() -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        run_query("SELECT 1", {}, Path(os.devnull), engine="polars")
