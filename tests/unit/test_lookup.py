"""Per-family reads (qamqor.engine.lookup): the family-ordered copy gives exactly the rows a scan
of the source gives, is used only while it matches its source, and is made on demand."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from qamqor.engine import lookup

REL = "entitlements/persons.parquet"


def _write(data: Path, rows: int, seed: int, group: int = 97) -> pa.Table:
    """An unsorted file: family ids in a scrambled order, several rows each, small row groups."""
    ids = [f"{(i * 7919 + seed) % (rows // 4):016x}" for i in range(rows)]
    t = pa.table(
        {
            "family_id": ids,
            "person_id": [f"p{i:05d}" for i in range(rows)],
            "age": [(i * 37 + seed) % 90 for i in range(rows)],
        }
    )
    path = data / REL
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, path, row_group_size=group)
    return t


def _rows(t: pa.Table) -> list[tuple]:
    return sorted(zip(*(t[c].to_pylist() for c in ("family_id", "person_id", "age")), strict=True))


def _expected(t: pa.Table, fid: str) -> list[tuple]:
    return [r for r in _rows(t) if r[0] == fid]


def test_copy_gives_the_rows_of_a_scan(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lookup, "ROW_GROUP", 2048)  # DuckDB's smallest row group
    t = _write(tmp_path, 20_000, seed=3)
    fids = sorted(set(t["family_id"].to_pylist()))
    assert lookup._current_copy(tmp_path, REL, tmp_path / REL) is None  # scans for now
    scanned = {f: _rows(lookup.family_rows(tmp_path, REL, f)) for f in fids[:40]}
    assert lookup.refresh(tmp_path) == [REL]
    assert lookup.refresh(tmp_path) == []  # current: nothing to write again
    copy = lookup._current_copy(tmp_path, REL, tmp_path / REL)
    assert copy is not None and len(copy[1].mins) >= 9  # 20,000 rows in groups of 2,048
    for f in fids[::7] + fids[:40] + fids[-3:]:
        got = _rows(lookup.family_rows(tmp_path, REL, f))
        assert got == _expected(t, f) and got
        if f in scanned:
            assert got == scanned[f]
    assert lookup.family_rows(tmp_path, REL, "ffffffffffffffff").num_rows == 0
    assert lookup.family_rows(tmp_path, REL, "0").num_rows == 0
    edges = [m for m in copy[1].mins[1:] if m in scanned or m in fids]
    assert all(_rows(lookup.family_rows(tmp_path, REL, f)) == _expected(t, f) for f in edges)


def test_a_changed_source_is_scanned_until_copied_again(tmp_path: Path) -> None:
    _write(tmp_path, 500, seed=1)
    lookup.refresh(tmp_path)
    time.sleep(0.01)
    new = _write(tmp_path, 600, seed=2)  # the next run replaces the source
    os.utime(tmp_path / REL)
    assert lookup._current_copy(tmp_path, REL, tmp_path / REL) is None
    fid = new["family_id"][599].as_py()
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(new, fid)
    assert lookup.refresh(tmp_path) == [REL]
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(new, fid)


def test_a_source_ordered_by_family_is_read_without_a_copy(tmp_path: Path) -> None:
    t = _write(tmp_path, 300, seed=5).sort_by("family_id")
    pq.write_table(t, tmp_path / REL, row_group_size=40)
    assert lookup.refresh(tmp_path) == []
    fid = t["family_id"][123].as_py()
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(t, fid)


def test_a_watched_directory_is_copied_on_demand(tmp_path: Path) -> None:
    t = _write(tmp_path, 400, seed=4)
    lookup.watch(tmp_path)
    fid = t["family_id"][7].as_py()
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(t, fid)  # a scan
    deadline = time.monotonic() + 30
    while lookup._current_copy(tmp_path, REL, tmp_path / REL) is None:
        assert time.monotonic() < deadline, "the copy was not made in the background"
        time.sleep(0.05)
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(t, fid)


def test_a_file_of_large_row_groups_is_copied_even_if_ordered(tmp_path: Path) -> None:
    """One row group of 40,000 rows is trivially ordered, but reading it whole for one family
    costs more than a scan: it gets a copy with small row groups."""
    t = _write(tmp_path, 40_000, seed=6, group=40_000).sort_by("family_id")
    pq.write_table(t, tmp_path / REL, row_group_size=40_000)
    assert lookup._index(tmp_path / REL) is None
    assert lookup.refresh(tmp_path) == [REL]
    fid = t["family_id"][20_000].as_py()
    assert _rows(lookup.family_rows(tmp_path, REL, fid)) == _expected(t, fid)
