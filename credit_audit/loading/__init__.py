"""Reading what an audit runs on: checkpoint files (never running a stranger's code) and the
evaluation data."""

from credit_audit.loading.checkpoint import (
    CheckpointRef,
    LoadedCheckpoint,
    load_checkpoint,
    resolve_checkpoints,
)
from credit_audit.loading.data import EvalData, digits_split, load_eval_data
from credit_audit.loading.files import read_config

__all__ = [
    "CheckpointRef",
    "EvalData",
    "LoadedCheckpoint",
    "digits_split",
    "load_checkpoint",
    "load_eval_data",
    "read_config",
    "resolve_checkpoints",
]
