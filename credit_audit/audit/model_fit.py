"""Is the audited model the one that was trained, on the data it was trained for?

The accuracy and the mean loss of the checkpoint on the eval data, beside what the checkpoint
says it scored (``test_acc``). A network audited on inputs it never saw (another
standardisation, another split, the wrong dataset) still gives a Γ, just not the lab's: a
near-chance accuracy, or one well below the stored score, is the visible sign, so the audit
says so (a WARN in the checkpoint's sentence, the terminal and the JSON).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DROP", "NEAR_CHANCE", "eval_fit", "stored_accuracy"]

#: near chance: below chance + this fraction of the way from chance to a perfect score
#: (32.5% for 10 classes, 62.5% for 2): a network that learned its task is well above it
NEAR_CHANCE = 0.25
#: a drop of more than this (5 accuracy points) below the checkpoint's stored test_acc
MAX_DROP = 0.05
_CAUSE = "the eval data or its preprocessing is probably not the training's"


def stored_accuracy(meta: dict) -> float | None:
    """The checkpoint's stored ``test_acc`` as a fraction (a value above 1 is read as a
    percentage), or None when there is none or it is not a number in [0, 100].

    Example:
        >>> stored_accuracy({"test_acc": 97.5}), stored_accuracy({"test_acc": 0.5})
        (0.975, 0.5)
        >>> stored_accuracy({}), stored_accuracy({"test_acc": "n/a"})
        (None, None)
    """
    value = meta.get("test_acc")
    try:
        acc = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    if not 0 <= acc <= 100:
        return None
    return acc / 100 if acc > 1 else acc


def eval_fit(logits: Any, y: Any, losses: Any, loss_name: str, stored: float | None) -> dict:
    """Accuracy (argmax of the outputs against the labels), mean per-sample loss, the chance
    level, the stored score, and the warning when the model does not do its job here.

    Args:
        logits: (N, C) outputs of the audited pass.
        y: (N,) labels.
        losses: (N,) per-sample losses of the loss the gradients come from, each as torch's
            mean reduction weighs it (so that their mean is the lab's printed test loss).
        loss_name: that loss, as the report names it.
        stored: the checkpoint's stored test accuracy as a fraction, or None.

    Example:
        >>> import torch
        >>> fit = eval_fit(torch.eye(4), torch.tensor([0, 1, 2, 0]), torch.zeros(4), "ce", 0.9)
        >>> fit["accuracy"], fit["chance"]
        (0.75, 0.25)
        >>> fit["warning"].split(":")[0]
        "eval accuracy 75.0% is 15.0 points below the checkpoint's stored test_acc 90.0%"
    """
    n, classes = int(logits.shape[0]), int(logits.shape[1])
    accuracy = float((logits.argmax(1) == y).double().mean().item())
    chance = 1.0 / classes
    warning = None
    if accuracy < chance + NEAR_CHANCE * (1 - chance):
        warning = (
            f"eval accuracy {accuracy:.1%} is near chance ({chance:.1%} for {classes} "
            f"classes): {_CAUSE}"
        )
    elif stored is not None and accuracy < stored - MAX_DROP:
        warning = (
            f"eval accuracy {accuracy:.1%} is {100 * (stored - accuracy):.1f} points below the "
            f"checkpoint's stored test_acc {stored:.1%}: {_CAUSE}"
        )
    return {
        "accuracy": accuracy,
        "loss": float(losses.double().mean().item()),
        "loss_name": loss_name,
        "n": n,
        "classes": classes,
        "chance": chance,
        "stored_test_acc": stored,
        "warning": warning,
    }
