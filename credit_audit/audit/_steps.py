"""The memoised steps of one checkpoint's audit: each computed on first use and kept, and a
failure kept as well, as one CreditAuditError naming the checkpoint and the step (an exception
of torch's or of the user's model becomes one, with its type and first line, instead of a
traceback per check). No pytest here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from credit_audit._errors import CreditAuditError, first_line

__all__ = ["step"]

_STEPS = {
    "ckpt": "loading",
    "model": "building the model",
    "model_notes": "building the model",
    "layers_from_keys": "the layers its Bs keys name",
    "spec": "the model",
    "base_pass": "the forward/backward pass",
    "pass32": "the credit signal",
    "pass64": "the float64 pass",
    "feedback_pair": "the feedback matrices",
    "rule": "the rule",
    "fit": "the accuracy on the eval data",
    "loss": "the loss",
}


def step(memo: dict, key: str, compute: Callable[[], Any], source: str) -> Any:
    """``memo[key]``, computed by ``compute`` on first use; a failure is remembered there and
    raised again on every later ask."""
    if key not in memo:
        try:
            memo[key] = compute()
        except CreditAuditError as exc:
            memo[key] = exc
        except Exception as exc:  # noqa: BLE001 - anything a stranger's model raises
            what = _STEPS.get(key, key.replace("result:", "").replace("verdict:", ""))
            message = f"{source}: {what} failed: {type(exc).__name__}: "
            error = CreditAuditError((message + first_line(exc, 500))[:500])
            error.__cause__ = exc
            memo[key] = error
    value = memo[key]
    if isinstance(value, CreditAuditError):
        raise value
    return value
