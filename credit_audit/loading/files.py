"""Reading a checkpoint file as bytes on disk: torch's formats (``weights_only=True`` first;
full unpickling only under ``--trust-pickle``), a file that is not a checkpoint named by its
first bytes, safetensors with its metadata config, and the config alone, read before an audit
starts. :func:`credit_audit.loading.checkpoint.load_checkpoint` assembles the result. No pytest
here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from credit_audit._errors import CreditAuditError, first_line

__all__ = ["load_safetensors", "read_config", "sniff", "torch_load", "unpickle"]


def torch_load(path: Path, trust_pickle: bool) -> tuple:
    """``(object, unpickled)``: weights_only=True first; full unpickling only when the user
    passed --trust-pickle and the file needs it (``unpickled`` records that it happened)."""
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on sparse tensors; sparse is refused
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines()]
        # a class or function the file references (GLOBAL): real pickled objects, which
        # --trust-pickle would load; anything else is a damaged file that it would not mend
        detail = next((ln for ln in lines if "GLOBAL" in ln), "")
        if detail and trust_pickle:
            return unpickle(path), True
        if detail:
            from credit_audit.loading.pickled import refused_globals

            names = refused_globals(path, str(exc)) or [detail]
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise CreditAuditError(
                f"checkpoint {path}: holds pickled Python objects that weights_only=True "
                f"refuses (the classes or functions it names: {shown}); nothing was executed. "
                "Pass --trust-pickle only if you trust the file's author: unpickling can run "
                "code"
            ) from exc
        reason = next((ln for ln in lines if ln.startswith("Unsupported")), None)
        raise CreditAuditError(
            f"checkpoint {path}: cannot be unpickled (truncated or corrupt?): "
            f"{(reason or first_line(exc))[:200]}"
        ) from exc
    except MemoryError as exc:
        raise CreditAuditError(
            f"checkpoint {path}: reading it needs more memory than this machine has "
            "(a corrupt size field, or a checkpoint too large to audit here)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any failure inside torch.load on a stranger's file
        raise CreditAuditError(
            f"checkpoint {path}: cannot be read as a torch checkpoint (truncated or corrupt?): "
            f"{type(exc).__name__}: {first_line(exc)}"
        ) from exc


# what a file's first bytes say it is, when it is not a torch checkpoint
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy .npy array (not a torch checkpoint)"),
    (b"\x89HDF", "an HDF5 file (Keras?)"),
)


def sniff(path: Path) -> None:
    """Refuse a file that is not a torch checkpoint before torch.load guesses at it: torch's
    zip format starts with ``PK``, its legacy pickle format with the pickle opcode 0x80."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise CreditAuditError(f"checkpoint {path}: the file is empty (0 bytes)")
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return
    kind = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    if kind is None:
        text = head.decode("utf-8", errors="ignore")
        if text and sum(c.isprintable() or c.isspace() for c in text) >= 0.95 * len(head):
            kind = "a text file"
    raise CreditAuditError(
        f"checkpoint {path}: not a torch checkpoint ({kind or 'unknown format'}: it starts "
        f"with {head[:8]!r}, a torch checkpoint with b'PK' or b'\\x80'); "
        "check the path (--trust-pickle would not help)"
    )


def unpickle(path: Path) -> object:
    """The file fully unpickled (``weights_only=False``: only under ``--trust-pickle``)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - anything the file's own code raises
        raise CreditAuditError(
            f"checkpoint {path}: full unpickling (--trust-pickle) failed: "
            f"{type(exc).__name__}: {first_line(exc)}"
        ) from exc


def load_safetensors(path: Path) -> Any:
    """The weights, ``Bs.<i>`` or ``Bs.<module name>`` tensors, TinyDFA's ``feedback_matrix``
    and the metadata's JSON config, as :class:`credit_audit.loading.layouts.Unpacked`."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    from credit_audit.loading.layouts import Unpacked, read_bs

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, Exception) as exc:  # noqa: BLE001 - a stranger's file
        raise CreditAuditError(
            f"checkpoint {path}: cannot be read as safetensors (truncated or corrupt?): "
            f"{first_line(exc)}"
        ) from exc
    config: Any = {}
    if "config" in metadata:
        try:
            config = json.loads(metadata["config"])
        except (ValueError, RecursionError) as exc:  # JSONDecodeError; too deep; too long
            raise CreditAuditError(
                f"checkpoint {path}: metadata 'config' is not JSON: {first_line(exc)}"
            ) from exc
    bs = {k[len("Bs.") :]: tensors.pop(k) for k in list(tensors) if k.startswith("Bs.")}
    out = Unpacked(
        "safetensors", tensors, config=config if isinstance(config, dict) else {"value": config}
    )
    read_bs(out, bs or None, tensors.pop("feedback_matrix", None), path)
    # metadata values are strings: the stored score, when it reads as a number, as a bundle's
    try:
        out.meta = {"test_acc": float(metadata["test_acc"])} if "test_acc" in metadata else {}
    except ValueError:
        out.meta = {}
    return out


def read_config(path: Path) -> dict | None:
    """A checkpoint's config alone, read cheaply and without running code (a safetensors
    header; a torch file memory-mapped with weights_only=True, its tensors left unread), so
    that the run can refuse what it names before the audit starts; None when the file cannot
    be read that way (its audit reports why) or has no config."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import safe_open

            with safe_open(str(path), framework="pt") as f:
                raw = (f.metadata() or {}).get("config")
            config = json.loads(raw) if raw is not None else None
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                try:
                    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError:  # the legacy (non-zip) format cannot be mapped
                    obj = torch.load(path, map_location="cpu", weights_only=True)
            config = obj.get("config") if isinstance(obj, dict) else None
    except Exception:  # noqa: BLE001 - a broken file is its own audit's error, not the run's
        return None
    return config if isinstance(config, dict) else None
