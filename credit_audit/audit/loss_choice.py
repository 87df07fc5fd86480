"""Which loss and gradient batch a checkpoint is audited with: ``--loss``,
``--loss-reduction`` and ``--grad-batch`` when given, else the checkpoint config's (built-in
losses, or code the user trusts: :mod:`credit_audit.trust`), else the research scripts' mean
cross-entropy over all N samples at once; a layout whose library trains with several losses
and does not record which is refused until the option says it. No pytest here."""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.losses import BUILTIN_LOSSES, REDUCTIONS, Loss, resolve_loss
from credit_audit.trust import CodeTrust, code_target

__all__ = ["grad_batch_for", "loss_for"]


def _config_value(ckpt: Any, key: str) -> Any:
    return (getattr(ckpt, "hints", None) or {}).get(key)


def loss_for(ckpt: Any, opts: Any) -> Loss:
    """``--loss``/``--loss-reduction`` when given, else the checkpoint config's ``loss`` /
    ``loss_reduction`` (built-in losses, or code the user trusts), else
    mean cross-entropy."""
    source = f"checkpoint {ckpt.ref.path}"
    name, origin = opts.loss, "--loss"
    choices = _config_value(ckpt, "loss_choices")
    if name is None and _config_value(ckpt, "loss") is None and choices:
        library = _config_value(ckpt, "library") or "its layout"
        raise CreditAuditError(
            f"{source}: the file does not say which loss trained it ({library} trains with "
            f"{', '.join(choices)}), and g_l is that loss's gradient; pass "
            f"--loss={'|'.join(choices)} (the DRTP repo's default is bce, on a sigmoid output: "
            'build the model with output_act="none" for --loss=bce)'
        )
    if name is None and _config_value(ckpt, "loss") is not None:
        name, origin = _config_value(ckpt, "loss"), f"the config of {ckpt.ref.path}"
        # code the user trusts (--trust-code); any other was refused as the file was loaded
        CodeTrust.of(opts).check("loss", name, f"{source}: config 'loss'", "config")
        if code_target("loss", name) is None and name not in BUILTIN_LOSSES:
            raise CreditAuditError(
                f"{source}: config 'loss' is {name!r}, expected one of "
                f"{', '.join(BUILTIN_LOSSES)} (or pass --loss to state the training loss)"
            )
    reduction = opts.loss_reduction
    if reduction is None and _config_value(ckpt, "loss_reduction") is not None:
        reduction = _config_value(ckpt, "loss_reduction")
        if reduction not in REDUCTIONS:
            raise CreditAuditError(
                f"{source}: config 'loss_reduction' is {reduction!r}, expected one of "
                f"{', '.join(REDUCTIONS)} (or pass --loss-reduction)"
            )
    return resolve_loss(name, reduction, origin)


def grad_batch_for(ckpt: Any, opts: Any) -> int | None:
    """``--grad-batch`` when given, else the checkpoint config's ``grad_batch``, else None
    (one batch of all N samples)."""
    if opts.grad_batch is not None:
        return int(opts.grad_batch)
    value = _config_value(ckpt, "grad_batch")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CreditAuditError(
            f"checkpoint {ckpt.ref.path}: config 'grad_batch' is {value!r}, expected a positive "
            "integer (samples per gradient batch; or pass --grad-batch)"
        )
    return value
