"""Fast numpy → Arrow conversions for generated columns (no per-row Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def fixed_strings(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A string array from fixed-width numpy bytes (dtype 'S<w>'), nulls where not valid."""
    width = values.dtype.itemsize
    n = len(values)
    offsets = pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int32).tobytes())
    data = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    arr = pa.Array.from_buffers(pa.string(), n, [None, offsets, data])
    if valid is not None and not valid.all():
        arr = pa.compute.if_else(pa.array(valid), arr, pa.scalar(None, pa.string()))
    return arr


def codes(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers like 'ADR0000012345': a prefix and a zero-padded number."""
    numbers = np.asarray(numbers, dtype=np.int64)
    digits = np.empty((len(numbers), width), dtype=np.uint8)
    rest = numbers.copy()
    for i in range(width - 1, -1, -1):
        digits[:, i] = rest % 10 + 48
        rest //= 10
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    allb = np.concatenate([np.broadcast_to(head, (len(numbers), len(head))), digits], axis=1)
    return fixed_strings(np.ascontiguousarray(allb).view(f"S{allb.shape[1]}").ravel())


def pick(values: list[str] | tuple[str, ...], index: np.ndarray, valid: np.ndarray | None = None):
    """Strings chosen from `values` by index (dictionary decode), nulls where not valid."""
    idx = pa.array(np.asarray(index, dtype=np.int32), mask=None if valid is None else ~valid)
    return pa.DictionaryArray.from_arrays(idx, pa.array(list(values), pa.string())).cast(
        pa.string()
    )


def dates(values: np.ndarray) -> pa.Array:
    """date32 array from datetime64[D], NaT as null."""
    values = values.astype("datetime64[D]")
    return pa.array(values, type=pa.date32(), mask=np.isnat(values))
