"""Reference checkpoints: the demo's and the project's test fixtures.

Four networks on scikit-learn's digits (standardised, 1400 train / 397 test), ResidualMLP
64 -> 256 with 4 blocks, trained on the CPU, deterministically:

* ``bp_s42`` — backprop; a raw state_dict. Audited with DFA Bs from seed 42, it should show
  no Bs-specific alignment (inside the null band).
* ``dfa_s42`` — vanilla DFA (seed 002's rule) trained long enough that the hidden-layer
  gradients sink toward the clamp; a raw state_dict whose Bs are reconstructed from seed 42.
* ``dfa_pen_s42`` — DFA with the residual-branch penalty; Bs stored (seed 002's format).
* ``dfa_foreign_bs_s42`` — the penalized network with stored Bs that are not its training
  Bs (drawn from another seed); a ``.safetensors`` file.

``specs`` says what each is and what its audit shows, ``training`` trains one, ``cache``
builds and caches the four, ``demo`` explains them in the demo's report.
"""

from credit_audit.factory.cache import (
    FACTORY_VERSION,
    build_reference_checkpoints,
    default_cache_dir,
)
from credit_audit.factory.demo import demo_explained, demo_explanations
from credit_audit.factory.specs import REFERENCE_SPECS, ReferenceSpec
from credit_audit.factory.training import FACTORY_THREADS, factory_threads, train_reference

__all__ = [
    "FACTORY_THREADS",
    "FACTORY_VERSION",
    "REFERENCE_SPECS",
    "ReferenceSpec",
    "build_reference_checkpoints",
    "default_cache_dir",
    "demo_explained",
    "demo_explanations",
    "factory_threads",
    "train_reference",
]
