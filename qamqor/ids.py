"""Personal identifiers: the Kazakh IIN and the Kyrgyz PIN.

Kazakhstan IIN (12 digits)::

    YYMMDD C SSSS K
    birth  | serial check
           century and sex: 1/2 = 1800s male/female, 3/4 = 1900s, 5/6 = 2000s

The check digit K is ``Σ dᵢ·i mod 11`` (i = 1..11); if that is 10 it is recomputed with the
weights 3,4,5,6,7,8,9,10,11,1,2; if it is 10 again the 11-digit prefix has no check digit and
is never issued.

Kyrgyzstan PIN (14 digits): sex digit (1 female, 2 male), birth date DDMMYYYY, 5-digit serial.
No check digit.

Three flavours of the same rules: scalar Python (validation, tests), vectorised numpy (the
synthetic-nation generator) and SQL expressions (ingestion checks inside DuckDB; written with
portable functions only so they also run on Spark SQL).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

__all__ = [
    "iin_birth_date",
    "iin_check_digit",
    "iin_checksum_sql",
    "iin_consistent_sql",
    "iin_is_female",
    "make_iin",
    "make_iins",
    "make_pin",
    "pseudonym",
    "pseudonym_number_sql",
    "pseudonym_numbers",
    "pseudonym_sql",
    "validate_iin",
    "validate_pin",
]

_W1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_W2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_CENTURY_BASE = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}
_FIRST_DAY = dt.date(1800, 1, 1)
_LAST_DAY = dt.date(2099, 12, 31)
_MAX_IIN_SERIAL = 9_999
_MAX_PIN_SERIAL = 99_999


def _ascii_digits(s: object, n: int) -> bool:
    """True iff ``s`` is a str of exactly ``n`` ASCII digits (``str.isdigit`` alone admits '١')."""
    return isinstance(s, str) and len(s) == n and s.isascii() and s.isdigit()


def _as_date(d: dt.date) -> dt.date:
    return d.date() if isinstance(d, dt.datetime) else d


# --------------------------------------------------------------------------------------------
# Kazakhstan IIN: scalar
# --------------------------------------------------------------------------------------------


def iin_check_digit(first11: str) -> int | None:
    """The check digit for an 11-digit IIN prefix, or None when no valid one exists."""
    if not _ascii_digits(first11, 11):
        raise ValueError(f"expected 11 ASCII digits, got {first11!r}")
    digits = [ord(c) - 48 for c in first11]
    for weights in (_W1, _W2):
        check = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        if check != 10:
            return check
    return None


def _century_digit(year: int, female: bool) -> int:
    if not 1800 <= year <= 2099:
        raise ValueError(f"an IIN can only encode birth years 1800-2099, not {year}")
    return (year // 100 - 18) * 2 + 1 + int(female)


def _iin_prefix(birth: dt.date, female: bool) -> str:
    """The first 7 digits (YYMMDD + century/sex) that ``birth`` and ``female`` imply."""
    birth = _as_date(birth)
    century = _century_digit(birth.year, female)
    return f"{birth.year % 100:02d}{birth.month:02d}{birth.day:02d}{century}"


def make_iin(birth: dt.date, female: bool, serial: int) -> str | None:
    """The IIN for a birth date (1800-2099), sex and serial (0-9999); None if no check digit."""
    if not 0 <= serial <= _MAX_IIN_SERIAL:
        raise ValueError(f"IIN serial must be 0-{_MAX_IIN_SERIAL}, not {serial}")
    first11 = f"{_iin_prefix(birth, female)}{serial:04d}"
    check = iin_check_digit(first11)
    return None if check is None else f"{first11}{check}"


def _decode_birth(iin: str) -> dt.date:
    base = _CENTURY_BASE.get(ord(iin[6]) - 48)
    if base is None:
        raise ValueError(f"IIN {iin!r}: century/sex digit invalid")
    try:
        return dt.date(base + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        raise ValueError(f"IIN {iin!r}: bad birth date") from None


def validate_iin(iin: str, birth: dt.date | None = None, female: bool | None = None) -> str | None:
    """None if ``iin`` is valid (and matches ``birth``/``female`` when given), else a reason.

    Checks in order: "not 12 digits", "bad check digit", "century/sex digit invalid",
    "bad birth date", "birth date mismatch", "sex mismatch".
    """
    if not _ascii_digits(iin, 12):
        return "not 12 digits"
    if iin_check_digit(iin[:11]) != ord(iin[11]) - 48:
        return "bad check digit"
    if ord(iin[6]) - 48 not in _CENTURY_BASE:
        return "century/sex digit invalid"
    try:
        decoded = _decode_birth(iin)
    except ValueError:
        return "bad birth date"
    if birth is not None and decoded != _as_date(birth):
        return "birth date mismatch"
    if female is not None and iin_is_female(iin) != bool(female):
        return "sex mismatch"
    return None


def iin_birth_date(iin: str) -> dt.date:
    """The birth date an IIN encodes (the check digit is not verified); ValueError if none."""
    if not _ascii_digits(iin, 12):
        raise ValueError(f"IIN {iin!r}: not 12 digits")
    return _decode_birth(iin)


def iin_is_female(iin: str) -> bool:
    """Whether an IIN's century/sex digit is even (female); ValueError if the digit is invalid."""
    if not _ascii_digits(iin, 12):
        raise ValueError(f"IIN {iin!r}: not 12 digits")
    digit = ord(iin[6]) - 48
    if digit not in _CENTURY_BASE:
        raise ValueError(f"IIN {iin!r}: century/sex digit invalid")
    return digit % 2 == 0


# --------------------------------------------------------------------------------------------
# Kazakhstan IIN: vectorised generation
# --------------------------------------------------------------------------------------------


_IIN_RECORD = np.dtype([("date", "V6"), ("century", "u1"), ("serial", "V4"), ("check", "u1")])


@functools.cache
def _day_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per day from 1800-01-01: YYMMDD (ASCII, as V6), male century digit, partial sums."""
    days = np.arange(_FIRST_DAY, _LAST_DAY + dt.timedelta(days=1), dtype="datetime64[D]")
    months = days.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    yy = year % 100
    digits = np.stack([yy // 10, yy % 10, month // 10, month % 10, day // 10, day % 10], axis=1)
    return (
        (digits + ord("0")).astype(np.uint8).view("V6").ravel(),
        ((year // 100 - 18) * 2 + 1).astype(np.int16),
        (digits @ np.array(_W1[:6])).astype(np.int16),
        (digits @ np.array(_W2[:6])).astype(np.int16),
    )


@functools.cache
def _serial_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per serial 0-9999: its 4 digits (ASCII, as V4) and their partial weighted sums."""
    serial = np.arange(_MAX_IIN_SERIAL + 1)
    digits = np.stack([serial // 1000, serial // 100 % 10, serial // 10 % 10, serial % 10], axis=1)
    return (
        (digits + ord("0")).astype(np.uint8).view("V4").ravel(),
        (digits @ np.array(_W1[7:11])).astype(np.int16),
        (digits @ np.array(_W2[7:11])).astype(np.int16),
    )


def make_iins(
    birth_days: np.ndarray, female: np.ndarray, serial: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IINs for 1-D arrays of birth dates (datetime64[D]), sexes and serials (0-9999).

    Returns ``(iins, valid)``: IINs as an 'S12' array (ASCII bytes) and a bool mask that is
    False where the prefix has no check digit; those rows hold the prefix followed by '0' and
    the caller should draw another serial for them. No per-row Python: the date and serial
    digits and their weighted sums are gathered from small lookup tables (about 1 s per 10M rows).
    """
    days = np.asarray(birth_days, dtype="datetime64[D]")
    fem = np.asarray(female, dtype=bool)
    ser = np.asarray(serial)
    if not (days.ndim == fem.ndim == ser.ndim == 1 and len(days) == len(fem) == len(ser)):
        raise ValueError("birth_days, female and serial must be 1-D arrays of equal length")
    if ser.dtype.kind not in "iu":
        raise TypeError(f"serial must be an integer array, not {ser.dtype}")
    if len(ser) and (ser.min() < 0 or ser.max() > _MAX_IIN_SERIAL):
        raise ValueError(f"IIN serials must be 0-{_MAX_IIN_SERIAL}")
    if np.isnat(days).any():
        raise ValueError("birth_days contains NaT")
    lo, hi = np.datetime64(_FIRST_DAY, "D"), np.datetime64(_LAST_DAY, "D")
    if len(days) and (days.min() < lo or days.max() > hi):
        raise ValueError("an IIN can only encode birth dates 1800-01-01..2099-12-31")

    day_digits, day_century, day_s1, day_s2 = _day_table()
    ser_digits, ser_s1, ser_s2 = _serial_table()
    off = days.view(np.int64) - lo.astype(np.int64)
    century = day_century.take(off) + fem  # int16
    s1 = day_s1.take(off) + 7 * century + ser_s1.take(ser)  # at most 9 * 66 = 594
    check = s1 % 11
    fallback = np.flatnonzero(check == 10)
    s2 = day_s2.take(off[fallback]) + 9 * century[fallback] + ser_s2.take(ser[fallback])
    check[fallback] = s2 % 11
    valid = check != 10
    check[~valid] = 0

    out = np.empty(len(days), dtype=_IIN_RECORD)
    out["date"] = day_digits.take(off)
    out["century"] = century + ord("0")
    out["serial"] = ser_digits.take(ser)
    out["check"] = check + ord("0")
    return out.view("S12"), valid


# --------------------------------------------------------------------------------------------
# Kazakhstan IIN: SQL
# --------------------------------------------------------------------------------------------


def _digits_sql(expr: str, n: int) -> str:
    """SQL: ``expr`` is exactly ``n`` ASCII digits. The one engine-specific function here.

    DuckDB's ``regexp_full_match``; on Spark use ``{expr} RLIKE '^[0-9]{n}$'``. A portable but
    4x slower alternative: ``length(e) = n AND length(translate(e, '0123456789', '')) = 0``.
    """
    return f"regexp_full_match({expr}, '[0-9]{{{n}}}')"


def _digit_sql(col: str, pos: int) -> str:
    """SQL: the digit at 1-based ``pos`` as an integer.

    ``ascii`` rather than ``CAST(... AS INT)``: a cast raises on a non-digit, and DuckDB
    constant-folds (so raises) even inside a CASE branch that would never be taken.
    """
    return f"(ascii(substring({col}, {pos}, 1)) - 48)"


def _number_sql(col: str, pos: int) -> str:
    """SQL: the two-digit number at 1-based ``pos``."""
    return f"(10 * {_digit_sql(col, pos)} + {_digit_sql(col, pos + 1)})"


IIN_DIGITS = 12


def iin_text_sql(expr: str) -> str:
    """SQL of an IIN stored as a number (ingestion's form) as its 12-digit text: the leading
    zeros come back (people born 2000–2009 have IINs starting with 0). The 12-digit text of an
    older ingestion comes through unchanged."""
    return f"lpad(CAST({expr} AS VARCHAR), {IIN_DIGITS}, '0')"


def iin_checksum_sql(col: str) -> str:
    """SQL boolean: ``col`` is 12 digits with a valid check digit, century digit and date.

    ``col`` is a SQL expression of type VARCHAR (quote it yourself). The result is NULL when
    ``col`` is NULL, else TRUE or FALSE; it never raises on malformed strings. Apart from
    :func:`_digits_sql` it uses only substring, ascii, arithmetic, IN, BETWEEN and CASE.
    """
    d = [_digit_sql(col, i) for i in range(1, 13)]
    s1 = " + ".join(f"{w} * {x}" for w, x in zip(_W1, d, strict=False))
    s2 = " + ".join(f"{w} * {x}" for w, x in zip(_W2, d, strict=False))
    # Engines do not share subexpressions, so each sum is written once: with u = (s1 - K) mod 11
    # and v = (s2 - K) mod 11 for check digit K, valid iff u = 0 (primary weights give K) or
    # s1 ≡ 10, i.e. u = 10 - K, and v = 0 (fallback weights give K). So 11u + v is in the list.
    k = d[11]
    code = f"((({s1}) + 11 - {k}) % 11 * 11 + (({s2}) + 11 - {k}) % 11)"
    check_ok = f"{code} IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 * (10 - {k}))"

    def sub(start: int, length: int) -> str:
        return f"substring({col}, {start}, {length})"

    # Date checks compare equal-width digit strings, which order like numbers. 29 February
    # needs YY divisible by 4 (2·Y1 + Y2 ≡ 0 mod 4) and not 1800 or 1900 (YY 00, century < 5).
    month, day = sub(3, 2), sub(5, 2)
    date_ok = (
        f"{sub(7, 1)} BETWEEN '1' AND '6' AND {month} BETWEEN '01' AND '12'"
        f" AND {day} BETWEEN '01' AND (CASE WHEN {month} IN ('04', '06', '09', '11') THEN '30'"
        f" WHEN {month} = '02' THEN '29' ELSE '31' END)"
        f" AND ({sub(3, 4)} <> '0229' OR ((2 * {d[0]} + {d[1]}) % 4 = 0"
        f" AND ({sub(1, 2)} <> '00' OR {sub(7, 1)} >= '5')))"
    )
    return (
        f"(CASE WHEN {col} IS NULL THEN CAST(NULL AS BOOLEAN)"
        f" WHEN {_digits_sql(col, 12)} THEN ({date_ok} AND {check_ok}) ELSE FALSE END)"
    )


def iin_consistent_sql(col: str, birth_col: str, sex_col: str) -> str:
    """SQL boolean: ``col``'s date and century/sex digits encode ``birth_col`` and ``sex_col``.

    ``col`` is VARCHAR, ``birth_col`` a DATE, ``sex_col`` 'M' or 'F' (any other value, or a
    birth year outside 1800-2099, gives FALSE). The check digit is NOT tested (combine with
    :func:`iin_checksum_sql`). NULL when any of the three inputs is NULL, else TRUE or FALSE.
    """
    y = f"EXTRACT(YEAR FROM {birth_col})"
    expected_cen = (
        f"(CASE WHEN {y} BETWEEN 1800 AND 1899 THEN 1 WHEN {y} BETWEEN 1900 AND 1999 THEN 3"
        f" WHEN {y} BETWEEN 2000 AND 2099 THEN 5 END"
        f" + CASE WHEN {sex_col} = 'F' THEN 1 WHEN {sex_col} = 'M' THEN 0 END)"
    )
    body = (
        f"{_number_sql(col, 1)} = {y} % 100"
        f" AND {_number_sql(col, 3)} = EXTRACT(MONTH FROM {birth_col})"
        f" AND {_number_sql(col, 5)} = EXTRACT(DAY FROM {birth_col})"
        f" AND {_digit_sql(col, 7)} = {expected_cen}"
    )
    return (
        f"(CASE WHEN {col} IS NULL OR {birth_col} IS NULL OR {sex_col} IS NULL"
        f" THEN CAST(NULL AS BOOLEAN)"
        f" WHEN {_digits_sql(col, 12)} THEN COALESCE(({body}), FALSE) ELSE FALSE END)"
    )


# --------------------------------------------------------------------------------------------
# Kyrgyzstan PIN
# --------------------------------------------------------------------------------------------


def make_pin(birth: dt.date, female: bool, serial: int) -> str:
    """The Kyrgyz PIN for a birth date, sex and serial (0-99999)."""
    if not 0 <= serial <= _MAX_PIN_SERIAL:
        raise ValueError(f"PIN serial must be 0-{_MAX_PIN_SERIAL}, not {serial}")
    birth = _as_date(birth)
    return f"{1 if female else 2}{birth.day:02d}{birth.month:02d}{birth.year:04d}{serial:05d}"


def validate_pin(pin: str, birth: dt.date | None = None, female: bool | None = None) -> str | None:
    """None if ``pin`` is valid (and matches ``birth``/``female`` when given), else a reason.

    Reasons: "not 14 digits", "sex digit invalid", "bad birth date", "birth date mismatch",
    "sex mismatch".
    """
    if not _ascii_digits(pin, 14):
        return "not 14 digits"
    if pin[0] not in "12":
        return "sex digit invalid"
    try:
        decoded = dt.date(int(pin[5:9]), int(pin[3:5]), int(pin[1:3]))
    except ValueError:
        return "bad birth date"
    if birth is not None and decoded != _as_date(birth):
        return "birth date mismatch"
    if female is not None and (pin[0] == "1") != bool(female):
        return "sex mismatch"
    return None


# --------------------------------------------------------------------------------------------
# Pseudonyms
# --------------------------------------------------------------------------------------------


# The key of the pseudonyms the pipeline computes in SQL (a deployment secret: set it with
# QAMQOR_PSEUDONYM_KEY; ingestion and every later step must see the same one).
PSEUDONYM_KEY = os.environ.get("QAMQOR_PSEUDONYM_KEY", "qamqor-demo-key")


def pseudonym_sql(expr: str) -> str:
    """SQL of the keyed pseudonym of an IIN expression (16 hex characters of
    sha256(key || iin)): IINs never leave ingestion and the card step in clear."""
    key = PSEUDONYM_KEY.replace("'", "''")
    return f"substr(sha256('{key}' || {expr}), 1, 16)"


def pseudonym_number_sql(expr: str) -> str:
    """SQL of a pseudonym expression as the 64-bit number its 16 hex digits spell: one to one,
    so a join on it matches the same rows as on the text, comparing integers instead."""
    return f"CAST('0x' || {expr} AS UBIGINT)"


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def pseudonym_numbers(ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Pseudonyms as the 64-bit numbers their 16 hex digits spell (as `pseudonym_number_sql`),
    vectorised; None unless every id is a pseudonym. Numbers sort, hash and compare much
    faster than the text, one to one (≈ 0.3 s for 6.3 M ids)."""
    arr = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array | pa.ChunkedArray) else ids
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if not n or arr.null_count or arr.type != pa.string():
        return None
    _, offsets, data = arr.buffers()
    ends = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    if not (np.diff(ends) == 16).all():
        return None
    digits = _HEX[np.frombuffer(data, dtype=np.uint8, count=16 * n, offset=int(ends[0]))]
    if (digits > 15).any():
        return None
    pairs = digits.reshape(n, 8, 2)
    octets = np.ascontiguousarray((pairs[:, :, 0] << 4) | pairs[:, :, 1])
    return octets.view(">u8").ravel().astype(np.uint64)


def pseudonym(iin: str, key: bytes) -> str:
    """A keyed pseudonym: the first 16 hex characters of HMAC-SHA256(key, iin as UTF-8)."""
    return hmac.new(key, iin.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
