"""Adapter for any ``nn.Module``: the hidden states are the outputs (or inputs) of the modules
that ``--layers`` names, taken with forward hooks.

``--layers=features.3,blocks.0.attn,head:input`` audits the output of ``features.3`` and of
``blocks.0.attn`` and the input of ``head`` (``NAME:input``; some libraries deliver the signal
there). The captured tensors stay in the autograd graph, so ``g_l = dLoss/dh_l`` comes from one
backward pass, whatever their shape: (N, d), (N, C, H, W), (N, T, D). ``forward_from`` re-runs
the network from the input with the module's output (or input) replaced by the given state.
The logits are the model's output (the first element when it returns a tuple).

A captured tensor that the rest of the forward pass changes in place (``ReLU(inplace=True)``
after a hooked Linear, as torchvision's VGG and AlexNet have) is refused: the hook's tensor
would then hold the later state, and its gradient that state's. The version counter that
autograd keeps on every tensor says whether it changed after the hook; a second, traced pass
names the module that changed it.
"""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["ADAPTER", "HooksAdapter", "parse_layers"]

_FACTORY_FIX = (
    "give --model a factory function (package.module:function) or a subclass whose forward(x) "
    "calls it with what the rest needs in its BP mode (the DRTP repo's forward(x, labels): "
    "forward(x, None)); the state_dict is the same"
)


def parse_layers(spec: Any) -> list[str]:
    """``"a,b:input"`` or a list -> ``["a", "b:input"]``; errors name the option."""
    from credit_audit._parsers import module_names

    try:
        return module_names(spec)
    except ValueError as exc:
        raise CreditAuditError(f"--layers: {exc}") from None


def _first_tensor(value: Any, what: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise CreditAuditError(
        f"{what} is a {type(value).__name__}, expected a tensor (or a tuple "
        "whose first element is one)"
    )


def _short(module: Any) -> str:
    """``ReLU(inplace=True)``: a module's class and its one-line extra repr."""
    extra = module.extra_repr() if hasattr(module, "extra_repr") else ""
    return f"{type(module).__name__}({extra})" if "\n" not in extra else type(module).__name__


def _check_forward_takes_x(model: Any) -> None:
    """The audit calls ``model(x)``: a forward that needs more is refused before it runs,
    with the fix (a bare TypeError from deep inside the pass named nothing)."""
    import inspect

    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # a builtin or C forward: nothing to check
        return
    try:
        signature.bind(object())
    except TypeError:
        raise CreditAuditError(
            f"--model: {type(model).__name__}.forward{signature} needs more than the input "
            f"batch, and the audit calls model(x); {_FACTORY_FIX}"
        ) from None


def _replace_first(value: Any, h: Any) -> Any:
    if isinstance(value, tuple | list) and not hasattr(value, "shape"):
        return type(value)([h, *value[1:]])
    return h


class HooksAdapter:
    """Hidden states at named modules, through forward hooks (chosen by ``--layers``)."""

    priority = 0
    describe = "--layers=NAME[,NAME...] names the module outputs to audit"
    flat_input = False  # the model gets the samples as the data holds them
    needs_input = True
    takes_layers = True

    def __init__(self, model: Any, layers: list[str]):
        modules = dict(model.named_modules())
        self.model = model
        self.targets = []
        for spec in parse_layers(layers):
            name, _, where = spec.partition(":")
            if name not in modules:
                known = ", ".join(n for n in list(modules)[1:13] if n)
                raise CreditAuditError(
                    f"--layers: {type(model).__name__} has no module "
                    f"{name!r} (its modules start: {known}, ...)"
                )
            self.targets.append((name, modules[name], where or "output"))
        self.num_blocks = len(self.targets)
        self.names = [f"{n}:{w}" if w == "input" else n for n, _, w in self.targets]
        _check_forward_takes_x(model)

    @classmethod
    def fits(cls, model: Any) -> bool:
        return False  # only on request: --layers names the modules

    def _run(self, x: Any, hooks: list) -> Any:
        handles = []
        try:
            for module, kind, fn in hooks:
                if kind == "output":
                    handles.append(module.register_forward_hook(fn))
                else:
                    handles.append(module.register_forward_pre_hook(fn))
            return _first_tensor(self.model(x), f"{type(self.model).__name__}'s output")
        finally:
            for handle in handles:
                handle.remove()

    def hidden_states(self, x: Any) -> tuple[list, Any]:
        if x.is_floating_point() and not x.requires_grad:
            x = x.detach().requires_grad_(True)  # a module's input may be the input itself
        captured, hooks = self._capturing()
        logits = self._run(x, hooks)
        for i, seen in captured.items():
            if len(seen) != 1:
                raise CreditAuditError(
                    f"--layers: module {self.names[i]!r} ran {len(seen)} times in one forward "
                    "pass; name a module that runs exactly once"
                )
        changed = [i for i, seen in captured.items() if seen[0][0]._version != seen[0][1]]
        if changed:
            raise CreditAuditError(self._changed_in_place(x, changed[0]))
        return [captured[i][0][0] for i in range(len(self.targets))], logits

    def _capturing(self) -> tuple[dict, list]:
        """Hooks that keep each target's tensor with its version counter at capture time."""
        captured: dict[int, list] = {i: [] for i in range(len(self.targets))}

        def keep(i: int, t: Any) -> None:
            captured[i].append((t, t._version))

        def capture(i: int, kind: str) -> Any:
            if kind == "output":
                return lambda m, args, out: keep(
                    i, _first_tensor(out, f"the output of {self.names[i]!r}")
                )
            return lambda m, args: keep(i, _first_tensor(args, f"the input of {self.names[i]!r}"))

        hooks = [(m, kind, capture(i, kind)) for i, (_, m, kind) in enumerate(self.targets)]
        return captured, hooks

    def _changed_in_place(self, x: Any, i: int) -> str:
        """The refusal of a target changed in place after its hook, naming what changed it.

        A second pass traces every module's start and end: the first event at which the
        tensor's version differs says where it changed (inside a module that ran alone in
        between, or in the forward code between two modules), and the first module that then
        takes the same tensor as its input is the one whose ``NAME:input`` holds that state."""
        import torch

        captured, hooks = self._capturing()
        events: list = []  # (name, "start"|"end", module)
        found: dict = {}

        def check(name: str, when: str, module: Any, args: Any = ()) -> None:
            seen = captured[i]
            if not seen:
                return
            t, version = seen[0]
            if "where" not in found and t._version != version:
                found["where"] = (events[-1] if events else None, (name, when, module))
            if "where" in found and "reader" not in found and when == "start":
                if any(isinstance(a, torch.Tensor) and a.data_ptr() == t.data_ptr() for a in args):
                    found["reader"] = name
            events.append((name, when, module))

        named = [(n, m) for n, m in self.model.named_modules() if n]
        for name, module in named:
            hooks.append((module, "input", lambda m, args, n=name: check(n, "start", m, args)))
            hooks.append((module, "output", lambda m, args, out, n=name: check(n, "end", m)))
        with torch.no_grad():
            self._run(x, hooks)
        target = self.names[i]
        before, at = found.get("where", (None, None))
        if at is not None and before is not None and before[0] == at[0] and at[1] == "end":
            by = f"by module {at[0]!r} ({_short(at[2])})"
        elif at is not None:
            after = (
                f"after {before[0]!r} {'ran' if before[1] == 'end' else 'started'}"
                if before
                else "at the start"
            )
            until = f"{at[0]!r} {'finished' if at[1] == 'end' else 'started'}"
            by = f"by an in-place operation in the forward code {after} and before {until}"
        else:
            by = "after the last module ran (an in-place operation at the end of the forward code)"
        reader = found.get("reader")
        later = (
            f"name the input of the module that reads it next, {reader + ':input'!r}, to audit "
            "the state after the change"
            if reader
            else "name the input of the module that reads it next (NAME:input) to audit the "
            "state after the change"
        )
        what = "input" if target.endswith(":input") else "output"
        module = at[2] if at is not None and by.startswith("by module") else None
        keep = (
            "Build the model with inplace=False (the state_dict is the same)"
            if module is not None and hasattr(module, "inplace")
            else "Make that step out of place (h = h.relu(), not h.relu_() or h += ...)"
        )
        return (
            f"--layers: the {what} of {target!r} is changed in place after its hook took it, "
            f"{by}: the audit would measure that later state, with its gradient, as "
            f"{target!r}. {keep} to audit this {what}, or {later}"
        )

    def forward_from(self, layer: int, h: Any, x: Any) -> Any:
        _, module, kind = self.targets[layer]
        if kind == "output":

            def swap(m: Any, args: Any, out: Any) -> Any:
                return _replace_first(out, h)
        else:

            def swap(m: Any, args: Any) -> Any:
                return (h, *args[1:])

        return self._run(x, [(module, kind, swap)])


ADAPTER = HooksAdapter
