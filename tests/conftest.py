"""Shared fixtures: the reference checkpoints (built once, cached) and an audit run over them."""

from pathlib import Path

# pytester's in-process runs drop the modules they imported when they end, and numpy's
# extension modules cannot be loaded twice: import what the audited runs use up front.
import matplotlib.figure  # noqa: F401
import pytest
import safetensors.torch  # noqa: F401
import sklearn.datasets  # noqa: F401
import torchvision  # noqa: F401

from credit_audit.audit import AuditSession
from credit_audit.factory import build_reference_checkpoints
from credit_audit.options import AuditOptions
from credit_audit.registry import default_registry


@pytest.fixture(scope="module")
def digits():
    """The first 64 test samples of scikit-learn's digits: the small checkpoints' eval data."""
    from credit_audit.loading import load_eval_data

    return load_eval_data("digits", n_eval=64)


@pytest.fixture(scope="session")
def reference_cache() -> Path:
    """Where the factory caches its checkpoints: the demo's own cache (``$CREDIT_AUDIT_CACHE``,
    else ``~/.cache/credit_audit``), so that the tests reuse what ``pytest --ckpt=demo`` built
    (and the other way round) instead of training the four checkpoints a second time."""
    from credit_audit.factory import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def reference(reference_cache) -> dict:
    """``{id: {"path", "bs_seed", ...}}`` of the four reference checkpoints."""
    return build_reference_checkpoints(reference_cache, progress=lambda msg: None)


@pytest.fixture(scope="session")
def demo_run(reference, reference_cache) -> AuditSession:
    """An audit session over the reference checkpoints, as ``--ckpt=demo`` makes it."""
    run = AuditSession(
        AuditOptions(ckpts=["demo"], device="cpu"),
        Path.cwd(),
        default_registry(),
        progress=lambda msg: None,
        cache_dir=reference_cache,
    )
    run.refs()
    return run


@pytest.fixture
def audit_env(monkeypatch, reference_cache, reference):
    """Environment for pytester runs of the plugin: the shared checkpoint cache."""
    monkeypatch.setenv("CREDIT_AUDIT_CACHE", str(reference_cache))
    return reference
