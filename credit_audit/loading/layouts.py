"""The dict layouts a checkpoint file comes in, read as their users save them.

* ``{"state_dict", "Bs", "config", ...}`` (the seeds' bundle); Lightning's checkpoint is one
  (``state_dict`` beside ``pytorch-lightning_version``; its keys carry the LightningModule's
  attribute, ``model.``, which comes off where the model is built);
* ``{"epoch", "model_state_dict", "optimizer_state_dict", "Bs", ...}`` (the PyTorch tutorial's);
* ``{"model": state_dict or nn.Module, ...}`` (snapshots; a module only under --trust-pickle);
* a raw ``state_dict``.

The feedback matrices beside the weights:

* ``Bs``: a list of (d, C) tensors, one per block; a dict keyed by layer index (0, 1, ...); a
  dict keyed by the audited layers' module names (``"act1"``, ``"fc2:input"``), matched to the
  layers by the rule; or one (C, d_max) tensor with config ``bs_layout: tinydfa``;
* ``feedback_matrix``: LightOn TinyDFA's global (C, d_max) matrix, which a user saves beside
  the state_dict (TinyDFA keeps it as a plain attribute, never in the state_dict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["BS_LAYOUTS", "Unpacked", "config_hints", "is_tensor_dict", "read_bs", "unpack"]

#: config ``bs_layout`` values: how the stored ``Bs`` are laid out
BS_LAYOUTS = ("per_block", "tinydfa")
_LIGHTNING = ("pytorch-lightning_version", "lightning_version")


@dataclass
class Unpacked:
    """What a checkpoint dict holds, before any library's own layout is split off."""

    format: str
    state_dict: Any
    bs: list | None = None  # one (d, C) matrix per block, in order
    bs_named: dict | None = None  # layer (module) name -> matrix, as the file keys them
    bs_global: Any = None  # TinyDFA's (C, d_max) matrix
    config: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    hints: dict = field(default_factory=dict)


def is_tensor_dict(obj: Any) -> bool:
    """A non-empty dict of string keys and tensor values (a state_dict).

    Example:
        >>> import torch
        >>> is_tensor_dict({"w": torch.zeros(2)}), is_tensor_dict({"w": 1.0}), is_tensor_dict({})
        (True, False, False)
    """
    import torch

    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _weights(obj: dict, key: str, path: Any) -> dict:
    """The weights under ``key``: a state_dict, or a pickled module's (--trust-pickle)."""
    import torch

    value = obj[key]
    if isinstance(value, torch.nn.Module):
        return value.state_dict()
    if not isinstance(value, dict):
        raise CreditAuditError(
            f"checkpoint {path}: '{key}' holds a {type(value).__name__}; expected a state_dict "
            "(a dict of tensors), or an nn.Module saved whole (read with --trust-pickle)"
        )
    return value


def unpack(obj: Any, path: Any) -> Unpacked:
    """The weights, feedback matrices, config and meta of a loaded checkpoint object."""
    import torch

    if isinstance(obj, torch.nn.Module):  # only reachable with --trust-pickle
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise CreditAuditError(
            f"checkpoint {path}: expected a dict (a state_dict or a checkpoint dict), "
            f"got {type(obj).__name__}"
        )
    if "state_dict" in obj:
        fmt = "lightning" if any(k in obj for k in _LIGHTNING) else "bundle"
        weights = _weights(obj, "state_dict", path)
    elif "model_state_dict" in obj:
        fmt, weights = "tutorial", _weights(obj, "model_state_dict", path)
    elif "model" in obj:
        fmt, weights = "snapshot", _weights(obj, "model", path)
    elif is_tensor_dict(obj):
        return Unpacked("state_dict", obj)
    else:
        raise CreditAuditError(
            f"checkpoint {path}: a dict without weights ('state_dict', 'model_state_dict' or "
            f"'model') whose values are not all tensors (keys: {sorted(map(str, obj))[:8]})"
        )
    config = obj.get("config")
    config = {} if config is None else config  # a tensor has no truth value
    if not isinstance(config, dict):
        config = {"value": config}
    out = Unpacked(fmt, weights, config=config)
    out.meta = {k: v for k, v in obj.items() if k in ("test_acc", "epoch") and v is not None}
    read_bs(out, obj.get("Bs"), obj.get("feedback_matrix"), path)
    return out


def config_hints(config: dict, path: Any) -> dict:
    """What a checkpoint's config says of how it was trained (``rule``, ``layers``,
    ``bs_init``, and ``loss``, ``loss_reduction``, ``grad_batch``, which
    :mod:`credit_audit.losses` checks); the command line's options still win.

    Example:
        >>> config_hints({"rule": "drtp", "lr": 0.1, "layers": ["act1", "act2"]}, "run.pt")
        {'rule': 'drtp', 'layers': ['act1', 'act2']}
    """
    keys = ("rule", "layers", "bs_init", "loss", "loss_reduction", "grad_batch")
    hints = {k: config[k] for k in keys if k in config}
    if "layers" in hints and not (
        isinstance(hints["layers"], list) and all(isinstance(n, str) for n in hints["layers"])
    ):
        raise CreditAuditError(
            f"checkpoint {path}: config 'layers' must be a list of module "
            f"names, got {hints['layers']!r}"
        )
    return hints


def _layout(config: dict, path: Any) -> str:
    layout = config.get("bs_layout", "per_block")
    if layout not in BS_LAYOUTS:
        raise CreditAuditError(
            f"checkpoint {path}: config 'bs_layout' is {layout!r}, expected one of "
            f"{', '.join(BS_LAYOUTS)}"
        )
    return layout


def read_bs(out: Unpacked, bs: Any, global_matrix: Any, path: Any) -> None:
    """Fill ``out.bs`` / ``out.bs_named`` / ``out.bs_global`` from a file's ``Bs`` and
    ``feedback_matrix`` entries (either may be None)."""
    import torch

    layout = _layout(out.config, path)
    if global_matrix is not None:
        if bs is not None:
            raise CreditAuditError(
                f"checkpoint {path}: holds both 'Bs' and 'feedback_matrix'; store one "
                "(feedback_matrix: TinyDFA's global (C, d_max) matrix; Bs: one (d, C) per layer)"
            )
        if not isinstance(global_matrix, torch.Tensor):
            raise CreditAuditError(
                f"checkpoint {path}: 'feedback_matrix' is a {type(global_matrix).__name__}, "
                "expected TinyDFA's (C, d_max) tensor"
            )
        bs, layout = global_matrix, "tinydfa"
    if bs is None:
        return
    if isinstance(bs, torch.Tensor):
        if layout != "tinydfa":
            raise CreditAuditError(
                f"checkpoint {path}: 'Bs' is one tensor of shape {tuple(bs.shape)}; if it is "
                "TinyDFA's global feedback matrix (C, d_max), add config "
                "{'bs_layout': 'tinydfa'} or save it as 'feedback_matrix'; otherwise store a "
                "list of (d, C) matrices, one per layer"
            )
        if bs.dim() != 2:
            raise CreditAuditError(
                f"checkpoint {path}: TinyDFA's feedback matrix has shape {tuple(bs.shape)}; "
                "expected (C, d_max), two dimensions"
            )
        out.bs_global = bs
        out.hints.update(bs_layout="tinydfa", bs_init="uniform", library="tinydfa")
        return
    if layout == "tinydfa":
        raise CreditAuditError(
            f"checkpoint {path}: config 'bs_layout' is 'tinydfa' but 'Bs' is a "
            f"{type(bs).__name__}; expected TinyDFA's one (C, d_max) tensor"
        )
    if isinstance(bs, dict):
        for key, value in bs.items():
            if not isinstance(value, torch.Tensor):
                raise CreditAuditError(
                    f"checkpoint {path}: 'Bs' entry {key!r} is a {type(value).__name__}, "
                    "expected a tensor"
                )
        order = _index_order(bs, path)
        if order is None:
            out.bs_named = {str(k): v for k, v in bs.items()}
            return
        if all(isinstance(k, str) for k in order):  # "0", "1": indices, or Sequential names?
            out.hints["bs_index_keys"] = [str(k) for k in order]
        bs = [bs[k] for k in order]
    if not isinstance(bs, list | tuple) or not all(isinstance(b, torch.Tensor) for b in bs):
        raise CreditAuditError(
            f"checkpoint {path}: 'Bs' must be a list of tensors, or a dict keyed by layer "
            "index or by module name"
        )
    out.bs = list(bs)


def _index(k: Any) -> int | None:
    if isinstance(k, int) and not isinstance(k, bool):
        return k
    if isinstance(k, str) and k.strip().isdigit():
        return int(k)
    return None


def _index_order(bs: dict, path: Any) -> list | None:
    """Keys of an index-keyed Bs dict in layer order: 0, 1, 2, ..., 10 (not as strings: 0, 1,
    10, 2); None when the keys are names (strings that are not all 0..n-1)."""
    indices = [_index(k) for k in bs]
    if all(isinstance(k, str) for k in bs) and (
        None in indices or sorted(indices) != list(range(len(bs)))
    ):
        return None  # module names ("act1", "fc2:input"; "0", "2", "4" of an nn.Sequential)
    if None in indices:
        names = [k for k, i in zip(bs, indices, strict=True) if i is None]
        raise CreditAuditError(
            f"checkpoint {path}: 'Bs' mixes integer layer indices with names ({names[0]!r}); "
            "key it by layer index (0, 1, ...) or by module name, not both"
        )
    order = sorted(bs, key=_index)
    if [_index(k) for k in order] != list(range(len(order))):
        raise CreditAuditError(
            f"checkpoint {path}: 'Bs' keys {[_index(k) for k in order]} are not 0..{len(order) - 1}"
        )
    return order
