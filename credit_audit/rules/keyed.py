"""Feedback matrices keyed by module name, matched to the audited layers.

A user who hooks DFA into a network by name saves ``{"state_dict", "Bs": {"act1": B1, "act2":
B2}}``; the DRTP repo keys its matrices by the hook module that holds them. Layer ``i`` (a name
of ``--layers``: ``"act1"``, ``"fc2:input"``) takes the matrix keyed by its name, else, for a
``NAME:input`` layer, the one keyed by the bare module name when no other layer uses that
module. A key that names no audited layer, or a layer without a key, is an error. With neither
``--layers`` nor a config ``layers``, the keys give the layers, in the model's module order
(never the file's key order: safetensors sorts its keys).
"""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["check_index_keys", "layers_from_keys", "match_layers"]


def _normal(key: str) -> str:
    """``"fc2:output"`` is the layer ``"fc2"``; ``"fc2:input"`` stays."""
    name, _, where = key.partition(":")
    return f"{name}:input" if where == "input" else name


def _listed(names: list, limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def layers_from_keys(keys: list, model: Any, source: str) -> list[str]:
    """The layers the keys name, in ``model``'s module order (a module's input before its
    output); a key that names no module is an error."""
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    found = []
    for key in keys:
        name, _, where = str(key).partition(":")
        if name not in order or not name or where not in ("", "input", "output"):
            known = [n for n in order if n][:8]
            raise CreditAuditError(
                f"checkpoint {source}: 'Bs' key {key!r} names no module of "
                f"{type(model).__name__} (its modules start: {_listed(known)}); key the "
                "matrices by module name (NAME, or NAME:input for the module's input), or "
                "by layer index"
            )
        found.append((order[name], 0 if where == "input" else 1, _normal(str(key))))
    layers = [layer for *_, layer in sorted(found)]
    if len(set(layers)) != len(layers):
        twice = next(n for n in layers if layers.count(n) > 1)
        raise CreditAuditError(
            f"checkpoint {source}: 'Bs' keys name the layer {twice!r} twice (NAME and "
            "NAME:output are the same layer)"
        )
    return layers


def match_layers(named: dict, layers: list, source: str) -> tuple[list, dict]:
    """``(matrices, keys)``: layer ``i``'s matrix and the key it came from, for every layer.

    Example:
        >>> named = {"fc2": "B of fc2's input", "act1": "B of act1"}
        >>> match_layers(named, ["act1", "fc2:input"], "run.pt")
        (['B of act1', "B of fc2's input"], {'act1': 'act1', 'fc2:input': 'fc2'})
    """
    keys = {}
    for key in named:
        if _normal(key) in keys:
            raise CreditAuditError(
                f"checkpoint {source}: 'Bs' keys {keys[_normal(key)]!r} and {key!r} name the "
                "same layer"
            )
        keys[_normal(key)] = key
    modules = [layer.partition(":")[0] for layer in layers]
    chosen: dict = {}
    missing = []
    for layer, module in zip(layers, modules, strict=True):
        if layer in keys:
            chosen[layer] = keys[layer]
        elif layer.endswith(":input") and module in keys and modules.count(module) == 1:
            chosen[layer] = keys[module]  # the module named bare: its input is the layer
        else:
            missing.append(layer)
    unused = [key for key in named if key not in chosen.values()]
    if unused:
        raise CreditAuditError(
            f"checkpoint {source}: 'Bs' key(s) {_listed(unused)} name no audited layer "
            f"(the layers: {_listed(list(layers))}); a matrix that no layer uses would be "
            "audited nowhere: name its layer in --layers, or remove it"
        )
    if missing:
        raise CreditAuditError(
            f"checkpoint {source}: no 'Bs' matrix for the layer(s) {_listed(missing)} (the "
            f"keys: {_listed(list(named))}); key each matrix by its layer's name as --layers "
            "gives it (NAME, or NAME:input)"
        )
    return [named[chosen[layer]] for layer in layers], chosen


def check_index_keys(keys: list | None, layers: list | None, source: str) -> None:
    """Refuse ``Bs`` keyed ``"0"``, ``"1"``, ... when the audited layers are modules of those
    names in another order (an ``nn.Sequential``'s): index and name would attach different
    matrices, and the file does not say which it meant."""
    if not keys or not layers:
        return
    for i, layer in enumerate(layers):
        for name in (layer, layer.partition(":")[0]):
            if name in keys and keys.index(name) != i:
                raise CreditAuditError(
                    f"checkpoint {source}: 'Bs' is keyed {_listed(keys)}, which read as layer "
                    f"indices give layer {i} ({layer!r}) the matrix '{i}', and read as module "
                    f"names the matrix {name!r}; save 'Bs' as a list in layer order, or key it "
                    "by the layers' full names (e.g. 'NAME:input')"
                )
