"""Helpers the tests share: small checkpoints, their Bs, audits of a file."""

import math
from pathlib import Path

import torch

from credit_audit.audit import CheckpointAudit
from credit_audit.loading import CheckpointRef
from credit_audit.models import ResidualMLP
from credit_audit.options import AuditOptions
from credit_audit.registry import default_registry

#: the registered pitfalls' ids, in audit order: tests count checks by these, never by six
PITFALL_IDS = tuple(default_registry().pitfalls)
D_IN, D, C, L = 64, 16, 10, 3


def small_model(seed=0):
    torch.manual_seed(seed)
    return ResidualMLP(D_IN, D, C, L)


def bs_list(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(D, C, generator=gen) / math.sqrt(C) for _ in range(L)]


def ref(path, **kw):
    return CheckpointRef(id=Path(path).stem, path=Path(path), **kw)


def audit(path, data, **opts):
    """The checkpoint's audit with its shared pass computed (bad input raises here)."""
    a = CheckpointAudit(
        ref(path), AuditOptions(device="cpu", **opts), lambda: data, default_registry()
    )
    assert a.pass32 is not None
    return a


def audit_session(opts, cwd=None, cache_dir=None):
    """A quiet :class:`AuditSession` over ``opts`` and the built-in registry, in the folder
    ``cwd`` (default: the current one), with the reference checkpoints cached in
    ``cache_dir`` (default: the factory's)."""
    from credit_audit.audit import AuditSession

    cwd = Path(cwd) if cwd is not None else Path.cwd()
    return AuditSession(opts, cwd, default_registry(), lambda message: None, cache_dir)


def session_audit(path, base=None, cwd=None, **options):
    """The audit of ``path`` as ``credit_audit.checkpoint(path, **options)`` makes it, in a
    session whose own options are ``base`` over the CPU (the run's, which a checkpoint's
    options cannot unset); ``cwd`` the session's folder."""
    session = audit_session(AuditOptions(device="cpu", **(base or {})), cwd)
    return session.checkpoint(path, **options)


def write(tmp_path, name, obj):
    p = tmp_path / name
    torch.save(obj, p)
    return p


def save_small(path, seed=0):
    """A small checkpoint with its Bs stored (the model and Bs of ``seed``); returns the path."""
    torch.save({"state_dict": small_model(seed).state_dict(), "Bs": bs_list(seed)}, path)
    return path


#: the options of a quick audit of small checkpoints on digits, on the CPU
SMALL_AUDIT = (
    "--data=digits",
    "--n-eval=40",
    "--null-draws=50",
    "--device=cpu",
    "-p",
    "no:cacheprovider",
)
