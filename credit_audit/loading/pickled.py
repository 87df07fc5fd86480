"""What a checkpoint's pickle names that ``torch.load(weights_only=True)`` refuses, read
without unpickling anything.

torch's refusal is a long message about its first refused class only; the audit quotes the
classes and functions by their whole dotted names instead, found by walking the pickle's
opcodes (``pickletools.genops`` only decodes them: nothing is imported or called).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["refused_globals"]

_TORCH_REFUSAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE")
_SCAN_BYTES = 64 << 20  # a pickle of objects, not of tensor data: small


def _pickle_bytes(path: Path) -> bytes:
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            member = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            return z.read(member)[:_SCAN_BYTES] if member else b""
    with open(path, "rb") as f:
        return f.read(_SCAN_BYTES)


def _named(module: str, name: str) -> str:
    """``module.name`` as Python 3 spells it (protocol 2 writes ``__builtin__ set``)."""
    import _compat_pickle

    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _globals_in(data: bytes) -> list[str]:
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(_named(*str(arg).split(" ", 1)))
            elif op.name in _STRINGS:
                strings.append(str(arg))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(_named(strings[-2], strings[-1]))
    except Exception:  # noqa: BLE001 - a damaged pickle: what was read so far
        pass
    return list(dict.fromkeys(found))


def _allowed() -> set:
    import torch

    names: set = set()
    try:
        from torch import _weights_only_unpickler

        names |= set(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # a torch without the helper: torch's own message
        pass
    for item in torch.serialization.get_safe_globals():
        obj, name = item if isinstance(item, tuple) else (item, None)
        names.add(name or f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
    return names


def refused_globals(path: Path, message: str) -> list[str]:
    """The dotted names (``package.module.Class``) in ``path``'s pickle that weights_only
    refuses: torch's own (from its ``message``) first, then any other the pickle names."""
    names = _TORCH_REFUSAL.findall(message)
    try:
        scanned = _globals_in(_pickle_bytes(path))
    except Exception:  # noqa: BLE001 - a damaged zip (BadZipFile, zlib): torch's name alone
        scanned = []
    allowed = _allowed()
    for name in scanned:
        if name not in names and name not in allowed and not name.endswith("Storage"):
            names.append(name)
    return names
