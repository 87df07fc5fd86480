"""credit_audit: a pytest plugin that audits published alignment numbers of local learning rules.

The plugin (``credit_audit.plugin``) wires pytest; ``credit_audit.audit`` loads checkpoints,
models and data (through ``credit_audit.loading`` and ``credit_audit.models``) and runs the one
shared forward/backward pass; the measurements live in ``credit_audit.pitfalls`` as pure
functions of tensors; ``credit_audit.report`` renders; ``credit_audit.fixtures`` gives users'
own tests the ``credit_audit`` fixture. ARCHITECTURE.md draws the layers.
"""

from credit_audit._errors import CreditAuditError

__version__ = "0.1.0"

__all__ = ["CreditAuditError", "__version__"]
