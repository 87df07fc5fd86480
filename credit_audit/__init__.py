"""credit_audit: a pytest plugin that audits published alignment numbers of local learning rules.

The plugin (``credit_audit.plugin``) wires pytest; measurements live in ``credit_audit.pitfalls``
as pure functions of tensors; ``credit_audit.fixtures`` loads checkpoints, models and data and
runs the one shared forward/backward pass; ``credit_audit.report`` renders.
"""

from credit_audit._errors import CreditAuditError

__version__ = "0.1.0"

__all__ = ["CreditAuditError", "__version__"]
