"""Importing a user's ``package.module:Name`` (models, rules, data, metrics, losses).

A research repository's own modules (``--model=mymodels:Net`` with ``mymodels.py`` at the
repository's root) are not importable under a plain ``pytest`` (pytest puts no folder on
``sys.path`` unless a conftest or its ``pythonpath`` ini says so; ``python -m pytest`` adds the
current folder). When such a module is not found, the folders the plugin names (pytest's rootdir
and the folder pytest runs in, :func:`set_search_folders`) are tried as pytest's own
``pythonpath`` ini would: the folder that holds the module goes to the front of ``sys.path``,
and :func:`added_folders` records it for the report.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["added_folders", "import_object", "require_defined_in", "set_search_folders"]

_SEARCH: list[Path] = []
_ADDED: dict[str, list[str]] = {}  # folder -> the targets it was added for
# a target a file named and the user trusts by its module: it must be that module's own code
_DEFINED_IN: dict[str, str] = {}


def require_defined_in(target: str, module: str) -> None:
    """When ``target`` is imported, accept only a class or function defined in ``module``
    (or its submodules): a file's name trusted by its module (``--trust-code``) must not reach
    other code through it (``mylab:popen`` where mylab did ``from os import popen``)."""
    _DEFINED_IN[target] = module


def set_search_folders(folders: list) -> None:
    """Where a module that is not importable may be looked for (the plugin: pytest's rootdir,
    then the invocation folder)."""
    _SEARCH[:] = []
    for folder in folders:
        path = Path(folder).resolve()
        if path not in _SEARCH:
            _SEARCH.append(path)


def added_folders() -> list[dict]:
    """The folders put on ``sys.path`` to import a target, each with the targets it served."""
    return [{"folder": f, "for": list(t)} for f, t in _ADDED.items()]


def _on_sys_path(folder: Path) -> bool:
    return any(Path(p or ".").resolve() == folder for p in sys.path)


def _import_from_search_folders(module_name: str, target: str) -> Any:
    """Import ``module_name`` from the first search folder that holds its top-level package;
    None when none does."""
    top = module_name.partition(".")[0]
    for folder in _SEARCH:
        if _on_sys_path(folder):
            continue
        if importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is None:
            continue
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
        _ADDED.setdefault(str(folder), []).append(target)
        return importlib.import_module(module_name)
    return None


def import_object(target: str, what: str = "--model") -> Any:
    """Import ``package.module:Name`` and return the object; errors name the target."""
    if not isinstance(target, str) or ":" not in target:
        raise CreditAuditError(f"{what}={target!r}: expected 'package.module:Name'")
    module_name, _, attr = target.partition(":")
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # the module itself (not something it imports) is missing: try pytest's folders
            missing = exc.name or ""
            if not (module_name == missing or module_name.startswith(missing + ".")):
                raise
            module = _import_from_search_folders(module_name, target)
            if module is None:
                tried = ", ".join(str(f) for f in _SEARCH) or "none"
                raise CreditAuditError(
                    f"{what}={target!r}: cannot import module {module_name!r}: no module named "
                    f"{missing!r} on sys.path, nor in pytest's rootdir or the folder pytest "
                    f"runs in ({tried}); install it, or run pytest from the folder that holds it"
                ) from exc
    except CreditAuditError:
        raise
    except Exception as exc:  # any import-time failure of the user's module
        raise CreditAuditError(
            f"{what}={target!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CreditAuditError(f"{what}={target!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    owner = _DEFINED_IN.get(target)
    if owner is not None:
        import inspect

        code = inspect.isclass(obj) or inspect.isfunction(obj)
        defined = getattr(obj, "__module__", None) if code else None
        if not (isinstance(defined, str) and (defined == owner or defined.startswith(owner + "."))):
            found = f"defined in {defined!r}" if defined else "not a class or function"
            raise CreditAuditError(
                f"{what}={target!r}: named by a file and trusted as module {owner!r}'s code, "
                f"but it is {found}; a file may name only classes and functions defined in the "
                "modules you trust"
            )
    return obj
