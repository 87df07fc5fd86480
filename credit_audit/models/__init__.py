"""Model adapters: how the audit reaches a network's hidden states.

An adapter wraps a model and offers

* ``hidden_states(x) -> (hs, logits)``: the hidden states ``h_0..h_L`` (any shape per sample,
  in the autograd graph) and the logits;
* ``forward_from(layer, h, x) -> logits``: run the network on from hidden state ``h_layer``;
  ``x`` is the input batch (repeated as ``h`` is), for adapters that re-run from the input;
* ``num_blocks``: how many feedback matrices a DFA-style rule attaches (layer ``l`` uses
  ``min(l, num_blocks - 1)``);
* ``needs_input``: whether ``forward_from`` re-runs from the input (then it gets ``x``);
* ``flat_input``: whether the model takes each sample flattened (the seeds' MLPs).

Cosines are taken over each sample's flattened state (or per token, ``--token-cosine``).

Adapter classes say whether they fit a model (``fits(model)``), einops-style; the registry asks
them in ``priority`` order. A new architecture is one module in this package that defines
``ADAPTER`` (or a conftest's ``pytest_credit_audit_register``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from credit_audit._errors import CreditAuditError

__all__ = [
    "ModelAdapter",
    "ModelSpec",
    "ResidualMLP",
    "build_model",
    "builtin_adapters",
    "common_prefixes",
    "fit_keys",
    "make_adapter",
]


def __getattr__(name: str) -> Any:
    # the reference model imports torch: only when asked for
    if name == "ResidualMLP":
        from credit_audit.models.reference_mlp import ResidualMLP

        return ResidualMLP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelAdapter(Protocol):
    """What the shared pass and the anchors need of a model."""

    num_blocks: int
    needs_input: bool
    flat_input: bool

    def hidden_states(self, x: Any) -> tuple[list, Any]: ...

    def forward_from(self, layer: int, h: Any, x: Any) -> Any: ...


@dataclass(frozen=True)
class ModelSpec:
    """Which class (or factory function) builds the model, with which keyword arguments."""

    cls: Any
    kwargs: dict = field(default_factory=dict)
    origin: str = "reference"  # "reference" (sizes inferred) or "user" (--model)

    @property
    def name(self) -> str:
        return f"{self.cls.__module__}:{self.cls.__qualname__}"


def builtin_adapters() -> list:
    """Adapter classes defined by this package's modules (``ADAPTER``), by priority."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "ADAPTER"):
            found.append(module.ADAPTER)
    return sorted(found, key=lambda a: a.priority)


def make_adapter(
    model: Any, adapters: list | None = None, name: str = "model", layers: list | None = None
) -> Any:
    """Wrap ``model`` in the first adapter that fits it, or, when ``layers`` names modules
    (``--layers``), in the first adapter that takes layer names."""
    candidates = sorted(
        adapters if adapters is not None else builtin_adapters(), key=lambda a: a.priority
    )
    if layers:
        for adapter in candidates:
            if getattr(adapter, "takes_layers", False):
                return adapter(model, layers)
        raise CreditAuditError(f"{name}: --layers given, but no adapter takes layer names")
    for adapter in candidates:
        if adapter.fits(model):
            return adapter(model)
    described = "; ".join(f"{a.__name__}: {a.describe}" for a in candidates)
    raise CreditAuditError(f"{name}: no adapter fits {type(model).__name__} ({described})")


def _construct(spec: ModelSpec) -> Any:
    """Call the class or function of ``spec``, refusing anything else (a claims file or an ini
    setting may name it: ``os:system`` must not run)."""
    from torch import nn

    target = spec.cls
    is_module_class = inspect.isclass(target) and issubclass(target, nn.Module)
    is_function = inspect.isfunction(target)
    if not (is_module_class or is_function):
        kind = "class" if inspect.isclass(target) else type(target).__name__
        raise CreditAuditError(
            f"model {spec.name}: is a {kind}, not an nn.Module class or a Python function "
            "returning an nn.Module; refused without calling it"
        )
    try:
        model = target(**spec.kwargs)
    except Exception as exc:
        raise CreditAuditError(
            f"model {spec.name} with kwargs {spec.kwargs}: construction failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise CreditAuditError(
            f"model {spec.name}: returned {type(model).__name__}, expected an nn.Module"
        )
    return model


def common_prefixes(keys: list) -> list[str]:
    """``"model."``, ``"model.net."``, ...: the dotted prefixes every key shares, shortest first."""
    parts = keys[0].split(".")[:-1]
    out = []
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i]) + "."
        if not all(k.startswith(prefix) for k in keys):
            break
        out.append(prefix)
    return out


def fit_keys(
    state_dict: Mapping[str, Any], expected: Mapping, set_aside: Mapping | None = None
) -> tuple[dict, dict]:
    """``(state_dict, notes)``: the weights as the model names them.

    * keys a layout took out of the weights (``set_aside``: the DRTP repo's hook matrices) go
      back in when the model has them;
    * a prefix that every key shares comes off (Lightning's ``model.``, DataParallel's
      ``module.``) only when every key then is one of the model's; ``notes`` records it.
    """
    weights = dict(state_dict)
    notes: dict = {}
    back = [k for k in (set_aside or {}) if k in expected]
    if back:
        weights.update({k: set_aside[k] for k in back})
        notes["loaded_back"] = back
    if weights and not all(k in expected for k in weights):
        for prefix in common_prefixes(list(weights)):
            if all(k[len(prefix) :] in expected for k in weights):
                weights = {k[len(prefix) :]: v for k, v in weights.items()}
                notes["key_prefix_stripped"] = prefix
                break
    return weights, notes


def build_model(
    spec: ModelSpec,
    state_dict: Mapping[str, Any],
    source: str,
    set_aside: Mapping | None = None,
    notes: dict | None = None,
) -> Any:
    """Construct the model of ``spec`` and load ``state_dict`` strictly.

    A mismatch names the first offending key and both shapes. Keys are first fitted to the
    model (:func:`fit_keys`); what that did is written into ``notes`` when given.
    """
    model = _construct(spec)
    expected = model.state_dict()
    state_dict, fitted = fit_keys(state_dict, expected, set_aside)
    if notes is not None:
        notes.update(fitted)
    for key, tensor in state_dict.items():
        if key not in expected:
            raise CreditAuditError(
                f"checkpoint {source}: key {key!r} is not a parameter of {spec.name} "
                f"(model keys start {sorted(expected)[:3]})"
            )
        if tuple(expected[key].shape) != tuple(tensor.shape):
            raise CreditAuditError(
                f"checkpoint {source}: key {key!r} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
        if expected[key].is_floating_point() and not tensor.is_floating_point():
            # load_state_dict would cast int64 / bool / complex silently into the float weights
            raise CreditAuditError(
                f"checkpoint {source}: key {key!r} is stored as "
                f"{str(tensor.dtype).replace('torch.', '')}, the model's weight is "
                f"{str(expected[key].dtype).replace('torch.', '')}: refusing a silent cast"
            )
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise CreditAuditError(
            f"checkpoint {source}: key {missing[0]!r} of {spec.name} is missing "
            f"({len(missing)} missing in all)"
        )
    model.load_state_dict(state_dict, strict=True)
    return model
