"""The audit's options: :class:`AuditOptions`, one field per row of the table
(:mod:`credit_audit.options.table`), and the run-level state beside them.

The plugin registers the rows as one pytest option group (with ini twins
``credit_audit_<dest>``), the ``credit_audit`` fixture accepts the same names as keyword
arguments, and the report header prints the rows marked ``deciding``. No default is written
anywhere else: a row that sets a checklist threshold (``--null-draws``) defaults to the
checklist's value. This package imports neither pytest nor torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.options.row import Option
from credit_audit.options.table import (
    _BY_DEST,
    DEFAULT_HTML,
    DEFAULT_JSON,
    DEMO_DATA,
    OPTIONS,
    option,
)
from credit_audit.trust import Origin

__all__ = [
    "DEFAULT_HTML",
    "DEFAULT_JSON",
    "DEMO_DATA",
    "OPTIONS",
    "AuditOptions",
    "Option",
    "option",
]


def _checklist_default(row: Option) -> Any:
    from credit_audit.checklist import default_thresholds

    pitfall_id, name = row.threshold
    return default_thresholds(pitfall_id).get(name)


def _default(dest: str) -> Any:
    return _BY_DEST[dest].default


class _Methods:
    """The behaviour of :class:`AuditOptions`; its fields come from :data:`OPTIONS`."""

    def __post_init__(self) -> None:
        if self.data is None and "demo" in self.ckpts:
            self.data = DEMO_DATA

    def with_values(
        self, where: str = "option", origin: Origin | None = None, **values: Any
    ) -> AuditOptions:
        """A copy with ``values`` parsed by their rows; errors name ``where`` and the option.
        ``origin``: who wrote the values (None: the user), kept in ``named_by``."""
        out = dataclasses.replace(
            self, thresholds=dict(self.thresholds), named_by=dict(self.named_by)
        )
        for name, raw in values.items():
            row = _BY_DEST.get(name)
            if row is None:
                known = ", ".join(o.dest for o in OPTIONS)
                raise CreditAuditError(f"{where} {name!r}: unknown option (known: {known})")
            if raw is None:
                continue
            try:
                value = row.parse(raw)
            except ValueError as exc:
                raise CreditAuditError(f"{where} {name!r}: {exc}") from None
            if row.threshold is not None:
                out.thresholds[row.threshold] = value
            else:
                setattr(out, name, value)
            if origin is not None:
                out.named_by[name] = origin
        return out

    def resolved_device(self) -> str:
        """``--device`` resolved (:func:`credit_audit.devices.resolve`): auto -> CUDA when
        available, else cpu; one GPU per pytest-xdist worker."""
        from credit_audit.devices import resolve

        return resolve(self.device)

    def deciding(self) -> dict:
        """The options that decide the numbers (report header, JSON provenance)."""
        out: dict[str, Any] = {}
        for row in OPTIONS:
            if not row.deciding:
                continue
            if row.threshold is not None:
                out[row.dest] = self.thresholds.get(row.threshold, _checklist_default(row))
                continue
            value = getattr(self, row.dest)
            if row.dest == "device":
                value = self.resolved_device()
            elif value is None and row.default_text is not None:
                value = row.default_text
            out[row.dest] = value
        out["thresholds"] = {f"{k[0]}.{k[1]}": v for k, v in sorted(self.thresholds.items())}
        return out

    def cache_key(self) -> str:
        """Options that change a checkpoint's numbers, as one string (shared computations)."""
        fields = {
            row.dest: getattr(self, row.dest)
            for row in OPTIONS
            if row.deciding and row.threshold is None
        }
        fields["device"] = self.resolved_device()
        fields["data_download"] = self.data_download
        fields["bs_over_stored"] = self.bs_over_stored
        fields["thresholds"] = sorted(
            (f"{k[0]}.{k[1]}", repr(v)) for k, v in self.thresholds.items()
        )
        return json.dumps(fields, sort_keys=True, default=repr)


# Run-level state beside the table's options: the checkpoints (--ckpt is not a row: it is
# repeatable), the threshold overrides, and what a claim or the trust decision adds.
_STATE = (
    ("thresholds", dict, field(default_factory=dict)),
    # a claim that says its Bs were reconstructed is taken at its word
    ("bs_over_stored", bool, field(default=False)),
    # who wrote each value that is not the default (credit_audit.trust): the user (command
    # line, ini file) or a file (a claim's field); decides whether a code name may be imported
    ("named_by", dict, field(default_factory=dict)),
    # the user's trust (credit_audit.trust.CodeTrust), fixed when their options are read, so
    # that a claim's copy still knows which code names were the user's
    ("code_trust", Any, field(default=None)),
)

#: Every setting of one audit: a field per row of :data:`OPTIONS` that is not a threshold
#: (declared there once, with its default), ``ckpts`` (from ``--ckpt``), ``thresholds``
#: (``(pitfall_id, name)`` -> override, from ini ``credit_audit_thresholds`` and rows such as
#: ``--null-draws``) and the state above.
AuditOptions = dataclasses.make_dataclass(
    "AuditOptions",
    [
        ("ckpts", list, field(default_factory=list)),
        *((row.dest, Any, field(default=row.default)) for row in OPTIONS if row.threshold is None),
        *_STATE,
    ],
    bases=(_Methods,),
)
AuditOptions.__module__ = __name__
AuditOptions.__doc__ = """Every setting of one audit; one field per row of :data:`OPTIONS` that is
not a threshold, plus ``ckpts``, ``thresholds``, ``bs_over_stored``, ``named_by`` and
``code_trust``."""
