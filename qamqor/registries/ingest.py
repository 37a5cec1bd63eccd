"""Ingestion of the registry extracts (`qamqor ingest DIR`, SPEC §4).

Reads ``DIR/registries/<name>.parquet`` (or ``.csv``) for every registry declared in
:mod:`qamqor.registries.schemas` together with ``DIR/registries/manifest.json``, validates every
row against the declared schema inside DuckDB and writes

* ``DIR/ingested/<name>.parquet``: the accepted rows, with the declared column types, in input
  order (a registry whose file is missing gets an empty file with the declared columns); IIN
  columns are stored as BIGINT, the number their 12 checked digits spell (the later steps'
  joins are keyed on them; :mod:`qamqor.registries.views` gives the text back); the
  population also gets each person's keyed pseudonym ``person_id`` (``qamqor.ids``), which
  the card and the later steps use instead of hashing the IINs again;
* ``DIR/quarantine/<name>.parquet``: the rejected rows, every declared column as its original
  text, plus ``reason`` (all failing checks of the row joined with "; ") and ``row_number`` (the
  1-based position of the row in the input file), in input order;
* ``DIR/ingested/summary.json``: counts per registry and per reason (:class:`IngestReport`).

Nothing is lost: accepted + quarantined = input rows for every registry. Both output folders
are built in temporaries and swapped in at the very end, so a failed run (:class:`IngestError`)
leaves the previous outputs exactly as they were.

How a registry is processed (no per-row Python; each input file is read at most twice):

1. A CSV is first copied to a scratch Parquet file (all columns as text, input order kept), so
   from here on every source is a Parquet file whose ``file_row_number`` is the row's position.
2. One pass over the source computes every typed value (``TRY_CAST`` from the raw value, so a
   non-numeric amount is caught whatever the file's physical type) and every row-level reason:
   missing required value, wrong type, IIN checks, codes, code lists of the country pack,
   bounds, dates in the future or before 1900, cross-column checks, and references to the
   population. An IIN found among the accepted population IINs is valid by construction; the
   checksum is only computed for IINs that are not found, to tell "bad check digit" from
   "unknown person". The result goes to a scratch Parquet file.
3. Among rows without reasons, the second and later rows (in input order) with an already seen
   key are "duplicate key". Rows already rejected for another reason do not count as the first
   occurrence of their key, so exactly one row per key (the first valid one) is accepted.
4. The accepted rows are written from the scratch file; the rejected rows are joined back to a
   second read of the source to recover their original text.

The population registry is processed first; its accepted IINs are what ``references =
"population.iin"`` means for the other registries.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from qamqor import ids
from qamqor.countries import load_country
from qamqor.engine import atomic_dir, connect, sql_path
from qamqor.ids import iin_checksum_sql, iin_consistent_sql, iin_text_sql, pseudonym_sql
from qamqor.registries.schemas import BOOL, DATE, INT, MONEY, REGISTRIES, TEXT, Column, Registry

__all__ = ["IngestError", "IngestReport", "RegistryReport", "ingest"]

log = logging.getLogger(__name__)

REQUIRED = ("population",)
EARLIEST_DATE = dt.date(1900, 1, 1)
REASON_SEP = "; "
DUPLICATE_KEY = "duplicate key"

_TYPE_WORD = {
    DATE: "not a date",
    INT: "not an integer",
    MONEY: "not a number",
    BOOL: "not true/false",
}
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
_INTEGER_TYPES |= {"U" + t for t in _INTEGER_TYPES}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}


class IngestError(ValueError):
    """A registry extract (or the manifest) that cannot be used at all; nothing was written."""


@dataclass
class RegistryReport:
    """What happened to one registry extract."""

    name: str
    source: str  # the input file, relative to DIR, e.g. "registries/income.parquet"
    input_rows: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)  # individual reason -> rows
    extra_columns: list[str] = field(default_factory=list)  # undeclared columns, ignored


@dataclass
class IngestReport:
    """The result of :func:`ingest`; ``to_dict()`` is ``DIR/ingested/summary.json``."""

    country: str
    extract_date: dt.date
    registries: dict[str, RegistryReport]
    missing: list[str]
    sources: str = ""  # `_source_stamp` of what was ingested
    unchanged: bool = False  # the sources were those of the last ingestion: nothing rewritten

    @property
    def input_rows(self) -> int:
        return sum(r.input_rows for r in self.registries.values())

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.registries.values())

    @property
    def quarantined(self) -> int:
        return sum(r.quarantined for r in self.registries.values())

    def counts(self) -> str:
        """The rows accepted and quarantined, and whether nothing was rewritten (for the CLI
        and the daily run)."""
        same = " (the extracts ingested last: nothing rewritten)" if self.unchanged else ""
        return f"{self.accepted:,} rows accepted, {self.quarantined:,} quarantined{same}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "extract_date": self.extract_date.isoformat(),
            "input_rows": self.input_rows,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "missing": list(self.missing),
            "registries": {name: asdict(r) for name, r in self.registries.items()},
            "sources": self.sources,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestReport:
        return cls(
            country=d["country"],
            extract_date=dt.date.fromisoformat(d["extract_date"]),
            registries={k: RegistryReport(**v) for k, v in d["registries"].items()},
            missing=list(d["missing"]),
            sources=d.get("sources", ""),
        )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def ingest(
    data_dir: Path, progress: Callable[[str], None] | None = None, force: bool = False
) -> IngestReport:
    """Validate ``DIR/registries/*`` and write ``DIR/ingested`` and ``DIR/quarantine``.

    Raises :class:`IngestError` (and changes nothing on disk) when the manifest or a registry
    file cannot be used at all: unreadable, a declared column missing, both a .parquet and a
    .csv for the same registry, or a population that is missing or has no valid row.

    When the sources are those of the last ingestion (`_source_stamp`), nothing is rewritten
    (unless `force`): the result would be the same, and the later steps see unchanged files
    (a daily run of the same extracts keeps what did not change: docs/card.md).
    """
    data_dir = Path(data_dir)
    src_dir = data_dir / "registries"
    if not src_dir.is_dir():
        raise IngestError(f"{src_dir}: no such folder")
    manifest = src_dir / "manifest.json"
    country, extract_date = _read_manifest(manifest)
    regions, districts = _code_lists(country, manifest)

    sources = {reg.name: _find_source(src_dir, reg) for reg in REGISTRIES}
    for name in REQUIRED:
        if sources[name] is None:
            raise IngestError(f"{src_dir / name}.parquet: the {name} registry is required")
    order = sorted(REGISTRIES, key=lambda r: r.name not in REQUIRED)  # population first
    stamp = _source_stamp(manifest, sources, (regions, districts))
    last = _last_report(data_dir)
    if not force and last is not None and last.sources == stamp:
        last.unchanged = True
        return last

    scratch = Path(tempfile.mkdtemp(prefix=".ingest-work-", dir=data_dir))
    con: duckdb.DuckDBPyConnection | None = None
    try:
        con = connect()
        con.execute("SET preserve_insertion_order = true")
        # The IIN SQL holds IN lists of constants; DuckDB's in_clause rewrite turns each into a
        # mark join, and a dozen joins over a wide row cost 4-5x the plain comparisons.
        con.execute("SET disabled_optimizers = 'in_clause'")
        con.execute(f"SET temp_directory = {sql_path(scratch / 'spill')}")
        job = _Job(con, scratch, data_dir, extract_date, regions, districts)
        reports: dict[str, RegistryReport] = {}
        missing: list[str] = []
        with (
            atomic_dir(data_dir / "ingested") as out_dir,
            atomic_dir(data_dir / "quarantine") as q_dir,
        ):
            for reg in order:
                src = sources[reg.name]
                if src is None:
                    job.write_empty(reg, out_dir / f"{reg.name}.parquet")
                    missing.append(reg.name)
                else:
                    reports[reg.name] = job.run(
                        reg, src, out_dir / f"{reg.name}.parquet", q_dir / f"{reg.name}.parquet"
                    )
                if progress is not None:
                    progress(reg.name)
            report = IngestReport(
                country=country,
                extract_date=extract_date,
                registries={r.name: reports[r.name] for r in REGISTRIES if r.name in reports},
                missing=[r.name for r in REGISTRIES if r.name in missing],
                sources=stamp,
            )
            (out_dir / "summary.json").write_text(
                json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
        return report
    finally:
        if con is not None:
            con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _source_stamp(manifest: Path, sources: dict[str, Path | None], codes: object) -> str:
    """A hash of what an ingestion reads and how: each source file's name, size and
    modification time (deliveries replace files whole), the code lists, this package's code
    and the pseudonym key (never stored itself)."""
    h = hashlib.sha256()
    for p in sorted([manifest, *(p for p in sources.values() if p is not None)]):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(repr(codes).encode())
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.read_bytes())
    h.update(ids.PSEUDONYM_KEY.encode())
    return h.hexdigest()


def _last_report(data_dir: Path) -> IngestReport | None:
    """The report of the last ingestion, if its outputs are all there."""
    summary = data_dir / "ingested" / "summary.json"
    try:
        report = IngestReport.from_dict(json.loads(summary.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    outputs = [data_dir / "ingested" / f"{r.name}.parquet" for r in REGISTRIES]
    if not (data_dir / "quarantine").is_dir() or not all(p.exists() for p in outputs):
        return None
    return report


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _read_manifest(path: Path) -> tuple[str, dt.date]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IngestError(f"{path}: unreadable ({e})") from None
    if not isinstance(manifest, dict):
        raise IngestError(f"{path}: expected a JSON object")
    country, extract = manifest.get("country"), manifest.get("extract_date")
    if not isinstance(country, str) or not country:
        raise IngestError(f"{path}: 'country' missing")
    try:
        extract_date = dt.date.fromisoformat(extract)
    except (TypeError, ValueError):
        raise IngestError(f"{path}: 'extract_date' must be YYYY-MM-DD, not {extract!r}") from None
    return country, extract_date


def _code_lists(country: str, manifest: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The region codes and (district, region) pairs of the country pack."""
    try:
        pack = load_country(country)
    except ValueError as e:
        raise IngestError(f"{manifest}: unknown country {country!r} ({e})") from e
    regions = sorted(r.code for r in pack.regions)
    districts = sorted((d.code, d.region) for d in pack.districts)
    return regions, districts


def _csv_header(path: Path) -> list[str]:
    """The column names on the first line of a CSV file (RFC 4180, UTF-8)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise IngestError(f"{path}: unreadable header ({e})") from None
    if not header or len(set(header)) != len(header):
        raise IngestError(f"{path}: the first line must name the columns, once each")
    return header


def _find_source(src_dir: Path, reg: Registry) -> Path | None:
    found = [
        p for p in (src_dir / f"{reg.name}.parquet", src_dir / f"{reg.name}.csv") if p.exists()
    ]
    if len(found) > 1:
        raise IngestError(f"{found[0]} and {found[1]}: both exist, keep only one")
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------
# SQL building blocks
# ---------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _num(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _fmt(value: float) -> str:
    return f"{value:g}"


def _text_sql(raw: str, src_type: str) -> str:
    """The raw value as trimmed text, NULL when absent or blank."""
    text = raw if src_type == "VARCHAR" else f"CAST({raw} AS VARCHAR)"
    return f"NULLIF(TRIM({text}), '')"


def _decimal(src_type: str) -> bool:
    return src_type.startswith("DECIMAL")


def _typed_sql(raw: str, src_type: str, target: str) -> str:
    """The raw value converted to the declared type; NULL when absent or not convertible."""
    text = _text_sql(raw, src_type)
    if target == TEXT:
        return text
    if src_type == target:
        return raw
    if target == MONEY and (src_type in _INTEGER_TYPES | _FLOAT_TYPES or _decimal(src_type)):
        return f"CAST({raw} AS DOUBLE)"
    if target == INT and src_type in _INTEGER_TYPES:
        return f"TRY_CAST({raw} AS BIGINT)"
    if target == INT and (src_type in _FLOAT_TYPES or _decimal(src_type)):
        return f"(CASE WHEN {raw} = trunc({raw}) THEN TRY_CAST({raw} AS BIGINT) END)"
    if target == DATE and src_type in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"):
        return f"(CASE WHEN CAST({raw} AS DATE) = {raw} THEN CAST({raw} AS DATE) END)"
    # From text (the raw type is VARCHAR, or some other type read back as its text).
    if target == INT:
        # DuckDB rounds '1.5' to 2 on a cast to an integer: require an integral value.
        return (
            f"(CASE WHEN TRY_CAST({text} AS DOUBLE) = trunc(TRY_CAST({text} AS DOUBLE))"
            f" THEN TRY_CAST({text} AS BIGINT) END)"
        )
    if target == DATE:
        # DuckDB truncates '2024-01-05 13:00' to a date: accept a time part only if midnight.
        return (
            f"(CASE WHEN length({text}) <= 10 THEN TRY_CAST({text} AS DATE)"
            f" WHEN TRY_CAST({text} AS TIMESTAMP) = TRY_CAST({text} AS DATE)"
            f" THEN TRY_CAST({text} AS DATE) END)"
        )
    return f"TRY_CAST({text} AS {target})"


def _stored_sql(col: Column) -> str:
    """SQL of an accepted column as stored (`Column.stored_type`; `qamqor.registries.views`
    gives an IIN's text back)."""
    name = _q(col.name)
    return f"CAST({name} AS {col.stored_type}) AS {name}" if col.iin else name


def _iin_reason_sql(v: str) -> str:
    """SQL: NULL when the IIN text ``v`` is valid, else why not (the wording of validate_iin)."""
    cen = f"substring({v}, 7, 1)"
    century = f"(CASE WHEN {cen} <= '2' THEN '18' WHEN {cen} <= '4' THEN '19' ELSE '20' END)"
    birth = (
        f"TRY_CAST({century} || substring({v}, 1, 2) || '-' || substring({v}, 3, 2) || '-'"
        f" || substring({v}, 5, 2) AS DATE)"
    )
    return (
        f"(CASE WHEN {v} IS NULL THEN NULL"
        f" WHEN NOT regexp_full_match({v}, '[0-9]{{12}}') THEN 'not 12 digits'"
        f" WHEN {iin_checksum_sql(v)} THEN NULL"
        f" WHEN NOT ({cen} BETWEEN '1' AND '6') THEN 'century/sex digit invalid'"
        f" WHEN {birth} IS NULL THEN 'bad birth date'"
        f" ELSE 'bad check digit' END)"
    )


def _brief(err: Exception) -> str:
    """The first lines of a DuckDB error, without the echoed SQL and the list of fixes."""
    lines: list[str] = []
    for line in str(err).splitlines():
        if not line.strip() or line.startswith(("LINE ", "Possible fixes")):
            break
        lines.append(line.strip())
    return " ".join(lines[:4])


def _in_sql(expr: str, values: list[str] | tuple[str, ...]) -> str:
    """SQL: ``expr`` is one of a few ``values``.

    Spelled as ORs: DuckDB may turn an IN list of constants into a join, and a chain of such
    joins over a wide row is several times slower than the comparisons.
    """
    if not values:
        return "FALSE"
    return "(" + " OR ".join(f"{expr} = {_lit(v)}" for v in values) + ")"


# ---------------------------------------------------------------------------------------------
# One ingestion run
# ---------------------------------------------------------------------------------------------


class _Job:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        scratch: Path,
        data_dir: Path,
        extract_date: dt.date,
        regions: list[str],
        districts: list[tuple[str, str]],
    ) -> None:
        self.con = con
        self.scratch = scratch
        self.data_dir = data_dir
        self.extract_date = extract_date
        con.execute("CREATE OR REPLACE TEMP TABLE __regions (code VARCHAR PRIMARY KEY)")
        con.executemany("INSERT INTO __regions VALUES (?)", [[r] for r in regions])
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __districts (code VARCHAR PRIMARY KEY, region VARCHAR)"
        )
        con.executemany("INSERT INTO __districts VALUES (?, ?)", [list(d) for d in districts])
        self.have_population = False

    # -- helpers ----------------------------------------------------------------------------

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.data_dir).as_posix()
        except ValueError:
            return str(path)

    def _scalar(self, sql: str) -> Any:
        row = self.con.execute(sql).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def _step(self, reg: Registry, what: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        log.debug("%s: %s in %.2f s", reg.name, what, time.perf_counter() - start)

    def write_empty(self, reg: Registry, out: Path) -> None:
        cols = ", ".join(f"CAST(NULL AS {c.stored_type}) AS {_q(c.name)}" for c in reg.columns)
        self.con.execute(f"COPY (SELECT {cols} LIMIT 0) TO {sql_path(out)} (FORMAT parquet)")

    # -- one registry -----------------------------------------------------------------------

    def run(self, reg: Registry, src: Path, out: Path, q_out: Path) -> RegistryReport:
        with self._step(reg, "opened"):
            raw, src_types, extra, input_rows = self._open(reg, src)
        chk = self.scratch / f"{reg.name}.checked.parquet"
        checked = f"read_parquet({sql_path(chk)})"
        with self._step(reg, "checked"):
            try:
                self.con.execute(
                    f"COPY ({self._check_sql(reg, raw, src_types)}) TO {sql_path(chk)}"
                    " (FORMAT parquet)"
                )
            except duckdb.Error as e:
                raise IngestError(f"{src}: unreadable ({_brief(e)})") from e
            checked_rows = self._scalar(f"SELECT count(*) FROM {checked}")
            if checked_rows != input_rows:
                raise AssertionError(f"{reg.name}: {checked_rows} rows checked of {input_rows}")

        with self._step(reg, "duplicates found"):
            # Among the otherwise valid rows: all but the first of a key, in input order.
            keys = [_q(k) for k in reg.key]
            on = " AND ".join(f"c.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE dup AS SELECT c.__row FROM {checked} c JOIN ("
                f"SELECT {', '.join(keys)}, min(__row) AS __first FROM {checked}"
                f" WHERE __reason IS NULL GROUP BY ALL HAVING count(*) > 1) d ON {on}"
                " WHERE c.__reason IS NULL AND c.__row > d.__first"
            )
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE bad AS SELECT __row, __reason FROM {checked}"
                f" WHERE __reason IS NOT NULL"
                f" UNION ALL SELECT __row, {_lit(DUPLICATE_KEY)} FROM dup"
            )
            n_dup = self._scalar("SELECT count(*) FROM dup")

        with self._step(reg, "accepted rows written"):
            cols = ", ".join(_stored_sql(c) for c in reg.columns)
            if reg.name == "population":  # the keyed pseudonym, computed once for every step
                cols += f", {pseudonym_sql('iin')} AS person_id"
            not_dup = " AND __row NOT IN (SELECT __row FROM dup)" if n_dup else ""
            accepted = self._scalar(
                f"COPY (SELECT {cols} FROM {checked} WHERE __reason IS NULL{not_dup}"
                f" ORDER BY __row) TO {sql_path(out)} (FORMAT parquet)"
            )

        with self._step(reg, "quarantined rows written"):
            texts = ", ".join(
                f"CAST(s.{_q(src_types[c.name][0])} AS VARCHAR) AS {_q(c.name)}"
                for c in reg.columns
            )
            try:
                quarantined = self._scalar(
                    f"COPY (SELECT {texts}, b.__reason AS reason, b.__row AS row_number"
                    f" FROM {raw} s JOIN bad b ON s.file_row_number = b.__row - 1"
                    f" ORDER BY b.__row) TO {sql_path(q_out)} (FORMAT parquet)"
                )
            except duckdb.Error as e:
                raise IngestError(f"{src}: unreadable ({_brief(e)})") from e
        if accepted + quarantined != input_rows:
            raise AssertionError(
                f"{reg.name}: {accepted} accepted + {quarantined} quarantined != {input_rows} rows"
            )

        reasons = dict(
            self.con.execute(
                "SELECT r, count(*) AS n FROM (SELECT unnest(string_split(__reason, "
                f"{_lit(REASON_SEP)})) AS r FROM bad) GROUP BY r ORDER BY n DESC, r"
            ).fetchall()
        )
        if reg.name == "population":
            if input_rows == 0:
                raise IngestError(f"{src}: the population register is empty")
            if accepted == 0:
                top = next(iter(reasons), "")
                raise IngestError(f"{src}: no valid row in the population register (e.g. {top})")
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE pop_iin AS SELECT {iin_text_sql('iin')} AS iin"
                f" FROM read_parquet({sql_path(out)})"
            )
            self.have_population = True
        self.con.execute("DROP TABLE bad; DROP TABLE dup")
        with contextlib.suppress(OSError):
            chk.unlink()
        return RegistryReport(
            name=reg.name,
            source=self._rel(src),
            input_rows=input_rows,
            accepted=accepted,
            quarantined=quarantined,
            reasons=reasons,
            extra_columns=extra,
        )

    def _open(
        self, reg: Registry, src: Path
    ) -> tuple[str, dict[str, tuple[str, str]], list[str], int]:
        """The source as a Parquet scan with file_row_number, checked for the declared columns.

        Returns the scan, {declared column: (actual column name, physical type)}, the undeclared
        columns and the number of rows.
        """
        try:
            if src.suffix == ".csv":
                path = self.scratch / f"{reg.name}.raw.parquet"
                header = _csv_header(src)
                columns = ", ".join(f"{_lit(name)}: 'VARCHAR'" for name in header)
                self.con.execute(
                    f"COPY (SELECT * FROM read_csv({sql_path(src)}, auto_detect = false,"
                    f" header = true, delim = ',', quote = '\"', escape = '\"',"
                    f" columns = {{{columns}}})) TO {sql_path(path)} (FORMAT parquet)"
                )
            else:
                path = src
            scan = f"read_parquet({sql_path(path)}, file_row_number = true)"
            described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            rows = self._scalar(f"SELECT count(*) FROM read_parquet({sql_path(path)})")
        except duckdb.Error as e:
            raise IngestError(f"{src}: unreadable ({_brief(e)})") from e
        actual = {name.lower(): (name, typ) for name, typ, *_ in described}
        actual.pop("file_row_number", None)
        declared = {c.name.lower() for c in reg.columns}
        absent = [c.name for c in reg.columns if c.name.lower() not in actual]
        if absent:
            raise IngestError(f"{src}: missing column(s) {', '.join(absent)}")
        src_types = {c.name: actual[c.name.lower()] for c in reg.columns}
        extra = [name for key, (name, _) in actual.items() if key not in declared]
        return scan, src_types, extra, int(rows)

    # -- the row checks ---------------------------------------------------------------------

    def _check_sql(self, reg: Registry, scan: str, src_types: dict[str, tuple[str, str]]) -> str:
        """SELECT __row, <typed declared columns>, __reason over the source scan."""
        inner = ["file_row_number + 1 AS __row"]
        v: dict[str, str] = {}  # column -> its typed value in the outer query
        p: dict[str, str] = {}  # column -> "the raw value is present"
        for i, col in enumerate(reg.columns):
            name, typ = src_types[col.name]
            raw = _q(name)
            inner.append(f"{_typed_sql(raw, typ, col.type)} AS v{i}")
            present = _text_sql(raw, typ) if typ == "VARCHAR" else raw
            inner.append(f"{present} IS NOT NULL AS p{i}")
            v[col.name], p[col.name] = f"l.v{i}", f"l.p{i}"

        joins: list[str] = []
        pieces: list[str] = []
        names = set(reg.column_names)
        for i, col in enumerate(reg.columns):
            val, present = v[col.name], p[col.name]
            say = col.name + ": "
            if col.required:
                pieces.append(f"CASE WHEN NOT {present} THEN {_lit(say + 'missing')} END")
            if col.type != TEXT:
                bad = f"{present} AND {val} IS NULL"
                if col.type == MONEY:
                    bad = f"{present} AND ({val} IS NULL OR NOT isfinite({val}))"
                pieces.append(f"CASE WHEN {bad} THEN {_lit(say + _TYPE_WORD[col.type])} END")
            if col.iin:
                pieces.append(self._iin_piece(reg, col, i, v, joins))
            if col.codes:
                pieces.append(
                    f"CASE WHEN NOT {_in_sql(val, col.codes)} THEN {_lit(say + 'unknown code')} END"
                )
            if col.code_list == "region":
                joins.append(f"LEFT JOIN __regions g{i} ON g{i}.code = {val}")
                pieces.append(
                    f"CASE WHEN {val} IS NOT NULL AND g{i}.code IS NULL"
                    f" THEN {_lit(say + 'unknown region')} END"
                )
            elif col.code_list == "district":
                joins.append(f"LEFT JOIN __districts d{i} ON d{i}.code = {val}")
                pieces.append(
                    f"CASE WHEN {val} IS NOT NULL AND d{i}.code IS NULL"
                    f" THEN {_lit(say + 'unknown district')} END"
                )
                region_at = next(
                    (j for j, c in enumerate(reg.columns) if c.code_list == "region"), None
                )
                if region_at is not None:
                    region = f"g{region_at}.code"
                    pieces.append(
                        f"CASE WHEN {region} IS NOT NULL AND d{i}.region <> {region}"
                        f" THEN {_lit(say + 'not in ' + reg.columns[region_at].name)} END"
                    )
            elif col.code_list:
                raise ValueError(f"{reg.name}.{col.name}: unknown code_list {col.code_list!r}")
            if col.minimum is not None:
                pieces.append(
                    f"CASE WHEN {val} < {_num(col.minimum)}"
                    f" THEN {_lit(say + 'below ' + _fmt(col.minimum))} END"
                )
            if col.maximum is not None:
                pieces.append(
                    f"CASE WHEN {val} > {_num(col.maximum)}"
                    f" THEN {_lit(say + 'above ' + _fmt(col.maximum))} END"
                )
            if col.type == DATE:
                if col.past:
                    pieces.append(
                        f"CASE WHEN {val} > DATE {_lit(self.extract_date.isoformat())}"
                        f" THEN {_lit(say + 'in the future')} END"
                    )
                pieces.append(
                    f"CASE WHEN {val} < DATE {_lit(EARLIEST_DATE.isoformat())}"
                    f" THEN {_lit(say + 'before ' + str(EARLIEST_DATE.year))} END"
                )
            if col.name == "death_date" and "birth_date" in names:
                pieces.append(
                    f"CASE WHEN {val} < {v['birth_date']}"
                    f" THEN {_lit(say + 'before birth_date')} END"
                )

        reason = f"NULLIF(concat_ws({_lit(REASON_SEP)}, {', '.join(pieces)}), '')"
        outer = ", ".join(f"{v[c.name]} AS {_q(c.name)}" for c in reg.columns)
        return (
            f"SELECT l.__row, {outer}, {reason} AS __reason"
            f" FROM (SELECT {', '.join(inner)} FROM {scan}) l {' '.join(joins)}"
        )

    def _iin_piece(
        self, reg: Registry, col: Column, i: int, v: dict[str, str], joins: list[str]
    ) -> str:
        val, say = v[col.name], col.name + ": "
        invalid = _iin_reason_sql(val)
        if col.references:
            if col.references != "population.iin":
                raise ValueError(f"{reg.name}.{col.name}: unsupported reference {col.references}")
            if not self.have_population:
                raise AssertionError("the population must be ingested before its references")
            # Found among accepted IINs: valid by construction, no checksum needed.
            joins.append(f"LEFT JOIN pop_iin r{i} ON r{i}.iin = {val}")
            return (
                f"CASE WHEN {val} IS NOT NULL AND r{i}.iin IS NULL"
                f" THEN {_lit(say)} || coalesce({invalid}, 'unknown person') END"
            )
        consistency = "NULL"
        if col.name == "iin" and {"birth_date", "sex"} <= set(reg.column_names):
            birth, sex = v["birth_date"], v["sex"]
            other = f"(CASE {sex} WHEN 'M' THEN 'F' ELSE 'M' END)"
            consistency = (
                f"(CASE WHEN {birth} IS NULL OR NOT {_in_sql(sex, ('M', 'F'))} THEN NULL"
                f" WHEN {iin_consistent_sql(val, birth, sex)} THEN NULL"
                f" WHEN {iin_consistent_sql(val, birth, other)} THEN 'sex mismatch'"
                f" ELSE 'birth date mismatch' END)"
            )
        return f"{_lit(say)} || coalesce({invalid}, {consistency})"
