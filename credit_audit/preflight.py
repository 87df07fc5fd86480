"""What the plugin checks before an audit runs, every problem at once (exit 4): the paths, the
data setting, the user's code names, the report paths, and the code that the files' configs
name (:mod:`credit_audit.trust`). No pytest here: the plugin turns the problems into a usage
error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["code_in_configs", "preflight", "unwritable"]


def unwritable(path: Path) -> str | None:
    """Why a report cannot be written at ``path`` (checked before the audit runs), or None."""
    if path.is_dir():
        return "is a folder, not a file"
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        return f"{folder} is not a folder"
    import os

    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder}"
    return None


def preflight(run: Any) -> list[str]:
    """Everything that can be checked before collection, reported at once: the checkpoint
    paths, the data setting, the model and the rule."""
    from credit_audit._importing import import_object
    from credit_audit.rules import resolve_rule

    opts, problems = run.opts, []
    plain = [c for c in opts.ckpts if c != "demo"]
    if plain:
        try:  # a glob that matches nothing, a folder without checkpoints
            refs = run.session.refs()
        except CreditAuditError as exc:
            problems.append(str(exc))
            refs = []
        problems += [
            f"--ckpt: {r.path}: no such file" for r in refs if not r.demo and not r.path.exists()
        ]
        if opts.data is None:
            problems.append(
                "no eval data: pass --data=cifar10|digits|FILE.pt|module:function "
                "(or set credit_audit_data in the ini file)"
            )
    for value, what in ((opts.model, "--model"), (opts.metric, "--audit-metric")):
        if value:
            try:
                import_object(value, what)
            except CreditAuditError as exc:
                problems.append(str(exc))
    if opts.rule:
        try:
            resolve_rule(opts.rule, run.registry.rules)
        except CreditAuditError as exc:
            problems.append(str(exc))
    return problems


def code_in_configs(run: Any) -> list[str]:
    """The code that the configs of the files to audit name and the user does not trust
    (:mod:`credit_audit.trust`), read before the audit starts so that the run refuses it at
    once (each checkpoint's load refuses it again, for the fixture's own audits)."""
    from credit_audit.loading import read_config
    from credit_audit.trust import config_refusals

    targets = []  # (path, the options its audit runs under)
    if run.opts.ckpts:
        targets += [(r.path, run.opts) for r in run.session.refs() if not r.demo]
    if run.verifier is not None:
        for claim_id, claim in run.verifier.claims.items():
            if not claim.checkpoint.startswith("demo:"):
                targets.append((Path(claim.checkpoint), run.verifier.opts_for(claim_id)))
    problems, configs = [], {}
    for path, opts in targets:
        if path not in configs:
            configs[path] = read_config(path) if path.is_file() else None
        problems += [p for p in config_refusals(configs[path], opts, path) if p not in problems]
    return problems
