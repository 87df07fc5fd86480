"""The claims file: a paper's numbers and the protocol behind each (SPEC §6).

Read with ``yaml.safe_load`` and validated field by field; every error names the file, the
claim id and the field. A field the checklist requires but the claim omits is not a format
error: the claim's ``complete`` item fails and names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from credit_audit._errors import CreditAuditError
from credit_audit.claims._yaml import read_yaml
from credit_audit.trust import CLAIM_CODE_FIELDS, CodeTrust

__all__ = ["AGGREGATIONS", "METRICS", "REQUIRED", "Claim", "load_claims"]

METRICS = ("gamma", "rho", "null_mean", "layer0_share")
AGGREGATIONS = (  # the strategies of the aggregation_spread pitfall
    "mean_samples_mean_layers",
    "median_samples_mean_layers",
    "mean_samples_median_layers",
    "median_samples_median_layers",
    "pooled_mean",
    "deep_layer_mean",
)
COSINES = ("unclamped", "torch_default")
ASSERTS = ("aligned", "not_aligned", "value_only")
BS_SOURCES = ("stored", "reconstruct")
# What the checklist requires of every claim (the `complete` item).
REQUIRED = ("layers", "aggregation", "cosine", "bs", "data", "n_eval")
_PROTOCOL = (
    "model",
    "model_kwargs",
    "rule",
    "loss",
    "loss_reduction",
    "grad_batch",
    "data",
    "data_root",
    "n_eval",
    "device",
)
_FIELDS = (
    "id",
    "text",
    "checkpoint",
    "metric",
    "value",
    "tolerance",
    "layers",
    "aggregation",
    "cosine",
    "bs",
    "asserts",
    "sha256",
    *_PROTOCOL,
)


@dataclass
class Claim:
    """One stated number and its protocol; ``None`` marks a field the claim does not give."""

    id: str
    source: str  # "claims.yaml: claim 'x'", for messages
    checkpoint: str
    metric: str
    value: float | None
    tolerance: float
    text: str = ""
    layers: list | None = None
    aggregation: str | None = None
    cosine: str | None = None
    bs: dict | None = None
    asserts: str = "value_only"
    model: str | None = None
    model_kwargs: dict | None = None
    rule: str | None = None
    module_layers: list | None = None  # `layers` given as module names (the hooks adapter)
    loss: str | None = None  # a built-in loss only (a claims file must not name code)
    loss_reduction: str | None = None
    grad_batch: int | None = None
    data: str | None = None
    data_root: str | None = None
    n_eval: int | None = None
    device: str | None = None
    sha256: str | None = None  # pins the checkpoint file: a different file fails the claim
    missing: list = field(default_factory=list)


def _err(where: str, name: str, expected: str, got) -> CreditAuditError:
    return CreditAuditError(f"{where}: field '{name}' must be {expected}, got {got!r}")


def _choice(where, name, value, choices):
    if value not in choices:
        raise _err(where, name, f"one of {', '.join(choices)}", value)
    return value


def _number(where, name, value, positive=False):
    import math

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(where, name, "a number", value)
    if not math.isfinite(value):
        raise _err(where, name, "a finite number", value)
    if positive and value < 0:
        raise _err(where, name, "a number ≥ 0", value)
    return float(value)


def _gradient_protocol(claim: Claim, merged: dict, where: str) -> None:
    """``loss`` (a built-in loss, or a function the user trusts: checked by
    :func:`_code_fields`), ``loss_reduction`` and ``grad_batch``."""
    from credit_audit.losses import BUILTIN_LOSSES, REDUCTIONS
    from credit_audit.trust import code_target

    loss = merged.get("loss")
    if loss is not None:
        trusted = code_target("loss", loss) is not None  # _code_fields let it through
        claim.loss = loss if trusted else _choice(where, "loss", loss, BUILTIN_LOSSES)
    if merged.get("loss_reduction") is not None:
        claim.loss_reduction = _choice(
            where, "loss_reduction", merged["loss_reduction"], REDUCTIONS
        )
    batch = merged.get("grad_batch")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
            raise _err(where, "grad_batch", "a positive integer (samples per batch)", batch)
        claim.grad_batch = batch


def _code_fields(merged: dict, where: str, trust: CodeTrust) -> None:
    """A claims file is a stranger's data: a field that names code (``model``, ``rule``,
    ``loss``, ``data`` as ``module:function``) is refused, before anything is imported, unless
    the user trusts it (:mod:`credit_audit.trust`)."""
    for name in CLAIM_CODE_FIELDS:
        value = merged.get(name)
        if value is not None and not isinstance(value, str):  # YAML reads 2001-12-14 as a date
            raise _err(where, name, "a name in quotes (a string)", value)
        trust.check(name, value, f"{where}: field '{name}'", "claims")


def _validate(raw: dict, defaults: dict, where: str, base: Path, trust: CodeTrust) -> Claim:
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise CreditAuditError(
            f"{where}: unknown field '{unknown[0]}' (known: {', '.join(_FIELDS)})"
        )
    merged = {**defaults, **raw}
    _code_fields(merged, where, trust)
    for name in ("checkpoint", "metric"):
        if merged.get(name) in (None, ""):
            raise CreditAuditError(f"{where}: field '{name}' is required")
    ckpt = merged["checkpoint"]
    if not isinstance(ckpt, str):
        raise _err(where, "checkpoint", "a path or demo:<id>", ckpt)
    if not ckpt.startswith("demo:"):
        path = Path(ckpt) if Path(ckpt).is_absolute() else base / ckpt
        if not path.is_file():
            raise _err(where, "checkpoint", "an existing checkpoint file", ckpt)
        ckpt = str(path.resolve())
    claim = Claim(
        id=str(raw["id"]),
        source=where,
        checkpoint=ckpt,
        metric=_choice(where, "metric", merged["metric"], METRICS),
        value=None if merged.get("value") is None else _number(where, "value", merged["value"]),
        tolerance=_number(where, "tolerance", merged.get("tolerance", 0.0), positive=True),
        text=str(merged.get("text", "")),
        asserts=_choice(where, "asserts", merged.get("asserts", "value_only"), ASSERTS),
    )
    if merged.get("layers") is not None:
        layers = merged["layers"]
        names = isinstance(layers, list) and layers and all(isinstance(v, str) for v in layers)
        if names:  # module names, as --layers takes them: the claim covers all of them
            from credit_audit._parsers import module_names

            try:
                claim.module_layers = module_names(layers)
            except ValueError as exc:
                raise _err(where, "layers", f"module names ({exc})", layers) from None
            claim.layers = list(range(len(layers)))
        elif (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in layers)
        ):
            raise _err(
                where,
                "layers",
                "a non-empty list of layer indices (0..L) or of module names",
                layers,
            )
        else:
            claim.layers = sorted(set(layers))
    if merged.get("aggregation") is not None:
        claim.aggregation = _choice(where, "aggregation", merged["aggregation"], AGGREGATIONS)
    if merged.get("cosine") is not None:
        claim.cosine = _choice(where, "cosine", merged["cosine"], COSINES)
    if merged.get("bs") is not None:
        bs = merged["bs"]
        if not isinstance(bs, dict) or "source" not in bs:
            raise _err(
                where,
                "bs",
                "{source: stored} or {source: reconstruct, seed: S, device: cpu|cuda}",
                bs,
            )
        _choice(where, "bs.source", bs["source"], BS_SOURCES)
        if bs["source"] == "reconstruct":
            if isinstance(bs.get("seed"), bool) or not isinstance(bs.get("seed"), int):
                raise _err(where, "bs.seed", "an integer", bs.get("seed"))
            _choice(where, "bs.device", bs.get("device", "cpu"), ("cpu", "cuda"))
        claim.bs = dict(bs)
    if merged.get("n_eval") is not None:
        n = merged["n_eval"]
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise _err(where, "n_eval", "a positive integer", n)
        claim.n_eval = n
    _gradient_protocol(claim, merged, where)
    if merged.get("model_kwargs") is not None and not isinstance(merged["model_kwargs"], dict):
        raise _err(where, "model_kwargs", "a mapping", merged["model_kwargs"])
    for name in ("model", "model_kwargs", "rule", "data", "data_root", "device"):
        if merged.get(name) is not None:
            setattr(claim, name, merged[name] if name == "model_kwargs" else str(merged[name]))
    if claim.device is not None:
        from credit_audit._parsers import device

        try:
            claim.device = device(claim.device)
        except ValueError:
            raise _err(where, "device", "auto, cpu, cuda or cuda:i", merged["device"]) from None
    sha = merged.get("sha256")
    if sha is not None:
        if not (
            isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
        ):
            raise _err(where, "sha256", "64 lowercase hex digits", sha)
        claim.sha256 = sha
    if claim.data_root and not Path(claim.data_root).is_absolute():
        claim.data_root = str((base / claim.data_root).resolve())
    if claim.value is None:
        raise CreditAuditError(f"{where}: field 'value' is required")
    claim.missing = [name for name in REQUIRED if getattr(claim, name) is None]
    return claim


def load_claims(path: str | Path, trust: CodeTrust | None = None) -> list[Claim]:
    """Read and validate a claims file; raises CreditAuditError naming file, claim and field.
    ``trust``: the code the user trusts a claim to name (None: none)."""
    path = Path(path)
    name = path.name
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise CreditAuditError(f"{name}: expected a mapping with 'version' and 'claims'")
    if doc.get("version") != 1:
        raise CreditAuditError(f"{name}: field 'version' must be 1, got {doc.get('version')!r}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise CreditAuditError(f"{name}: 'defaults' must be a mapping")
    bad = sorted(set(defaults) - set(_FIELDS) - {"id"})
    if bad:
        raise CreditAuditError(f"{name}: defaults: unknown field '{bad[0]}'")
    raw_claims = doc.get("claims")
    if not isinstance(raw_claims, list) or not raw_claims:
        raise CreditAuditError(f"{name}: 'claims' must be a non-empty list")
    claims, seen = [], set()
    for i, raw in enumerate(raw_claims):
        if not isinstance(raw, dict) or raw.get("id") in (None, ""):
            raise CreditAuditError(f"{name}: claim #{i + 1} needs an 'id'")
        if not isinstance(raw["id"], str):
            raise CreditAuditError(
                f"{name}: claim #{i + 1}: field 'id' must be a string (quote it), got {raw['id']!r}"
            )
        where = f"{name}: claim '{raw['id']}'"
        if raw["id"] in seen:
            raise CreditAuditError(f"{where}: the id is used twice")
        seen.add(raw["id"])
        claims.append(_validate(raw, defaults, where, path.parent, trust or CodeTrust()))
    return claims
