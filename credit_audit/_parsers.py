"""Parsers of option values: each takes a string (or a value from Python) and returns the
parsed value or raises ValueError with what was expected."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "choice",
    "device",
    "flag",
    "kwargs_json",
    "module_names",
    "positive_int",
    "shard",
    "text",
    "whole",
]


def module_names(value: Any) -> list[str]:
    """``"a,b:input"`` or a list -> ``["a", "b:input"]`` (``--layers``)."""
    names = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(n).strip() for n in names]
    if not names or any(not n.partition(":")[0] for n in names):
        raise ValueError(f"expected module names separated by commas, got {value!r}")
    for n in names:
        if n.partition(":")[2] not in ("", "output", "input"):
            raise ValueError(f"{n!r}: expected NAME, NAME:output or NAME:input")
    return names


def shard(value: Any) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with 1 ≤ I ≤ N (``--audit-shard``)."""
    if isinstance(value, tuple | list) and len(value) == 2:
        i, n = value
    else:
        left, sep, right = str(value).partition("/")
        if not sep:
            raise ValueError(f"expected I/N (part I of N, 1 ≤ I ≤ N), got {value!r}")
        try:
            i, n = int(left), int(right)
        except ValueError:
            raise ValueError(f"expected I/N with integers I and N, got {value!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"expected I/N with 1 ≤ I ≤ N, got {value!r}")
    return int(i), int(n)


def positive_int(value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a positive integer, got {value!r}") from None
    if n <= 0 or isinstance(value, bool) or (isinstance(value, float) and value != n):
        raise ValueError(f"expected a positive integer, got {value!r}")
    return n


def whole(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected an integer, got {value!r}") from None


def device(value: Any) -> str:
    v = str(value).strip().lower()
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise ValueError(f"expected auto, cpu, cuda or cuda:i, got {value!r}")


def choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def kwargs_json(value: Any) -> dict:
    if isinstance(value, dict):
        return dict(value)
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return parsed


def text(value: Any) -> str:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return str(value)


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")
