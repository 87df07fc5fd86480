"""The audit's settings as plain data (no pytest import): what decides the numbers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AuditOptions:
    """Every setting of one audit run; printed in the report header and stored in the JSON."""

    ckpts: list = field(default_factory=list)
    claims: str | None = None
    model: str | None = None
    model_kwargs: dict | None = None
    data: str | None = None
    data_root: str | None = None
    data_download: bool = False
    n_eval: int | None = None
    bs_seed: int | None = None
    bs_device: str = "auto"
    bs_over_stored: bool = False  # a claim that says its Bs were reconstructed is taken at its word
    device: str = "auto"
    trust_pickle: bool = False
    html: str | None = None
    json: str | None = None
    fail_on: str = "fail"
    null_draws: int = 1000
    null_seed: int = 12345
    metric: str | None = None
    thresholds: dict = field(default_factory=dict)

    def resolved_device(self) -> str:
        """``auto`` -> CUDA when available, else ``cpu``; one GPU per pytest-xdist worker."""
        import os

        if self.device not in ("auto", "cuda"):
            return self.device
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        if worker.startswith("gw") and worker[2:].isdigit() and torch.cuda.device_count() > 1:
            return f"cuda:{int(worker[2:]) % torch.cuda.device_count()}"
        return "cuda"

    def deciding(self) -> dict:
        """The options that decide the numbers (header, JSON provenance)."""
        return {
            "device": self.resolved_device(),
            "data": self.data,
            "data_root": self.data_root,
            "n_eval": self.n_eval if self.n_eval is not None else "1024 or the whole split",
            "bs_seed": self.bs_seed,
            "bs_device": self.bs_device,
            "null_draws": self.null_draws,
            "null_seed": self.null_seed,
            "model": self.model or "built-in ResidualMLP (sizes from the state_dict)",
            "model_kwargs": self.model_kwargs,
            "thresholds": {f"{k[0]}.{k[1]}": v for k, v in sorted(self.thresholds.items())},
        }
