"""Who may name code: trust follows who wrote the name.

The command line and the ini file are the user's own words: a ``module:function`` there is
imported (``--model``, ``--rule``, ``--loss``, ``--data``, ``--audit-metric``). A claims file and a
checkpoint's config (a ``.pt`` file's ``config``, a safetensors file's metadata ``config``) are
a stranger's data: they may name built-in rules, losses, layouts and datasets, and file paths;
a ``module:function`` in them is refused before anything is imported, unless the user trusts
that module (``--trust-code=MODULE[,MODULE...]``, ini ``credit_audit_trusted_modules``) or wrote
the same name in their own options. What was imported, and on whose word, goes into each
checkpoint's provenance (:func:`code_provenance`). No pytest, no torch here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = [
    "CLAIM_CODE_FIELDS",
    "CONFIG_CODE_FIELDS",
    "CodeTrust",
    "Origin",
    "code_provenance",
    "code_target",
    "config_refusals",
    "modules_to_trust",
    "trusted_modules",
]

#: the claims fields that could name code (``model`` is always ``module:Class``)
CLAIM_CODE_FIELDS = ("model", "rule", "loss", "data")
#: the checkpoint config's fields that the audit acts on and that could name code
CONFIG_CODE_FIELDS = ("rule", "loss")
#: the options whose value may be ``module:function`` (their flags: the options table's)
_CODE_OPTIONS = ("model", "rule", "loss", "data", "metric")
_BUILTIN_DATA = ("digits", "cifar10")


@dataclass(frozen=True)
class Origin:
    """Who wrote an option's value: ``text`` for the report, ``user`` when it is the user's
    own words (command line, ini file, the fixture's arguments)."""

    text: str
    user: bool = True


USER = Origin("your options")


def code_target(field: str, value: Any) -> str | None:
    """The ``module:name`` that ``value`` would import as ``field``, or None when it names a
    built-in (a rule, loss or dataset) or a file: the dispatch the loaders use."""
    if not isinstance(value, str) or ":" not in value:
        return None
    if field == "data" and (value in _BUILTIN_DATA or value.endswith((".pt", ".pth"))):
        return None
    return value


def trusted_modules(value: Any) -> tuple[str, ...]:
    """``"a, b.c"`` (commas or whitespace) or a list -> ``("a", "b.c")`` (``--trust-code``)."""
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value or [])
    names = tuple(str(p).strip() for p in parts if str(p).strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"{name!r} is not a module name (expected e.g. mylab.models)")
    if not names:
        raise ValueError(f"expected module names separated by commas, got {value!r}")
    return names


@dataclass(frozen=True)
class CodeTrust:
    """The modules the user trusts (``--trust-code``) and the code names they wrote."""

    modules: tuple[str, ...] = ()
    own: frozenset = frozenset()  # the targets of the user's own options

    @classmethod
    def of(cls, opts: Any) -> CodeTrust:
        """The trust ``opts`` carries: its allow-list and the names its user wrote (fixed
        as ``opts.code_trust`` when the user's options are read)."""
        if getattr(opts, "code_trust", None) is not None:
            # the allow-list is only ever the user's (command line, ini, the fixture's own
            # arguments: a claim cannot set it); the names they wrote are fixed with it
            return cls(tuple(getattr(opts, "trusted_modules", None) or ()), opts.code_trust.own)
        named_by = getattr(opts, "named_by", {}) or {}
        own = {
            target
            for field in _CODE_OPTIONS
            if named_by.get(field, USER).user
            and (target := code_target(field, getattr(opts, field, None)))
        }
        return cls(tuple(getattr(opts, "trusted_modules", None) or ()), frozenset(own))

    def reason(self, target: str) -> str | None:
        """Why ``target`` may be imported though a file named it, or None: it may not."""
        if target in self.own:
            return "you named it in your own options"
        module = target.partition(":")[0]
        for trusted in self.modules:
            if module == trusted or module.startswith(trusted + "."):
                return f"--trust-code={trusted}"
        return None

    def check(self, field: str, value: Any, where: str, kind: str) -> None:
        """Refuse ``value`` (``field`` of a file of ``kind``, described by ``where``) when it
        names code the user does not trust; nothing is imported here. Code trusted by its
        module alone must be a top-level class or function of that module: what it reaches
        through other names (``mylab:os.system``, an imported ``popen``) is not the module's
        own code, and the import refuses it (:func:`credit_audit._importing.import_object`)."""
        target = code_target(field, value)
        reason = None if target is None else self.reason(target)
        if target is None or target in self.own:
            return
        module, _, name = target.partition(":")
        if reason is not None:
            if not name.isidentifier() or name.startswith("_"):
                raise CreditAuditError(
                    f"{where} is {value!r}: a file may name only a public top-level class or "
                    f"function of a module you trust ({module}:NAME), not {name!r}"
                )
            from credit_audit._importing import require_defined_in

            require_defined_in(target, module)
            return
        if kind == "claims":
            author, may = "the claims file", "a claims file may name only built-in rules, "
            may += "losses and datasets, and files"
        else:
            author, may = "the file", "a checkpoint's config may name only built-in rules, "
            may += "losses and layouts"
        raise CreditAuditError(
            f"{where} is {value!r}, code named by {author}, and nothing a file names is "
            f"imported: {may}. If you trust module {module!r}, allow it with "
            f"--trust-code={module} (ini credit_audit_trusted_modules), or name the code "
            f"yourself: {_flag(field)}={target} on the command line, or "
            f"credit_audit_{field} in the ini file"
        )


def modules_to_trust(opts: Any) -> list[str]:
    """The modules whose code ``opts`` runs (its own ``module:function`` names and its
    ``--trust-code``): what ``--claims`` on a claims file written from the run must trust."""
    out = list(getattr(opts, "trusted_modules", None) or ())
    for field in ("model", "rule", "loss", "data"):
        target = code_target(field, getattr(opts, field, None))
        if target is not None and target.partition(":")[0] not in out:
            out.append(target.partition(":")[0])
    return out


def _flag(field: str) -> str:
    from credit_audit.options import option  # the table imports this module: not at its top

    return option(field).flag


def config_refusals(config: Any, opts: Any, path: Any) -> list[str]:
    """Why a checkpoint's ``config`` cannot be used under ``opts``: each field it names code
    in that the options do not override and the user does not trust."""
    if not isinstance(config, dict):
        return []
    trust, problems = CodeTrust.of(opts), []
    for field in CONFIG_CODE_FIELDS:
        if getattr(opts, field, None) is not None or field not in config:
            continue  # the options decide: the file's name is never read
        if not isinstance(config[field], str):
            problems.append(
                f"checkpoint {path}: config '{field}' is {config[field]!r}, expected a name "
                f"(a string; or pass --{field})"
            )
            continue
        try:
            trust.check(field, config[field], f"checkpoint {path}: config '{field}'", "config")
        except CreditAuditError as exc:
            problems.append(str(exc))
    return problems


def code_provenance(fields: dict, opts: Any, config_origin: str) -> list[dict]:
    """What a checkpoint's audit imported, and on whose word: one entry per field whose value
    ``fields[field]`` names code (``model``, ``rule``, ``loss``, ``data``); a value the options
    did not set came from the checkpoint's config (``config_origin``)."""
    trust, named_by, out = CodeTrust.of(opts), getattr(opts, "named_by", {}) or {}, []
    for field, value in fields.items():
        target = code_target(field, value)
        if target is None:
            continue
        if getattr(opts, field, None) == value:
            origin = named_by.get(field, USER)
        else:
            origin = Origin(f"{config_origin}, config '{field}'", user=False)
        module = sys.modules.get(target.partition(":")[0])
        out.append(
            {
                "field": field,
                "target": target,
                "named_by": origin.text,
                "trusted_by": "your own words" if origin.user else trust.reason(target),
                "module_file": getattr(module, "__file__", None),
            }
        )
    return out
