"""The audit of one checkpoint under one set of options: the context every pitfall sees.

Everything is computed on first use and kept: the checkpoint and model (``load``), the float32
pass with the rule's signal (``pass32``), its float64 copy (``pass64``), and each pitfall's
result and verdict. A check asks only for what it needs, so ``-k eps_clamping`` never draws the
null, and an error is remembered where it happened: a failing null makes bs_specificity (and
layer0_dominance, which needs its bands) ERROR, not the other checks. No pytest here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.audit._steps import step
from credit_audit.audit.model_choice import built, model_spec_for, rule_name_for
from credit_audit.audit.passes import checked_pass, finite_signal
from credit_audit.audit.shared_pass import ForwardPass, run_pass
from credit_audit.audit.summary import summarize
from credit_audit.loading import CheckpointRef, EvalData, LoadedCheckpoint, load_checkpoint
from credit_audit.models import ModelSpec, make_adapter
from credit_audit.options import AuditOptions
from credit_audit.records import ERROR, CheckpointSummary, Status, Verdict

__all__ = ["CheckpointAudit"]


class CheckpointAudit:
    """One checkpoint's audit; ``verdicts``, ``gamma_per_layer`` and ``result(id)`` are the
    public face (the ``credit_audit`` fixture returns this object)."""

    def __init__(
        self, ref: CheckpointRef, opts: AuditOptions, data: Callable[[], EvalData], registry: Any
    ):
        self.ref = ref
        self.opts = opts
        self.registry = registry
        self._data = data
        self._memo: dict[str, Any] = {}
        self._results: dict[str, Any] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._summary: CheckpointSummary | None = None

    def _get(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute on first use and keep, failures too (:func:`credit_audit.audit._steps.step`)."""
        return step(self._memo, key, compute, f"checkpoint {self.ref.path}")

    @property
    def device(self) -> str:
        return self.opts.resolved_device()

    @property
    def rule(self) -> Any:
        from credit_audit.rules import resolve_rule

        return self._get("rule", lambda: resolve_rule(self.rule_name, self.registry.rules))

    @property
    def rule_name(self) -> str:
        """``--rule``, else the checkpoint's config or what its layout implies (BioTorch),
        else dfa (:func:`credit_audit.audit.model_choice.rule_name_for`)."""
        return rule_name_for(self.ckpt, self.opts)

    def code(self) -> list:
        """What this audit imports (model, rule, loss, data), who named it and why it was
        trusted (:func:`credit_audit.trust.code_provenance`)."""
        from credit_audit.trust import code_provenance

        fields = {
            "model": self.opts.model,
            "rule": self.rule_name,
            "loss": self.loss.name,
            "data": self.opts.data,
        }
        return code_provenance(fields, self.opts, f"checkpoint {self.ref.path}")

    @property
    def loss(self) -> Any:
        """The loss ``g_l`` is the gradient of: ``--loss``/``--loss-reduction``, else the
        checkpoint config's, else the mean cross-entropy."""
        from credit_audit.audit.loss_choice import loss_for

        return self._get("loss", lambda: loss_for(self.ckpt, self.opts))

    @property
    def grad_batch(self) -> int | None:
        """Samples per gradient batch: ``--grad-batch``, else the config's, else None (all)."""
        from credit_audit.audit.loss_choice import grad_batch_for

        return self._get("grad_batch", lambda: grad_batch_for(self.ckpt, self.opts))

    @property
    def layers(self) -> list | None:
        """``--layers``, else the checkpoint's config or the modules its layout names
        (BioTorch DFA), else the layers its ``Bs`` keys name (:mod:`credit_audit.rules.keyed`)."""
        given = self._given_layers()
        if given or not self.ckpt.feedback_named or not getattr(self.rule, "keyed_by_layer", 0):
            return given
        return self._get("layers_from_keys", self._layers_from_keys)

    def _layers_from_keys(self) -> list:
        """The layers the checkpoint's ``Bs`` keys name, in the model's module order."""
        from credit_audit.rules.keyed import layers_from_keys

        model = self.model  # first: building it may strip a prefix off the keys
        return layers_from_keys(list(self.ckpt.feedback_named), model, str(self.ref.path))

    def _given_layers(self) -> list | None:
        """``--layers``, else what the checkpoint's config or layout names."""
        return self.opts.layers or self.ckpt.hints.get("layers")

    @property
    def ckpt(self) -> LoadedCheckpoint:
        """The loaded file; refused when its config names code the user does not trust (every
        use of the config goes through here, so nothing it names is imported before)."""
        return self._get("ckpt", self._load)

    def _load(self) -> LoadedCheckpoint:
        from credit_audit.trust import config_refusals

        ckpt = load_checkpoint(self.ref, self.opts.trust_pickle)
        problems = config_refusals(ckpt.config, self.opts, self.ref.path)
        if problems:
            raise CreditAuditError("; ".join(problems))
        return ckpt

    @property
    def spec(self) -> ModelSpec:
        return self._get("spec", lambda: model_spec_for(self.ckpt, self.opts))

    @property
    def data(self) -> EvalData:
        return self._get("data", self._data)

    @property
    def pass32(self) -> ForwardPass:
        """The pipeline's float32 pass with the rule's signal."""
        return self._get("pass32", self._pass32)

    @property
    def pass64(self) -> ForwardPass:
        """The same pass with a float64 copy of the model, and the signal in float64."""
        return self._get("pass64", self._pass64)

    @property
    def feedback(self) -> list:
        return self._get("feedback", lambda: self._feedback()[0])

    @property
    def provenance(self) -> Any:
        return self._get("provenance", lambda: self._feedback()[1])

    @property
    def fit(self) -> dict:
        """The model on the eval data: accuracy, mean loss, the checkpoint's stored test_acc,
        and a warning when it does not do its job there (:mod:`credit_audit.audit.model_fit`)."""
        return self._get("fit", self._fit)

    def _fit(self) -> dict:
        from credit_audit.audit.model_fit import eval_fit, stored_accuracy

        fwd = self._base_pass()
        logits = fwd.logits.double()
        # the loss g_l comes from, each sample's as torch's mean counts it (bce and mse: per
        # output), so that the mean over samples is the number the lab's script printed
        losses = fwd.loss.per_sample(logits, fwd.y) / fwd.loss.elements(logits)
        return eval_fit(fwd.logits, fwd.y, losses, fwd.loss.title, stored_accuracy(self.ckpt.meta))

    @property
    def gamma_per_layer(self) -> list[float]:
        """Γ_l: the mean over samples of the unclamped cosine, per layer."""
        return self.pass32.cos.mean(dim=1).tolist()

    def _feedback(self) -> tuple:
        return self._get(
            "feedback_pair",
            lambda: self.rule.feedback(
                self.ckpt, self.spec, self._base_pass(), self.opts, self.device
            ),
        )

    def _base_pass(self) -> ForwardPass:
        return self._get("base_pass", self._run_float32)

    @property
    def model(self) -> Any:
        """The float32 model with the checkpoint's weights, on the audit's device."""
        return self._get("model", lambda: self._built()[0])

    @property
    def model_notes(self) -> dict:
        """What fitting the file's keys to the model did (a prefix stripped, keys put back)."""
        return self._get("model_notes", lambda: self._built()[1])

    def _built(self) -> tuple:
        """``(model, notes)``, built once (:func:`credit_audit.audit.model_choice.built`)."""
        if "built" not in self._memo:
            self._memo["built"] = built(self.spec, self.ckpt, str(self.ref.path), self.device)
        return self._memo["built"]

    def _run_float32(self) -> ForwardPass:
        model = self.model
        adapter = make_adapter(model, self.registry.adapters, self.spec.name, self.layers)
        return checked_pass(
            adapter,
            model,
            self.spec,
            self.data,
            self.device,
            f"checkpoint {self.ref.path}",
            token_cosine=self.opts.token_cosine,
            chunk=self.opts.chunk_size,
            loss=self.loss,
            grad_batch=self.grad_batch,
        )

    def _pass32(self) -> ForwardPass:
        fwd = self._base_pass()
        fwd.set_signal(self._finite_signal(self.rule.signal(fwd, self.feedback)))
        return fwd

    def _finite_signal(self, signal: list) -> list:
        """The rule's signal, refused when it holds NaN or Inf (a cosine of it would be NaN,
        and every check's verdict with it)."""
        return finite_signal(signal, self.rule.name, f"checkpoint {self.ref.path}")

    def _pass64(self) -> ForwardPass:
        import torch

        base = self._base_pass()
        model = copy.deepcopy(self.model).to(torch.float64)
        adapter = make_adapter(model, self.registry.adapters, self.spec.name, self.layers)
        fwd = run_pass(
            adapter,
            base.x.double(),
            base.y,
            f"checkpoint {self.ref.path}",
            self.opts.token_cosine,
            self.opts.chunk_size,
            base.loss,
            base.grad_batch,
            check_backward=False,  # the float32 pass checked the same modules' backward
        )
        fwd.set_signal(
            self._finite_signal(self.rule.signal(fwd, [b.double() for b in self.feedback]))
        )
        return fwd

    # -- checks ----------------------------------------------------------------------------------
    def thresholds(self, pitfall_id: str) -> dict:
        """One pitfall's thresholds under this audit's options."""
        return self.registry.thresholds(pitfall_id, self.opts.thresholds)

    def result(self, pitfall_id: str) -> Any:
        """A pitfall's result dataclass, measured once."""
        pitfall = self.registry.pitfall(pitfall_id)
        return self._get(
            f"result:{pitfall_id}",
            lambda: self._results.setdefault(
                pitfall_id, pitfall.measure(self, self.thresholds(pitfall_id))
            ),
        )

    def verdict(self, pitfall_id: str) -> Verdict:
        """A pitfall's verdict (CreditAuditError when it could not run)."""
        pitfall = self.registry.pitfall(pitfall_id)
        return self._get(
            f"verdict:{pitfall_id}",
            lambda: self._verdicts.setdefault(
                pitfall_id, pitfall.verdict(self.result(pitfall_id), self.thresholds(pitfall_id))
            ),
        )

    @property
    def verdicts(self) -> dict[str, str]:
        """Pitfall id -> PASS / WARN / FAIL / ERROR, running every check; an ERROR carries
        why (its ``reason``, shown in its repr: an assertion on it prints the cause)."""
        out = {}
        for pid in self.registry.pitfalls:
            try:
                out[pid] = Status(self.verdict(pid).status)
            except CreditAuditError as exc:
                out[pid] = Status(ERROR, str(exc))
        return out

    def error(self, pitfall_id: str) -> str | None:
        """Why a check could not run, or None."""
        try:
            self.verdict(pitfall_id)
        except CreditAuditError as exc:
            return str(exc)
        return None

    def summary(self) -> CheckpointSummary:
        """Checkpoint-level provenance and numbers; check fields only for checks that ran."""
        base = CheckpointSummary(id=self.ref.id, path=str(self.ref.path))
        if self._summary is not None and "base_pass" not in self._memo:
            return self._summary  # released: what was known then
        try:
            return summarize(self)
        except Exception:  # noqa: BLE001 - the checks report the error; the summary is partial
            return base

    @property
    def holds_tensors(self) -> bool:
        """Whether the model and the passes are in memory (see :meth:`release`)."""
        return isinstance(self._memo.get("base_pass"), ForwardPass)

    def release(self) -> None:
        """Drop the tensors (results, verdicts and provenance stay); they are recomputed if
        asked for again. Keeps a sweep's memory to one checkpoint at a time."""
        try:
            self._summary = self.summary()
        except Exception:  # noqa: BLE001 - releasing must never fail a teardown
            self._summary = CheckpointSummary(id=self.ref.id, path=str(self.ref.path))
        for key in (
            "built",
            "model",
            "base_pass",
            "pass32",
            "pass64",
            "feedback",
            "feedback_pair",
            "ckpt",
            "data",
        ):
            if not isinstance(self._memo.get(key), CreditAuditError):
                self._memo.pop(key, None)
