"""YAML data files (methodologies, measure catalogues, reforms) read into pydantic models, with
every problem reported as `FILE:LINE: problem`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Fail = Callable[[tuple, str], Exception]


class _Problem(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def load_model(
    path: Path, model: type[M], error: type[Exception], extra: dict | None = None
) -> tuple[M, dict, Fail]:
    """Read `path` into `model` (plus `extra` fields); return it, the raw data and `fail(loc,
    problem)`, which makes an `error` naming the line of the key at `loc` for further checks."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    try:
        data, lines = parse_with_lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except _Problem as p:
        raise error(f"{path}:{p.line}: {p}") from None

    def fail(loc: tuple, problem: str) -> Exception:
        while loc and loc not in lines:
            loc = loc[:-1]
        return error(f"{path}:{lines.get(loc, 1)}: {problem}")

    if not isinstance(data, dict):
        raise fail((), "expected a mapping at the top level")
    try:
        obj = model.model_validate({**data, **(extra or {})})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"] if x != "from_")
        raise fail(tuple(err["loc"]), f"{where}: {err['msg']}") from None
    return obj, data, fail


def parse_with_lines(text: str) -> tuple[Any, dict[tuple, int]]:
    """YAML data plus the line of every key and list item (by path), rejecting duplicate keys."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                if k.value in keys:
                    raise _Problem(f"duplicate key {k.value!r}", k.start_mark.line + 1)
                keys.add(k.value)
                lines[(*path, k.value)] = k.start_mark.line + 1
                walk(v, (*path, k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    if root is not None:
        walk(root, ())
    return yaml.safe_load(text), lines
