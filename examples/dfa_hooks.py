"""A small conv net and a small transformer trained with DFA through hooks, then audited.

DFA here is delivered the way TinyDFA's light variant does it: a tensor hook on each audited
module output replaces the gradient arriving there by ``e · B_lᵀ`` (reshaped like the output),
so each segment of the network learns from the projected error alone; the head learns from the
true gradient. Train and save (scikit-learn's digits, a few seconds on a CPU)::

    python examples/dfa_hooks.py conv results/conv_dfa.pt
    python examples/dfa_hooks.py transformer results/transformer_dfa.pt

Audit (the repository root on PYTHONPATH, so that ``examples.dfa_hooks`` imports)::

    pytest --ckpt=results/conv_dfa.pt --model=examples.dfa_hooks:SmallConv \\
           --layers=conv1,conv2 --data=examples.dfa_hooks:digit_images
    pytest --ckpt=results/transformer_dfa.pt --model=examples.dfa_hooks:SmallTransformer \\
           --layers=blocks.0,blocks.1 --data=examples.dfa_hooks:digit_tokens

The checkpoints store their Bs keyed by the audited modules' names (one (d_l, C) matrix each,
``{"conv1": B1, "conv2": B2}``: the natural save for DFA through hooks) and name the layers in
their config, so ``--layers`` may also be left out.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

C = 10
LAYERS = {"conv": ["conv1", "conv2"], "transformer": ["blocks.0", "blocks.1"]}


class SmallConv(nn.Module):
    """Digits as 1×8×8 images: two 3×3 convolutions and a linear head."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Linear(channels * 64, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        return self.head(h.flatten(1))


class SmallTransformer(nn.Module):
    """Digits as 8 tokens of 8 pixels: two attention blocks, mean-pooled head."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True) for _ in range(2)
        )
        self.head = nn.Linear(d, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(1))


MODELS = {"conv": (SmallConv, (1, 8, 8)), "transformer": (SmallTransformer, (8, 8))}


def _digits(shape: tuple, train: bool) -> tuple:
    from credit_audit.loading import digits_split

    x_tr, y_tr, x_te, y_te = digits_split()
    x, y = (x_tr, y_tr) if train else (x_te, y_te)
    return x.reshape(len(x), *shape), y


def digit_images() -> tuple:
    """The test split as 1×8×8 images (``--data=examples.dfa_hooks:digit_images``)."""
    return _digits(MODELS["conv"][1], train=False)


def digit_tokens() -> tuple:
    """The test split as 8 tokens of 8 pixels (``--data=examples.dfa_hooks:digit_tokens``)."""
    return _digits(MODELS["transformer"][1], train=False)


def train(kind: str, epochs: int = 30, seed: int = 0) -> tuple:
    """Train ``kind`` with DFA through hooks; returns ``(model, Bs, layers, test accuracy)``."""
    cls, shape = MODELS[kind]
    torch.manual_seed(seed)
    model = cls()
    layers = LAYERS[kind]
    modules = dict(model.named_modules())
    x, y = _digits(shape, train=True)
    with torch.no_grad():
        widths = [out[0].numel() for out in _outputs(model, layers, x[:1])]
    bs = [torch.randn(w, C) / math.sqrt(C) for w in widths]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            xb, yb = x[idx], y[idx]
            state: dict = {}
            handles = [
                modules[name].register_forward_hook(
                    lambda m, a, o, k=k, s=state: s.__setitem__(k, o)
                )
                for k, name in enumerate(layers)
            ]
            logits = model(xb)
            for h in handles:
                h.remove()
            e = (logits.softmax(-1) - F.one_hot(yb, C).float()).detach()
            for k, out in state.items():
                signal = (e @ bs[k].T).reshape(out.shape) / len(yb)
                out.register_hook(lambda grad, s=signal: s)  # DFA: the projected error
            opt.zero_grad()
            F.cross_entropy(logits, yb).backward()
            opt.step()
    xt, yt = _digits(shape, train=False)
    with torch.no_grad():
        acc = float((model(xt).argmax(-1) == yt).float().mean())
    return model, bs, layers, acc


def _outputs(model: nn.Module, layers: list, x: torch.Tensor) -> list:
    modules = dict(model.named_modules())
    seen = []
    handles = [modules[n].register_forward_hook(lambda m, a, o: seen.append(o)) for n in layers]
    model(x)
    for h in handles:
        h.remove()
    return seen


def save(kind: str, path: str | Path, epochs: int = 30) -> Path:
    """Train and save ``{"state_dict", "Bs": {module name: B}, "config", "test_acc"}``."""
    model, bs, layers, acc = train(kind, epochs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"rule": "dfa", "layers": layers, "model": kind, "epochs": epochs}
    keyed = dict(zip(layers, bs, strict=True))
    torch.save(
        {"state_dict": model.state_dict(), "Bs": keyed, "config": config, "test_acc": acc}, path
    )
    return path


if __name__ == "__main__":
    out = save(sys.argv[1], sys.argv[2])
    print(f"saved {out} (test accuracy {torch.load(out, weights_only=True)['test_acc']:.3f})")
