"""Ingested registries as the later steps read them.

Ingestion stores every IIN column (`iin`, `*_iin`) as a BIGINT: it admits only valid 12-digit
IINs, so the number is exact, and joins, aggregates and scans over numbers cost less than over
12-character strings (cards at 6.3 M: ≈ 6 % less CPU than casting the text in the view, as
before; docs/card.md). Two views give them back:

* `registry_view` for the batch steps: IINs as BIGINT, keys of their joins and aggregates;
* `registry_text_view` for steps that show or hash IINs as text (the audit, offers): IINs as
  their 12-digit text, exactly as in the registry extract.

Both also read registries ingested by older versions, which stored the IINs as text.
"""

from __future__ import annotations

from pathlib import Path

from qamqor.engine import sql_path
from qamqor.ids import iin_text_sql, pseudonym_sql


def _columns(con, scan: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}


def _iins(cols: dict[str, str]) -> list[str]:
    return [c for c in cols if c == "iin" or c.endswith("_iin")]


def registry_view(con, path: Path) -> str:
    """`CREATE VIEW` of an ingested registry for the batch steps: its IIN columns as BIGINT,
    and `iin` also as its text `iin_text` (for the pseudonym)."""
    scan = f"read_parquet({sql_path(path)})"
    cols = _columns(con, scan)
    text = [c for c in _iins(cols) if cols[c] == "VARCHAR"]  # ingested by an older version
    select = "*"
    if text:
        select = f"* REPLACE ({', '.join(f'CAST({c} AS BIGINT) AS {c}' for c in text)})"
    # (`iin` here is the stored column, number or text: `iin_text_sql` gives the text of both)
    if "iin" in cols:
        select += f", {iin_text_sql('iin')} AS iin_text"
    if path.stem == "population" and "person_id" not in cols:  # ingested by an older version
        select += f", {pseudonym_sql(iin_text_sql('iin'))} AS person_id"
    return f"CREATE VIEW {path.stem} AS SELECT {select} FROM {scan}"


def registry_text_view(con, path: Path, name: str | None = None) -> str:
    """`CREATE VIEW` (named `name`, else after the file) of an ingested registry with its IIN
    columns as 12-digit text."""
    scan = f"read_parquet({sql_path(path)})"
    cols = _columns(con, scan)
    numbers = [c for c in _iins(cols) if cols[c] != "VARCHAR"]
    select = "*"
    if numbers:
        select = f"* REPLACE ({', '.join(f'{iin_text_sql(c)} AS {c}' for c in numbers)})"
    return f"CREATE VIEW {name or path.stem} AS SELECT {select} FROM {scan}"
