"""Tests for qamqor.ids: Kazakh IIN and Kyrgyz PIN in Python, numpy and DuckDB SQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import random

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qamqor.ids import (
    iin_birth_date,
    iin_check_digit,
    iin_checksum_sql,
    iin_consistent_sql,
    iin_is_female,
    make_iin,
    make_iins,
    make_pin,
    pseudonym,
    pseudonym_number_sql,
    pseudonym_numbers,
    validate_iin,
    validate_pin,
)

FIRST, LAST = dt.date(1800, 1, 1), dt.date(2099, 12, 31)
DATES = st.dates(FIRST, LAST)
SERIALS = st.integers(0, 9999)
DIGITS = "0123456789"


def _prefix(birth: dt.date, female: bool, serial: int) -> str:
    """Independent oracle of the first 11 digits: YYMMDD, century/sex, serial."""
    century = {18: 1, 19: 3, 20: 5}[birth.year // 100] + int(female)
    return f"{birth.year % 100:02d}{birth.month:02d}{birth.day:02d}{century}{serial:04d}"


def _primary(iin: str) -> int:
    """Σ dᵢ·i mod 11 over the first 11 digits (10 means the second weights decide)."""
    return sum(i * int(c) for i, c in enumerate(iin[:11], start=1)) % 11


def _with_check(first11: str) -> str:
    check = iin_check_digit(first11)
    assert check is not None, first11
    return first11 + str(check)


# ------------------------------------------------------------------------------------------
# Known examples, worked by hand
# ------------------------------------------------------------------------------------------


def test_known_examples() -> None:
    # 1985-03-15, male, 1900s -> century digit 3, serial 0001: prefix 850315 3 0001.
    # Σ dᵢ·i = 8·1 + 5·2 + 0·3 + 3·4 + 1·5 + 5·6 + 3·7 + 0·8 + 0·9 + 0·10 + 1·11 = 97
    # 97 mod 11 = 9  ->  850315300019
    assert iin_check_digit("85031530001") == 9
    assert make_iin(dt.date(1985, 3, 15), False, 1) == "850315300019"

    # 2000-01-01, female, 2000s -> 6, serial 0090: prefix 000101 6 0090.
    # Σ dᵢ·i = 1·4 + 1·6 + 6·7 + 9·10 = 142 ≡ 10 (mod 11) -> second weights 3..11,1,2:
    # 1·6 + 1·8 + 6·9 + 9·1 = 77 ≡ 0  ->  000101600900
    assert iin_check_digit("00010160090") == 0
    assert make_iin(dt.date(2000, 1, 1), True, 90) == "000101600900"

    # Serial 0095: the 11th digit has weight 11 ≡ 0, so Σ dᵢ·i = 142 + 55 = 197 ≡ 10 still;
    # second weights give 77 + 5·2 = 87 ≡ 10 again -> no check digit exists.
    assert iin_check_digit("00010160095") is None
    assert make_iin(dt.date(2000, 1, 1), True, 95) is None

    assert iin_birth_date("850315300019") == dt.date(1985, 3, 15)
    assert not iin_is_female("850315300019")
    assert iin_birth_date("000101600900") == dt.date(2000, 1, 1)
    assert iin_is_female("000101600900")


def test_check_digit_rejects_malformed_prefix() -> None:
    for bad in ("8503153000", "850315300011", "8503153000a", "８５０３１５３０００１"):
        with pytest.raises(ValueError):
            iin_check_digit(bad)


# ------------------------------------------------------------------------------------------
# Round trip and encoding
# ------------------------------------------------------------------------------------------


@given(DATES, st.booleans(), SERIALS)
def test_make_iin_round_trip(birth: dt.date, female: bool, serial: int) -> None:
    iin = make_iin(birth, female, serial)
    prefix = _prefix(birth, female, serial)
    if iin is None:  # no digit 0-9 can complete this prefix
        assert all(validate_iin(prefix + c) == "bad check digit" for c in DIGITS)
        return
    assert iin[:11] == prefix and len(iin) == 12
    assert validate_iin(iin) is None
    assert validate_iin(iin, birth, female) is None
    assert validate_iin(iin, dt.datetime.combine(birth, dt.time(12)), female) is None
    assert iin_birth_date(iin) == birth
    assert iin_is_female(iin) is female
    assert validate_iin(iin, female=not female) == "sex mismatch"
    other = birth + dt.timedelta(days=1) if birth < LAST else birth - dt.timedelta(days=1)
    assert validate_iin(iin, other) == "birth date mismatch"
    if (birth.month, birth.day) != (2, 29):  # same YYMMDD, another century
        shifted = birth.replace(year=birth.year - 100 if birth.year >= 1900 else birth.year + 100)
        assert validate_iin(iin, shifted) == "birth date mismatch"
    # only one check digit is right
    assert [validate_iin(prefix + c) is None for c in DIGITS].count(True) == 1


def test_no_check_digit_rate() -> None:
    # About 1/11 of prefixes fall back to the second weights and 1/11 of those fail again.
    birth = dt.date(1990, 6, 1)
    missing = sum(make_iin(birth, False, s) is None for s in range(10_000))
    assert 40 < missing < 160  # 10_000 / 121 ≈ 83


def test_make_iin_rejects_unencodable() -> None:
    with pytest.raises(ValueError):
        make_iin(dt.date(1799, 12, 31), False, 1)
    with pytest.raises(ValueError):
        make_iin(dt.date(2100, 1, 1), False, 1)
    with pytest.raises(ValueError):
        make_iin(dt.date(2000, 1, 1), False, 10_000)
    with pytest.raises(ValueError):
        make_iin(dt.date(2000, 1, 1), False, -1)


# ------------------------------------------------------------------------------------------
# Rejection reasons
# ------------------------------------------------------------------------------------------


def test_validate_iin_reasons() -> None:
    assert validate_iin("85031530001") == "not 12 digits"
    assert validate_iin("8503153000190") == "not 12 digits"
    assert validate_iin("85031530001x") == "not 12 digits"
    assert validate_iin(" 850315300019") == "not 12 digits"
    assert validate_iin("850315300019\n") == "not 12 digits"
    assert validate_iin("٨٥٠٣١٥٣٠٠٠١٩") == "not 12 digits"  # Arabic-Indic digits
    assert validate_iin(None) == "not 12 digits"  # type: ignore[arg-type]
    assert validate_iin("850315300018") == "bad check digit"
    for century in "0789":
        assert validate_iin(_with_check(f"850315{century}0001")) == "century/sex digit invalid"
    assert validate_iin(_with_check("85131530001")) == "bad birth date"  # month 13
    assert validate_iin(_with_check("85003230001")) == "bad birth date"  # month 00
    assert validate_iin(_with_check("85043130001")) == "bad birth date"  # 31 April
    assert validate_iin(_with_check("85010030001")) == "bad birth date"  # day 00
    # 29 February: 1900 and 1800 were not leap years, 2000 was
    assert validate_iin(_with_check("00022930001")) == "bad birth date"
    assert validate_iin(_with_check("00022910002")) == "bad birth date"
    assert validate_iin(_with_check("00022950001")) is None
    assert validate_iin(_with_check("96022940001")) is None
    assert validate_iin("850315300019", dt.date(1985, 3, 16)) == "birth date mismatch"
    assert validate_iin("850315300019", dt.date(2085, 3, 15)) == "birth date mismatch"
    assert validate_iin("850315300019", female=True) == "sex mismatch"


def test_decoders_reject_malformed() -> None:
    for bad in ("85031530001", "850315000019", "851315300019"):
        with pytest.raises(ValueError):
            iin_birth_date(bad)
    for bad in ("85031530001", "850315000019", "850315900019"):
        with pytest.raises(ValueError):
            iin_is_female(bad)


# ------------------------------------------------------------------------------------------
# Single-digit substitutions. Measured, not assumed: weight 11 ≡ 0 (mod 11), so with the
# primary weights the 11th digit (last serial digit) is NOT protected; and the fallback to
# the second weights lets some substitutions elsewhere through. About 8.7% of all single-digit
# substitutions of random valid IINs are themselves valid IINs.
# ------------------------------------------------------------------------------------------


def test_known_undetected_substitutions() -> None:
    # 11th digit, primary weights: 850315300019 -> 850315300029 has the same check digit.
    assert validate_iin("850315300019") is None
    assert validate_iin("850315300029") is None
    # Fallback: 000101600900 (Σ ≡ 10, second weights -> 0); changing digit 1 from 0 to 1 gives
    # Σ = 143 ≡ 0 with the primary weights, so 100101600900 (born 2010-01-01) is valid too.
    assert validate_iin("100101600900") is None


@settings(max_examples=300)
@given(DATES, st.booleans(), SERIALS)
def test_single_digit_substitutions(birth: dt.date, female: bool, serial: int) -> None:
    iin = make_iin(birth, female, serial)
    assume(iin is not None)
    for pos in range(12):
        for c in DIGITS.replace(iin[pos], ""):
            changed = iin[:pos] + c + iin[pos + 1 :]
            accepted = validate_iin(changed) is None
            if pos == 11:  # the check digit itself: always caught
                assert not accepted
            elif pos == 10:  # weight 11 ≡ 0: caught iff the second weights decided
                assert accepted == (_primary(iin) != 10)
            elif accepted:  # positions 1-10: only through the fallback on one side
                assert _primary(iin) == 10 or _primary(changed) == 10
            else:
                reasons = ("bad check digit", "century/sex digit invalid", "bad birth date")
                assert validate_iin(changed) in reasons


# ------------------------------------------------------------------------------------------
# numpy generation agrees with the scalar version
# ------------------------------------------------------------------------------------------


def _random_people(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = np.datetime64(FIRST, "D"), np.datetime64(LAST, "D")
    days = lo + rng.integers(0, int((hi - lo).astype(int)) + 1, n)
    edges = ["1800-01-01", "2099-12-31", "1900-02-28", "2000-02-29", "1899-12-31", "1999-12-31"]
    days[: len(edges)] = np.array(edges, dtype="datetime64[D]")
    return days, rng.random(n) < 0.5, rng.integers(0, 10_000, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_iins_matches_scalar(seed: int) -> None:
    days, female, serial = _random_people(20_000, seed)
    serial[:10] = 95  # with 2000-01-01 female: no check digit
    days[:10], female[:10] = np.datetime64("2000-01-01"), True
    iins, valid = make_iins(days, female, serial)
    assert iins.dtype == np.dtype("S12") and iins.shape == (20_000,)
    assert valid.dtype == bool and not valid[:10].any()
    for d, f, s, got, ok in zip(
        days.tolist(), female.tolist(), serial.tolist(), iins, valid, strict=True
    ):
        expected = make_iin(d, f, s)
        assert ok == (expected is not None)
        if ok:
            assert got.decode() == expected
        else:
            assert got.decode()[:11] == _prefix(d, f, s)


def test_make_iins_inputs() -> None:
    days, female, serial = _random_people(100, 3)
    small, _ = make_iins(days, female.astype(int), serial.astype(np.uint16))
    assert (small == make_iins(days, female, serial)[0]).all()
    as_ns, _ = make_iins(days.astype("datetime64[ns]"), female, serial)
    assert (as_ns == small).all()
    empty, empty_valid = make_iins(days[:0], female[:0], serial[:0])
    assert empty.shape == (0,) and empty_valid.shape == (0,)
    with pytest.raises(ValueError):
        make_iins(days, female, serial[:-1])
    with pytest.raises(TypeError):
        make_iins(days, female, serial.astype(float))
    with pytest.raises(ValueError):
        make_iins(days, female, serial + 10_000)
    with pytest.raises(ValueError):
        make_iins(np.array(["1799-12-31"], dtype="datetime64[D]"), female[:1], serial[:1])
    with pytest.raises(ValueError):
        make_iins(np.array(["2100-01-01"], dtype="datetime64[D]"), female[:1], serial[:1])
    with pytest.raises(ValueError):
        make_iins(np.array(["NaT"], dtype="datetime64[D]"), female[:1], serial[:1])


# ------------------------------------------------------------------------------------------
# DuckDB SQL agrees with validate_iin
# ------------------------------------------------------------------------------------------


def _corrupt(iin: str, rnd: random.Random) -> str:
    kind = rnd.randrange(6)
    pos = rnd.randrange(12)
    if kind == 0:  # substitution
        return iin[:pos] + rnd.choice(DIGITS.replace(iin[pos], "")) + iin[pos + 1 :]
    if kind == 1:  # adjacent transposition
        p = min(pos, 10)
        return iin[:p] + iin[p + 1] + iin[p] + iin[p + 2 :]
    if kind == 2:  # a different century digit, check digit recomputed when possible
        first11 = iin[:6] + rnd.choice(DIGITS) + iin[7:11]
    elif kind == 3:  # a random date-ish prefix (months/days up to 39), check digit recomputed
        first11 = f"{rnd.randrange(100):02d}{rnd.randrange(14):02d}{rnd.randrange(40):02d}"
        first11 += iin[6:11]
    elif kind == 4:  # a random 12-digit string
        return "".join(rnd.choice(DIGITS) for _ in range(12))
    else:  # not digits at all
        return rnd.choice(["", "x", iin[:11], iin + "0", iin[:5] + "a" + iin[6:], f" {iin}"])
    check = iin_check_digit(first11)
    return first11 + str(rnd.randrange(10) if check is None else check)


def _corpus(n: int, seed: int) -> list[tuple[str | None, dt.date | None, str | None]]:
    """(iin, birth, sex) rows: valid and corrupted IINs with true, false and NULL attributes."""
    rnd = random.Random(seed)
    rows: list[tuple[str | None, dt.date | None, str | None]] = []
    while len(rows) < n:
        birth = FIRST + dt.timedelta(days=rnd.randrange((LAST - FIRST).days + 1))
        female = rnd.random() < 0.5
        iin = make_iin(birth, female, rnd.randrange(10_000))
        if iin is None:
            continue
        if rnd.random() < 0.5:
            iin = _corrupt(iin, rnd)
        sex: str | None = "F" if female else "M"
        r = rnd.random()
        if r < 0.1:
            sex = "M" if female else "F"
        elif r < 0.15:
            sex = rnd.choice([None, "X", "f", ""])
        r = rnd.random()
        if r < 0.1:
            birth = birth + dt.timedelta(days=rnd.choice([-1, 1, 365, 36_524]))
        elif r < 0.13:
            birth = rnd.choice([dt.date(1799, 12, 31), dt.date(2100, 1, 1), dt.date(1700, 5, 5)])
        elif r < 0.15:
            birth = None
        rows.append((None if rnd.random() < 0.02 else iin, birth, sex))
    rows += [("０００１０１６００９００", dt.date(2000, 1, 1), "F"), ("000101600900", None, None)]
    return rows


def _sql_results(rows: list) -> list[tuple[bool | None, bool | None]]:
    table = pa.table(
        {
            "iin": pa.array([r[0] for r in rows], pa.string()),
            "birth": pa.array([r[1] for r in rows], pa.date32()),
            "sex": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    con = duckdb.connect()
    con.register("people", table)
    query = (
        f"SELECT {iin_checksum_sql('iin')}, {iin_consistent_sql('iin', 'birth', 'sex')} FROM people"
    )
    return con.execute(query).fetchall()


def _consistent(iin: str, birth: dt.date, sex: str) -> bool:
    if sex not in ("M", "F") or not 1800 <= birth.year <= 2099:
        return False
    ok_format = len(iin) == 12 and iin.isascii() and iin.isdigit()
    return ok_format and iin[:7] == _prefix(birth, sex == "F", 0)[:7]


@pytest.mark.parametrize("seed", [0, 1])
def test_sql_agrees_with_validate_iin(seed: int) -> None:
    rows = _corpus(3_000, seed)
    results = _sql_results(rows)
    seen = {True: 0, False: 0}
    for (iin, birth, sex), (checksum, consistent) in zip(rows, results, strict=True):
        if iin is None:
            assert checksum is None
        else:
            assert checksum == (validate_iin(iin) is None), iin
            seen[checksum] += 1
        if iin is None or birth is None or sex is None:
            assert consistent is None
            continue
        assert consistent == _consistent(iin, birth, sex), (iin, birth, sex)
        if sex in ("M", "F"):
            assert (checksum and consistent) == (validate_iin(iin, birth, sex == "F") is None)
    assert min(seen.values()) > 500  # both outcomes well represented


def test_sql_edge_cases() -> None:
    rows = [
        ("850315300019", dt.date(1985, 3, 15), "M"),
        ("850315300019", dt.date(1985, 3, 15), "F"),
        ("850315300019", dt.date(1885, 3, 15), "M"),
        (_with_check("00022930001"), dt.date(1900, 2, 28), "M"),  # 1900-02-29: not a date
        (_with_check("00022950001"), dt.date(2000, 2, 29), "M"),
        ("abcdefghijkl", dt.date(2000, 1, 1), "M"),
        ("", dt.date(2000, 1, 1), "M"),
    ]
    assert _sql_results(rows) == [
        (True, True),
        (True, False),
        (True, False),
        (False, False),
        (True, True),
        (False, False),
        (False, False),
    ]


def test_sql_all_dates_and_centuries() -> None:
    # Every MMDD in 0000..1339 and century digit 0-9, for leap/non-leap/century years.
    rows = []
    for yy, c, mm, dd in itertools.product(("00", "01", "04", "96"), DIGITS, range(14), range(40)):
        first10 = f"{yy}{mm:02d}{dd:02d}{c}000"
        last = next(x for x in DIGITS if iin_check_digit(first10 + x) is not None)
        rows.append((_with_check(first10 + last), dt.date(2000, 1, 1), "M"))
    checksum = [r[0] for r in _sql_results(rows)]
    expected = [validate_iin(r[0]) is None for r in rows]
    assert checksum == expected
    assert 0 < sum(expected) < len(expected)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("'850315300019'", (True, True)), ("'abcdefghijkl'", (False, False)), ("NULL", (None, None))],
)
def test_sql_on_constants(literal: str, expected: tuple) -> None:
    # Constants get folded by the optimizer: no branch may raise (e.g. CAST('a' AS INT)).
    birth, sex = "DATE '1985-03-15'", "'M'"
    query = f"SELECT {iin_checksum_sql(literal)}, {iin_consistent_sql(literal, birth, sex)}"
    assert duckdb.sql(query).fetchall() == [expected]


# ------------------------------------------------------------------------------------------
# Kyrgyz PIN
# ------------------------------------------------------------------------------------------


def test_pin_examples() -> None:
    assert make_pin(dt.date(1990, 5, 7), True, 123) == "10705199000123"
    assert make_pin(dt.date(2001, 12, 31), False, 99_999) == "23112200199999"
    assert validate_pin("10705199000123") is None
    assert validate_pin("1070519900012") == "not 14 digits"
    assert validate_pin("1070519900012a") == "not 14 digits"
    assert validate_pin("30705199000123") == "sex digit invalid"
    assert validate_pin("00705199000123") == "sex digit invalid"
    assert validate_pin("13002199000123") == "bad birth date"  # 30 February
    assert validate_pin("12902190000123") == "bad birth date"  # 29 February 1900
    assert validate_pin("12902200000123") is None  # 29 February 2000
    assert validate_pin("10705199000123", dt.date(1990, 7, 5)) == "birth date mismatch"
    assert validate_pin("10705199000123", female=False) == "sex mismatch"
    with pytest.raises(ValueError):
        make_pin(dt.date(1990, 5, 7), True, 100_000)


@given(st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)), st.booleans(), st.integers(0, 99_999))
def test_pin_round_trip(birth: dt.date, female: bool, serial: int) -> None:
    pin = make_pin(birth, female, serial)
    assert len(pin) == 14 and pin.isdigit()
    assert validate_pin(pin) is None
    assert validate_pin(pin, birth, female) is None
    assert validate_pin(pin, female=not female) == "sex mismatch"
    assert int(pin[9:]) == serial
    if birth.day != birth.month:  # swapping day and month changes the date, if it stays valid
        swapped = pin[0] + pin[3:5] + pin[1:3] + pin[5:]
        assert validate_pin(swapped, birth) in ("birth date mismatch", "bad birth date")


# ------------------------------------------------------------------------------------------
# Pseudonyms
# ------------------------------------------------------------------------------------------


def test_pseudonym() -> None:
    key = b"secret"
    p = pseudonym("850315300019", key)
    assert p == hmac.new(key, b"850315300019", hashlib.sha256).hexdigest()[:16]
    assert len(p) == 16 and all(c in "0123456789abcdef" for c in p)
    assert pseudonym("850315300019", key) == p
    assert pseudonym("850315300019", b"other") != p
    assert pseudonym("000101600900", key) != p


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50))
def test_pseudonym_numbers_spell_the_hex(numbers: list[int]) -> None:
    ids = [f"{n:016x}" for n in numbers]
    got = pseudonym_numbers(ids)
    assert got is not None and got.dtype == np.uint64
    assert [int(v) for v in got] == numbers
    # the same as the SQL, and sorted as the text sorts
    con = duckdb.connect()
    sql = [
        int(con.execute(f"SELECT {pseudonym_number_sql(repr(i))}").fetchone()[0]) for i in ids[:3]
    ]
    assert sql == numbers[:3]
    assert [ids[i] for i in np.argsort(got, kind="stable")] == sorted(ids)


def test_pseudonym_numbers_only_of_pseudonyms() -> None:
    assert pseudonym_numbers(["00af12345678abcd", "ABCDEF0123456789"]) is None  # upper case
    assert pseudonym_numbers(["00af12345678abc"]) is None  # 15 digits
    assert pseudonym_numbers(["00af12345678abcg"]) is None
    assert pseudonym_numbers(pa.array(["00af12345678abcd", None])) is None
    assert pseudonym_numbers([]) is None
    sliced = pa.array(["ffffffffffffffff", "0000000000000001", "00000000000000ff"])[1:]
    assert pseudonym_numbers(sliced).tolist() == [1, 255]
