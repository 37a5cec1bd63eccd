"""One family's rows of a Parquet output, read at request time.

The batch steps write their outputs unsorted (docs/card.md), so finding one family in them means
reading the whole `family_id` column (0.1–0.3 s at 1 M families). For the files that pages read
family by family, a copy ordered by `family_id` in small row groups is kept in `DIR/.lookup/`,
with the size and modification time of its source in its metadata: written by `refresh(DIR)`,
or on demand by the server (`watch`). `family_rows` reads a family from a file that is itself
ordered by family (e.g. the audit's payment trail) or from its current copy, opening only the
row groups whose `family_id` range holds it (footers cached); otherwise (no copy yet, or the
source changed since) it scans the source. The rows are the same either way.
"""

from __future__ import annotations

import atexit
import bisect
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qamqor.engine import background, connect, lookup_cursor, scratch_dir, sql_path

FOLDER = ".lookup"
KEY = b"qamqor.lookup.source"  # the copy's key-value metadata: "SIZE:MTIME_NS" of the source
ROW_GROUP = 6144  # rows per row group of a copy (DuckDB rounds to 2,048): what one read decodes
MAX_GROUP = 32_768  # a file read by row group without a copy has none larger (payments: 20,480)
BUILD_MEMORY = "2GB"  # DuckDB buffer limit of a build; larger sorts spill to DIR/.lookup
# the outputs the pages read one family at a time (relative to DIR; globs allowed)
FILES = (
    "cards/history/*/families.parquet",
    "cards/members.parquet",
    "entitlements/persons.parquet",
    "entitlements/persons_since.parquet",
    "entitlements/family_facts.parquet",
    "levels/history/*/families.parquet",
)


@dataclass(frozen=True)
class _Index:
    """A family-ordered file's footer and each row group's `family_id` range."""

    metadata: pq.FileMetaData
    mins: list[str]
    maxs: list[str]
    source: bytes | None  # the source stamp a copy was made from


def _stamp(path: Path) -> bytes:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}".encode()


_indexes: dict[tuple[str, bytes], _Index | None] = {}
_lock = threading.Lock()


def _index(path: Path) -> _Index | None:
    """The footer of `path` if its row groups are small (≤ MAX_GROUP rows: what one read
    decodes) and ordered by family_id, else None (cached per file version)."""
    key = (str(path), _stamp(path))
    with _lock:
        if key in _indexes:
            return _indexes[key]
    md = pq.read_metadata(path)
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    out = None
    if "family_id" in names:
        col = names.index("family_id")
        stats = [md.row_group(g).column(col).statistics for g in range(md.num_row_groups)]
        small = all(md.row_group(g).num_rows <= MAX_GROUP for g in range(md.num_row_groups))
        if small and all(s is not None and s.has_min_max for s in stats):
            mins, maxs = [s.min for s in stats], [s.max for s in stats]
            ordered = all(a <= b for a, b in zip(mins, maxs, strict=True)) and all(
                maxs[g] <= mins[g + 1] for g in range(len(mins) - 1)
            )
            if ordered:
                out = _Index(md, mins, maxs, (md.metadata or {}).get(KEY))
    with _lock:
        _indexes[key] = out
    return out


def copy_path(data_dir: Path, relative: str) -> Path:
    return Path(data_dir) / FOLDER / relative.replace("/", "~")


def _current_copy(data_dir: Path, relative: str, source: Path) -> tuple[Path, _Index] | None:
    copy = copy_path(data_dir, relative)
    if not copy.exists():
        return None
    index = _index(copy)
    if index is None or index.source != _stamp(source):
        return None
    return copy, index


def family_rows(data_dir: Path, relative: str, family_id: str) -> pa.Table:
    """The rows of `family_id` in DIR/`relative` (empty if none; FileNotFoundError if the file
    does not exist)."""
    source = Path(data_dir) / relative
    index = _index(source)
    path = source
    if index is None:
        found = _current_copy(data_dir, relative, source)
        if found is None:
            if str(data_dir) in _watched:
                _ask(data_dir, relative)
            return _scan(source, family_id)
        path, index = found
    first = bisect.bisect_left(index.maxs, family_id)
    last = bisect.bisect_right(index.mins, family_id)
    groups = list(range(first, last))
    try:
        t = pq.ParquetFile(path, metadata=index.metadata).read_row_groups(groups)
    except (OSError, pa.ArrowException):  # the copy was replaced since its footer was read
        return _scan(source, family_id)
    return t.filter(pc.equal(t["family_id"], family_id)) if groups else t


def _scan(source: Path, family_id: str) -> pa.Table:
    con = lookup_cursor()
    try:
        return con.sql(
            f"SELECT * FROM read_parquet({sql_path(source)}) WHERE family_id = $1",
            params=[family_id],
        ).to_arrow_table()
    finally:
        con.close()


def _sources(data_dir: Path) -> list[str]:
    data_dir = Path(data_dir)
    found = {p.relative_to(data_dir).as_posix() for g in FILES for p in data_dir.glob(g)}
    return sorted(found)


def refresh(data_dir: Path, relatives: list[str] | None = None) -> list[str]:
    """Write the missing or outdated copies of `relatives` (default: every file of FILES), each
    by one process at a time (a copy another process is writing is left to it); returns the
    relative paths written."""
    data_dir = Path(data_dir)
    folder = data_dir / FOLDER
    folder.mkdir(exist_ok=True)
    written: list[str] = []
    for relative in _sources(data_dir) if relatives is None else relatives:
        source, copy = data_dir / relative, copy_path(data_dir, relative)
        with open(copy.with_name(f".{copy.name}.lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            if _index(source) is None and _current_copy(data_dir, relative, source) is None:
                _build(source, copy, folder)
                written.append(relative)
    return written


_copying: set[duckdb.DuckDBPyConnection] = set()  # the connections of copies being written


@atexit.register
def _interrupt() -> None:
    """At exit, stop the copies being written (then `background` waits for their threads)."""
    for con in list(_copying):
        con.interrupt()


def _build(source: Path, copy: Path, folder: Path) -> None:
    stamp = _stamp(source).decode()
    tmp = copy.with_name(f".{copy.name}.tmp-{os.getpid()}")
    with scratch_dir(folder, "spill") as spill:
        con = connect(threads=1, memory_limit=BUILD_MEMORY, temp_directory=spill)
        _copying.add(con)
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute(
                f"COPY (SELECT * FROM read_parquet({sql_path(source)}) ORDER BY family_id) "
                f"TO {sql_path(tmp)} (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP}, "
                f"KV_METADATA {{'{KEY.decode()}': '{stamp}'}})"
            )
        finally:
            _copying.discard(con)
            con.close()
    if _stamp(source).decode() == stamp:  # the source did not change while it was copied
        tmp.replace(copy)
    else:
        tmp.unlink(missing_ok=True)


RETRY_SECONDS = 10.0  # a copy that could not be made is tried again after this long
_watched: set[str] = set()
_wanted: dict[str, dict[str, float]] = {}  # DIR -> relative path -> when it was asked for
_building: set[str] = set()


def watch(data_dir: Path) -> None:
    """Make the copies of DIR on demand from this process (the server): a read that finds a
    file's copy missing or older than its source asks for it, and a background thread writes it
    (one file at a time, DuckDB on one thread) while the reads scan the source."""
    _watched.add(str(data_dir))


def _ask(data_dir: Path, relative: str) -> None:
    key = str(data_dir)
    now = time.monotonic()
    with _lock:
        wanted = _wanted.setdefault(key, {})
        if now - wanted.get(relative, -RETRY_SECONDS) < RETRY_SECONDS:
            return
        wanted[relative] = now
        start = key not in _building
        _building.add(key)
    if start:
        background(lambda: _drain(data_dir), "lookup-copies")


def _drain(data_dir: Path) -> None:
    key, done = str(data_dir), set()
    try:
        while True:
            with _lock:
                todo = sorted(set(_wanted.get(key, {})) - done)
                if not todo:
                    _building.discard(key)  # under the lock: a later ask starts a new thread
                    return
            done.add(todo[0])
            try:
                refresh(data_dir, [todo[0]])
            except OSError:
                pass  # e.g. a read-only DIR: the reads scan the source
            except duckdb.InterruptException:
                return  # the interpreter is exiting (_interrupt)
    finally:  # (also when a copy failed)
        with _lock:
            _building.discard(key)
