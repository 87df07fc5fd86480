"""pytest-xdist's hooks, registered only when xdist is present (pytest-randomly's
``XdistHooks``): one GPU per worker, and every item of one checkpoint on one worker.

The scheduler: each checkpoint must be computed once whatever ``-n``, so its checks (and the
claims made on it) go to one worker. xdist's own ``loadgroup`` would do it with ``xdist_group``
marks, but under pytest 9 it no longer groups (it renames ``item._nodeid``, which pytest 9 does
not read), and xdist offers no public way to give a scope to a node id: the audit subclasses
``LoadScopeScheduling`` and overrides its ``_split_scope(nodeid)``, a private method. That is
why pyproject.toml pins pytest-xdist to the releases where the method holds (``>=3.5,<4``), and
why :func:`scheduler_fits` checks its signature before the audit relies on it (a test asserts
it on the installed xdist); where it does not fit, the run keeps xdist's own scheduling, and
the worst that happens is a checkpoint computed by two workers.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

__all__ = ["XdistHooks", "scheduler_fits"]


def scheduler_fits() -> bool:
    """Whether the installed xdist's ``LoadScopeScheduling`` has the ``_split_scope(nodeid)``
    the audit's scheduler overrides."""
    try:
        from xdist.scheduler import LoadScopeScheduling
    except ImportError:
        return False
    method = getattr(LoadScopeScheduling, "_split_scope", None)
    if method is None:
        return False
    return list(inspect.signature(method).parameters) == ["self", "nodeid"]


class XdistHooks:
    """The controller's xdist hooks for one audit run (``collect.AuditRun``)."""

    def __init__(self, run: Any):
        self.run = run

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Once per worker before it starts: one GPU of those visible here, in turn, so that a
        machine with G GPUs and -n G runs one worker on each (the worker hides the others
        before CUDA starts: :func:`credit_audit.devices.pin_gpu`)."""
        gpus = self._gpus
        if len(gpus) > 1:
            worker = str(node.workerinput.get("workerid", node.gateway.id))
            index = int(worker[2:]) if worker[2:].isdigit() else 0
            node.workerinput["credit_audit_gpu"] = gpus[index % len(gpus)]

    @functools.cached_property
    def _gpus(self) -> list:
        from credit_audit.devices import visible_gpus

        return visible_gpus(self.run.opts.device)

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """xdist's `load` (what -n gives), `loadscope`, `loadfile` and `loadgroup` become a
        scope scheduler whose scope is the checkpoint; `each`, `worksteal` and `no` stay what
        the user chose."""
        if config.getvalue("dist") not in ("load", "loadscope", "loadfile", "loadgroup"):
            return None
        if not scheduler_fits():
            return None
        from xdist.scheduler import LoadScopeScheduling

        groups = self.run.xdist_groups()

        class ByCheckpoint(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return groups.get(nodeid, nodeid)

        return ByCheckpoint(config, log)
