"""Tests for qamqor.registries.ingest: row checks, quarantine, summary, atomicity, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qamqor.countries import load_country
from qamqor.ids import PSEUDONYM_KEY, make_iin, validate_iin
from qamqor.registries.ingest import IngestError, IngestReport, ingest
from qamqor.registries.schemas import BY_NAME, REGISTRIES
from qamqor.registries.views import registry_text_view, registry_view

EXTRACT = dt.date(2025, 1, 1)
KZ = load_country("kz")
REGION = KZ.regions[0].code
DISTRICT = next(d.code for d in KZ.districts if d.region == REGION)
OTHER_REGION_DISTRICT = next(d.code for d in KZ.districts if d.region != REGION)


def _iin(birth: dt.date, female: bool, serial: int = 1) -> str:
    """A valid IIN (the next serial when this one has no check digit)."""
    while (iin := make_iin(birth, female, serial)) is None:
        serial += 1
    return iin


def _bad_check_digit(iin: str) -> str:
    return iin[:11] + str((int(iin[11]) + 1) % 10)


# People of the tiny population: (birth date, female).
PEOPLE = [
    (dt.date(1960, 3, 14), False),
    (dt.date(1965, 7, 1), True),
    (dt.date(1990, 12, 31), True),
    (dt.date(2005, 2, 28), False),  # an IIN with a leading zero
    (dt.date(2020, 6, 15), True),
]
IINS = [_iin(b, f, serial=10 + i) for i, (b, f) in enumerate(PEOPLE)]
STRANGER = _iin(dt.date(1977, 7, 7), False)  # a valid IIN of nobody in the population


def _person(iin: str, birth: object, female: bool, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "iin": iin,
        "surname": "Sarsenov",
        "first_name": "Aidos",
        "patronymic": None,
        "sex": "F" if female else "M",
        "birth_date": birth,
        "death_date": None,
        "citizenship": "KZ",
        "language": "kk",
        "region": REGION,
        "district": DISTRICT,
        "urban": True,
        "address_id": "A1",
        "father_iin": None,
        "mother_iin": None,
    }
    row.update(over)
    return row


def _population() -> list[dict[str, object]]:
    rows = [_person(i, b, f) for i, (b, f) in zip(IINS, PEOPLE, strict=True)]
    rows[3]["father_iin"], rows[3]["mother_iin"] = IINS[0], IINS[1]
    future = dt.date(2026, 5, 5)
    rows += [
        # 6: bad check digit
        _person(_bad_check_digit(_iin(dt.date(1950, 1, 1), False)), dt.date(1950, 1, 1), False),
        # 7: birth date in the future (the IIN encodes it, so only the date is wrong)
        _person(_iin(future, True), future, True),
        # 8: unknown region
        _person(_iin(dt.date(1985, 5, 5), False), dt.date(1985, 5, 5), False, region="KZ-99"),
        # 9: IIN for another birth date
        _person(_iin(dt.date(1980, 5, 5), False), dt.date(1980, 5, 6), False),
        # 10: IIN of a woman, registered as a man
        _person(_iin(dt.date(1981, 1, 1), True), dt.date(1981, 1, 1), False),
        # 11: the same person twice
        _person(IINS[0], PEOPLE[0][0], PEOPLE[0][1], surname="Copy"),
        # 12: two reasons at once
        _person(
            _bad_check_digit(_iin(dt.date(1970, 1, 1), True)), dt.date(2030, 1, 1), True
        ),
        # 13: district of another region; 14: bad parent IIN
        _person(_iin(dt.date(1991, 1, 1), False), dt.date(1991, 1, 1), False,
                district=OTHER_REGION_DISTRICT),
        _person(_iin(dt.date(1992, 1, 1), False), dt.date(1992, 1, 1), False,
                father_iin="123"),
    ]  # fmt: skip
    return rows


POPULATION_REASONS = {
    6: "iin: bad check digit",
    7: "birth_date: in the future",
    8: "region: unknown region",
    9: "iin: birth date mismatch",
    10: "iin: sex mismatch",
    11: "duplicate key",
    12: "iin: bad check digit; birth_date: in the future",
    13: "district: not in region",
    14: "father_iin: not 12 digits",
}


def _income() -> list[dict[str, object]]:
    def row(iin: str, period: str, bin_: str = "B1", income: object = "150000.5") -> dict:
        return {
            "iin": iin,
            "period": period,
            "employer_bin": bin_,
            "income": income,
            "pension_contribution": "15000",
            "social_contribution": "5000",
        }

    return [
        row(IINS[0], "2024-11-01"),
        row(IINS[0], "2024-12-01"),
        row(IINS[1], "2024-12-01", income="0"),
        row(IINS[2], "2024-12-01", "B2"),
        row(_bad_check_digit(IINS[2]), "2024-12-01"),  # 5
        row(STRANGER, "2024-12-01"),  # 6
        row(IINS[1], "2024-12-01", income="abc"),  # 7
        row(IINS[0], "2024-12-01", income="99"),  # 8: same key as row 2
        row(IINS[2], "2025-02-01", "B3"),  # 9
        row(IINS[2], "2024-10-01", income="-5"),  # 10
        row(IINS[3], "2024-13-01"),  # 11
        row(IINS[3], "2024-12-01", bin_=" "),  # 12
    ]


INCOME_REASONS = {
    5: "iin: bad check digit",
    6: "iin: unknown person",
    7: "income: not a number",
    8: "duplicate key",
    9: "period: in the future",
    10: "income: below 0",
    11: "period: not a date",
    12: "employer_bin: missing",
}


def _payments() -> list[dict[str, str]]:
    def row(pid: str, iin: str, amount: str = "21000", **over: str) -> dict[str, str]:
        r = {
            "payment_id": pid,
            "iin": iin,
            "measure": "asp",
            "period": "2024-12-01",
            "amount": amount,
            "region": REGION,
            "bank_account": "KZ0001",
            "paid_date": "2024-12-20",
            "note": "an undeclared column",
        }
        r.update(over)
        return r

    return [
        row("P1", IINS[0]),
        row("P2", IINS[1], "21000.75"),
        row("P3", IINS[2], "12x"),  # 3
        row("P4", IINS[3], region="KZ-00"),  # 4
        row("P1", IINS[4]),  # 5: duplicate payment_id
        row("P6", STRANGER),  # 6
        row("P7", IINS[4], measure="bonus"),  # 7
        row("P8", IINS[4], paid_date="1899-12-31"),  # 8
        row("P9", "", amount=""),  # 9
    ]


PAYMENT_REASONS = {
    3: "amount: not a number",
    4: "region: unknown region",
    5: "duplicate key",
    6: "iin: unknown person",
    7: "measure: unknown code",
    8: "paid_date: before 1900",
    9: "iin: missing; amount: missing",
}


def _write_parquet(path: Path, rows: list[dict[str, object]], types: dict[str, pa.DataType]):
    names = list(rows[0])
    schema = pa.schema([(n, types.get(n, pa.string())) for n in names])
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, row_group_size=4)  # several row groups, even when tiny


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)


def _manifest(root: Path) -> None:
    (root / "registries" / "manifest.json").write_text(
        json.dumps({"country": "kz", "extract_date": EXTRACT.isoformat()})
    )


def build(root: Path, income_csv: bool = False) -> Path:
    """A tiny registries folder: population and income (Parquet), payments (CSV)."""
    reg = root / "registries"
    reg.mkdir(parents=True)
    _manifest(root)
    _write_parquet(
        reg / "population.parquet",
        _population(),
        {"birth_date": pa.date32(), "death_date": pa.date32(), "urban": pa.bool_()},
    )
    if income_csv:
        _write_csv(reg / "income.csv", _income())
    else:
        # income is a string column in the Parquet file: a non-number must be caught there too
        _write_parquet(reg / "income.parquet", _income(), {"period": pa.string()})
    _write_csv(reg / "payments.csv", _payments())
    return root


def _rows(path: Path) -> list[dict[str, object]]:
    return pq.read_table(path).to_pylist()


def _accepted(path: Path) -> list[dict[str, object]]:
    """An ingested file's rows as the audit reads them: IINs as their 12-digit text."""
    con = duckdb.connect()
    con.execute(registry_text_view(con, path, "r"))
    table = con.sql("SELECT * FROM r").to_arrow_table()
    con.close()
    return table.to_pylist()


def _reasons(path: Path) -> dict[int, str]:
    return {r["row_number"]: r["reason"] for r in _rows(path)}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for folder in ("ingested", "quarantine")
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestReport]:
    root = build(tmp_path_factory.mktemp("nation"))
    return root, ingest(root)


def test_population_rows_are_quarantined_with_precise_reasons(ingested):
    root, report = ingested
    assert _reasons(root / "quarantine" / "population.parquet") == POPULATION_REASONS
    accepted = _accepted(root / "ingested" / "population.parquet")
    assert [r["iin"] for r in accepted] == IINS
    assert accepted[3]["father_iin"] == IINS[0] and accepted[3]["birth_date"] == PEOPLE[3][0]
    assert report.registries["population"].accepted == len(IINS)


def test_iins_are_stored_as_numbers_and_read_back_as_text(ingested):
    root, _ = ingested
    path = root / "ingested" / "population.parquet"
    schema = pq.read_schema(path)
    for name in ("iin", "father_iin", "mother_iin"):
        assert schema.field(name).type == pa.int64()
    stored = _rows(path)
    assert [r["iin"] for r in stored] == [int(i) for i in IINS]
    assert IINS[3].startswith("0") and _accepted(path)[3]["iin"] == IINS[3]
    assert _accepted(path)[3]["father_iin"] == IINS[0]
    con = duckdb.connect()  # the batch view: numbers, and the text beside them
    con.execute(registry_view(con, path))
    rows = con.execute("SELECT iin, iin_text, person_id FROM population").fetchall()
    assert [(i, t) for i, t, _ in rows] == [(int(i), i) for i in IINS]
    keyed = [hashlib.sha256((PSEUDONYM_KEY + i).encode()).hexdigest()[:16] for i in IINS]
    assert [p for *_, p in rows] == keyed  # ingestion's pseudonym_sql, of the text
    empty = pq.read_schema(root / "ingested" / "health.parquet")  # a missing registry
    assert empty.field("iin").type == pa.int64()


def test_views_read_iins_stored_as_text_by_older_versions(ingested, tmp_path):
    """A population ingested before IINs were stored as numbers (text, no `person_id`) reads
    through both views exactly as one ingested now."""
    root, _ = ingested
    now = root / "ingested" / "population.parquet"
    older = tmp_path / "population.parquet"
    duckdb.sql(
        f"COPY (SELECT * EXCLUDE (person_id) REPLACE (lpad(CAST(iin AS VARCHAR), 12, '0') AS iin,"
        " lpad(CAST(father_iin AS VARCHAR), 12, '0') AS father_iin,"
        " lpad(CAST(mother_iin AS VARCHAR), 12, '0') AS mother_iin)"
        f" FROM '{now}') TO '{older}' (FORMAT parquet)"
    )
    assert pq.read_schema(older).field("iin").type == pa.string()
    for view in (registry_view, lambda con, path: registry_text_view(con, path, "population")):
        seen = []
        for path in (now, older):
            con = duckdb.connect()
            con.execute(view(con, path))
            rows = con.sql("SELECT * FROM population ORDER BY iin")
            names = [d[0] for d in rows.description]
            seen.append([dict(zip(names, r, strict=True)) for r in rows.fetchall()])
            if view is not registry_view:  # only the batch view derives a missing pseudonym
                for row in seen[-1]:
                    row.pop("person_id", None)
            con.close()
        assert seen[0] == seen[1] and len(seen[0]) == len(IINS)


def test_income_rows_are_quarantined_with_precise_reasons(ingested):
    root, _ = ingested
    assert _reasons(root / "quarantine" / "income.parquet") == INCOME_REASONS
    accepted = _accepted(root / "ingested" / "income.parquet")
    assert [(r["iin"], r["period"], r["income"]) for r in accepted] == [
        (IINS[0], dt.date(2024, 11, 1), 150000.5),
        (IINS[0], dt.date(2024, 12, 1), 150000.5),  # the first of the duplicated key
        (IINS[1], dt.date(2024, 12, 1), 0.0),
        (IINS[2], dt.date(2024, 12, 1), 150000.5),
    ]


def test_payments_csv_rows_are_quarantined_with_precise_reasons(ingested):
    root, report = ingested
    assert _reasons(root / "quarantine" / "payments.parquet") == PAYMENT_REASONS
    accepted = _rows(root / "ingested" / "payments.parquet")
    assert [(r["payment_id"], r["amount"]) for r in accepted] == [("P1", 21000.0), ("P2", 21000.75)]
    assert report.registries["payments"].source == "registries/payments.csv"
    assert report.registries["payments"].extra_columns == ["note"]
    assert "note" not in pq.read_schema(root / "ingested" / "payments.parquet").names


def test_quarantine_keeps_the_original_text(ingested):
    root, _ = ingested
    rows = {r["row_number"]: r for r in _rows(root / "quarantine" / "income.parquet")}
    assert rows[7]["income"] == "abc"
    assert rows[11]["period"] == "2024-13-01"
    assert rows[12]["employer_bin"] == " "  # the original, untrimmed
    pop = {r["row_number"]: r for r in _rows(root / "quarantine" / "population.parquet")}
    assert pop[7]["birth_date"] == "2026-05-05"
    assert pop[8]["urban"] == "true"
    pay = {r["row_number"]: r for r in _rows(root / "quarantine" / "payments.parquet")}
    assert pay[9]["iin"] is None and pay[9]["amount"] is None
    schema = pq.read_schema(root / "quarantine" / "population.parquet")
    assert schema.names == [*BY_NAME["population"].column_names, "reason", "row_number"]
    assert all(pa.types.is_string(schema.field(n).type) for n in schema.names[:-1])


def test_accepted_rows_have_the_declared_types(ingested):
    """As declared, IINs as BIGINT (`Column.stored_type`)."""
    root, _ = ingested
    want = {"VARCHAR": "VARCHAR", "DATE": "DATE", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}
    want["BOOLEAN"] = "BOOLEAN"
    con = duckdb.connect()
    for reg in REGISTRIES:
        path = root / "ingested" / f"{reg.name}.parquet"
        got = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        derived = [("person_id", "VARCHAR")] if reg.name == "population" else []
        assert [(n, t) for n, t, *_ in got] == [
            *((c.name, want[c.stored_type]) for c in reg.columns),
            *derived,
        ]


def test_counts_add_up_and_summary_counts_each_reason(ingested):
    root, report = ingested
    summary = json.loads((root / "ingested" / "summary.json").read_text())
    assert summary == report.to_dict()
    assert summary["extract_date"] == "2025-01-01"
    assert summary["country"] == "kz"
    assert summary["missing"] == [
        r.name for r in REGISTRIES if r.name not in ("population", "income", "payments")
    ]
    assert list(summary["registries"]) == ["population", "income", "payments"]
    inputs = {"population": _population(), "income": _income(), "payments": _payments()}
    wanted = {"population": POPULATION_REASONS, "income": INCOME_REASONS}
    wanted["payments"] = PAYMENT_REASONS
    for name, s in summary["registries"].items():
        assert s["input_rows"] == len(inputs[name])
        assert s["accepted"] + s["quarantined"] == s["input_rows"]
        assert s["accepted"] == len(_rows(root / "ingested" / f"{name}.parquet"))
        assert s["quarantined"] == len(_rows(root / "quarantine" / f"{name}.parquet"))
        counts: dict[str, int] = {}
        for reason in wanted[name].values():
            for part in reason.split("; "):
                counts[part] = counts.get(part, 0) + 1
        assert s["reasons"] == counts
    assert summary["registries"]["population"]["reasons"]["iin: bad check digit"] == 2
    assert summary["registries"]["payments"]["reasons"]["iin: missing"] == 1


def test_missing_registries_get_empty_typed_outputs(ingested):
    root, report = ingested
    assert "health" in report.missing
    assert _rows(root / "ingested" / "health.parquet") == []
    assert not (root / "quarantine" / "health.parquet").exists()


def test_rerun_gives_identical_outputs(ingested, tmp_path):
    root, _ = ingested
    copy = tmp_path / "copy"
    shutil.copytree(root / "registries", copy / "registries")
    calls: list[str] = []
    ingest(copy, progress=calls.append)
    assert _files(copy) == _files(root)
    ingest(copy)
    assert _files(copy) == _files(root)
    assert calls == ["population"] + [r.name for r in REGISTRIES if r.name != "population"]
    assert sorted(p.name for p in copy.iterdir()) == ["ingested", "quarantine", "registries"]


def test_the_extracts_ingested_last_are_not_ingested_again(ingested, tmp_path):
    """The same extracts again rewrite nothing (the later steps see unchanged files); a new
    delivery of one extract, or `force`, ingests again."""
    root, report = ingested
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # times kept: the same extracts
    out = copy / "ingested" / "population.parquet"
    stamp = out.stat().st_mtime_ns
    again = ingest(copy)
    assert again.unchanged and again.to_dict() == report.to_dict()
    assert out.stat().st_mtime_ns == stamp
    forced = ingest(copy, force=True)
    assert not forced.unchanged and out.stat().st_mtime_ns != stamp
    stamp = out.stat().st_mtime_ns
    (copy / "registries" / "payments.csv").touch()  # delivered again
    assert not ingest(copy).unchanged and out.stat().st_mtime_ns != stamp
    assert ingest(copy).unchanged


def test_csv_input_works_like_parquet(ingested, tmp_path):
    root, _ = ingested
    other = build(tmp_path / "csv", income_csv=True)
    report = ingest(other)
    assert report.registries["income"].source == "registries/income.csv"
    assert _rows(other / "ingested" / "income.parquet") == _rows(
        root / "ingested" / "income.parquet"
    )
    assert _rows(other / "quarantine" / "income.parquet") == _rows(
        root / "quarantine" / "income.parquet"
    )


def test_a_parquet_number_column_is_typed_without_text(tmp_path):
    root = build(tmp_path)
    rows = [r for r in _income() if r["income"] != "abc"]
    for r in rows:
        r["income"] = float(r["income"])  # type: ignore[arg-type]
    rows[0]["income"] = float("nan")
    _write_parquet(root / "registries" / "income.parquet", rows, {"income": pa.float64()})
    ingest(root)
    reasons = _reasons(root / "quarantine" / "income.parquet")
    assert reasons[1] == "income: not a number"
    assert _rows(root / "quarantine" / "income.parquet")[0]["income"] == "nan"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("corrupt", "income.parquet"),
        ("no_column", "income.parquet: missing column(s) social_contribution"),
        ("empty_population", "population register is empty"),
        ("no_population", "population.parquet: the population registry is required"),
        ("bad_csv", "payments.csv"),
        ("manifest", "manifest.json"),
    ],
)
def test_unusable_input_raises_and_changes_nothing(ingested, tmp_path, damage, message):
    root, _ = ingested
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = _files(copy)
    reg = copy / "registries"
    if damage == "corrupt":
        data = (reg / "income.parquet").read_bytes()
        (reg / "income.parquet").write_bytes(data[: len(data) // 2] + b"\0" * 16 + b"PAR1")
    elif damage == "no_column":
        rows = [{k: v for k, v in r.items() if k != "social_contribution"} for r in _income()]
        _write_parquet(reg / "income.parquet", rows, {})
    elif damage == "empty_population":
        table = pq.read_table(reg / "population.parquet").slice(0, 0)
        pq.write_table(table, reg / "population.parquet")
    elif damage == "no_population":
        (reg / "population.parquet").unlink()
    elif damage == "bad_csv":
        with (reg / "payments.csv").open("a") as fh:
            fh.write("P10,x,asp,2024-12-01,1,KZ-10,acc,2024-12-01,extra,fields\n")
    else:
        (reg / "manifest.json").write_text('{"country": "kz", "extract_date": "soon"}')
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ingest(copy)
    assert _files(copy) == before
    assert sorted(p.name for p in copy.iterdir()) == ["ingested", "quarantine", "registries"]


def test_the_error_names_the_file(tmp_path):
    root = build(tmp_path)
    (root / "registries" / "income.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(IngestError) as err:
        ingest(root)
    assert str(root / "registries" / "income.parquet") in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not (root / "ingested").exists() and not (root / "quarantine").exists()


def test_a_parquet_and_a_csv_of_the_same_registry_are_refused(tmp_path):
    root = build(tmp_path)
    _write_csv(root / "registries" / "income.csv", _income())
    with pytest.raises(IngestError, match="both exist"):
        ingest(root)


# --- property: ingestion agrees with a plain-Python oracle on random income rows ---------------

IIN_POOL = [*IINS[:3], STRANGER, _bad_check_digit(IINS[0]), "123", "", " " + IINS[1]]
PERIOD_POOL = ["2024-12-01", "2024-11-01", "2026-01-01", "1899-12-01", "2024-13-01", "", "x"]
BIN_POOL = ["B1", "B2", " "]
MONEY_POOL = ["0", "1.5", "-1", "abc", "", "1e3", " 7 "]


def _oracle(rows: list[dict[str, str]]) -> tuple[list[tuple], dict[int, str]]:
    """Accepted (iin, period, bin, income) and {row_number: reason}, computed row by row."""
    accepted, rejected, seen = [], {}, set()
    for n, row in enumerate(rows, start=1):
        reasons = []
        iin = row["iin"].strip()
        if not iin:
            reasons.append("iin: missing")
        elif iin not in IINS:
            reasons.append("iin: " + (validate_iin(iin) or "unknown person"))
        period = None
        if not row["period"].strip():
            reasons.append("period: missing")
        else:
            try:
                period = dt.date.fromisoformat(row["period"])
            except ValueError:
                reasons.append("period: not a date")
            else:
                if period > EXTRACT:
                    reasons.append("period: in the future")
                if period < dt.date(1900, 1, 1):
                    reasons.append("period: before 1900")
        if not row["employer_bin"].strip():
            reasons.append("employer_bin: missing")
        money = {}
        for col in ("income", "pension_contribution", "social_contribution"):
            text = row[col].strip()
            if not text:
                reasons.append(f"{col}: missing")
                continue
            try:
                money[col] = float(text)
            except ValueError:
                reasons.append(f"{col}: not a number")
                continue
            if money[col] < 0:
                reasons.append(f"{col}: below 0")
        key = (iin, period, row["employer_bin"].strip())
        if not reasons and key in seen:
            reasons.append("duplicate key")
        if reasons:
            rejected[n] = "; ".join(reasons)
        else:
            seen.add(key)
            accepted.append((*key, money["income"]))
    return accepted, rejected


INCOME_ROW = st.fixed_dictionaries(
    {
        "iin": st.sampled_from(IIN_POOL),
        "period": st.sampled_from(PERIOD_POOL),
        "employer_bin": st.sampled_from(BIN_POOL),
        "income": st.sampled_from(MONEY_POOL),
        "pension_contribution": st.sampled_from(MONEY_POOL[:2] + MONEY_POOL[3:4]),
        "social_contribution": st.just("1"),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(INCOME_ROW, min_size=1, max_size=25))
def test_ingestion_agrees_with_a_row_by_row_oracle(rows):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "registries").mkdir()
        _manifest(root)
        _write_parquet(
            root / "registries" / "population.parquet",
            _population()[: len(IINS)],
            {"birth_date": pa.date32(), "death_date": pa.date32(), "urban": pa.bool_()},
        )
        _write_csv(root / "registries" / "income.csv", rows)
        report = ingest(root)
        accepted, rejected = _oracle(rows)
        got = _accepted(root / "ingested" / "income.parquet")
        assert [(r["iin"], r["period"], r["employer_bin"], r["income"]) for r in got] == accepted
        assert _reasons(root / "quarantine" / "income.parquet") == rejected
        income = report.registries["income"]
        assert (income.input_rows, income.accepted) == (len(rows), len(accepted))
