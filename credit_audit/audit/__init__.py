"""The audit engine: the shared pass, one checkpoint's audit, and the session that shares
them between the bundled checks, the claims and the ``credit_audit`` fixture."""

from credit_audit.audit.checkpoint_audit import CheckpointAudit
from credit_audit.audit.model_choice import model_spec_for
from credit_audit.audit.session import AuditSession
from credit_audit.audit.shared_pass import ForwardPass, cosines, run_pass

__all__ = [
    "AuditSession",
    "CheckpointAudit",
    "ForwardPass",
    "cosines",
    "model_spec_for",
    "run_pass",
]
