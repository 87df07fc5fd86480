"""The options table: one :class:`Option` row per option (flag, destination, parser, default,
help sentence). The plugin registers the rows as one pytest option group (with ini twins
``credit_audit_<dest>``); :class:`credit_audit.options.AuditOptions` gets one field per row. No
default is written anywhere else. Neither pytest nor torch is imported here.
"""

from __future__ import annotations

from credit_audit import _parsers as parsers
from credit_audit.losses import REDUCTIONS, loss_name
from credit_audit.options.row import Option
from credit_audit.report.figures import FIGURE_MODES
from credit_audit.rules import INITS
from credit_audit.trust import trusted_modules

__all__ = ["DEFAULT_HTML", "DEFAULT_JSON", "DEMO_DATA", "OPTIONS", "option"]

DEMO_DATA = "digits"  # the reference checkpoints' dataset, shipped by scikit-learn
DEFAULT_HTML = "credit-audit/report.html"
DEFAULT_JSON = "credit-audit/results.json"


def _n_eval_text() -> str:
    from credit_audit.loading.data import DEFAULT_N_EVAL

    return f"{DEFAULT_N_EVAL}, or the whole split when it is smaller"


# The one table. Order is the order of --help and of the report header.
OPTIONS: tuple[Option, ...] = (
    Option(
        "--model",
        "model",
        parsers.text,
        None,
        "Model as package.module:Class (built from "
        "--model-kwargs and loaded with the checkpoint's weights).",
        "the built-in ResidualMLP, sized from the state_dict",
        "MODULE:CLASS",
        deciding=True,
    ),
    Option(
        "--model-kwargs",
        "model_kwargs",
        parsers.kwargs_json,
        None,
        "JSON keyword arguments for --model.",
        "none, or the checkpoint config's model_kwargs",
        "JSON",
        deciding=True,
    ),
    Option(
        "--rule",
        "rule",
        parsers.text,
        None,
        "Credit rule whose signal is audited: a registered name (dfa, sdfa, drtp, fa) or "
        "package.module:function.",
        "dfa, or the rule the checkpoint's layout implies (BioTorch)",
        "NAME",
        deciding=True,
    ),
    Option(
        "--layers",
        "layers",
        parsers.module_names,
        None,
        "Module names (from model.named_modules()) whose outputs are the hidden states, "
        "comma-separated, in network order; NAME:input takes the module's input.",
        "the checkpoint config's layers, else the layers its Bs keys or layout name, else "
        "the model's own protocol (ResidualMLP, or hidden_states/forward_from)",
        "NAME[,NAME...]",
        deciding=True,
    ),
    Option(
        "--token-cosine",
        "token_cosine",
        parsers.flag,
        False,
        "For hidden states of shape (N, T, D), take one cosine per token over D and average "
        "them per sample, instead of one cosine over the flattened state.",
        "off: one cosine per sample over the flattened state",
        is_flag=True,
        deciding=True,
    ),
    Option(
        "--loss",
        "loss",
        loss_name,
        None,
        "The loss the network was trained with, whose gradient g_l is: ce (cross-entropy on "
        "logits), nll (the model outputs log-probabilities), bce (binary cross-entropy with "
        "logits against onehot(y)), mse (against onehot(y)) or package.module:function "
        "(function(output, y) -> per-sample losses); DFA's error is its derivative.",
        "ce, or the checkpoint config's loss",
        "ce|nll|bce|mse|MODULE:FUNCTION",
        deciding=True,
    ),
    Option(
        "--loss-reduction",
        "loss_reduction",
        parsers.choice(*REDUCTIONS),
        None,
        "How a batch's losses are reduced, as torch reduces them: mean (over every element: "
        "N for ce and nll, N·C for bce and mse) or sum; under mean ‖g‖ scales as 1/batch.",
        "mean, or the checkpoint config's loss_reduction",
        "mean|sum",
        deciding=True,
    ),
    Option(
        "--grad-batch",
        "grad_batch",
        parsers.positive_int,
        None,
        "Samples per gradient batch: g_l is the gradient of the loss of consecutive batches "
        "of B eval samples (the last one shorter), as a lab's script computes it.",
        "all N samples at once (the research scripts'), or the checkpoint config's grad_batch",
        "B",
        deciding=True,
    ),
    Option(
        "--data",
        "data",
        parsers.text,
        None,
        "Eval data: cifar10, digits, FILE.pt with x and y, or package.module:function.",
        f"{DEMO_DATA} for the demo, otherwise required",
        "NAME",
        deciding=True,
    ),
    Option(
        "--data-root",
        "data_root",
        parsers.text,
        None,
        "Folder of the dataset (cifar10 reads "
        "./data when unset; a tensors file is looked up here first).",
        metavar="DIR",
        deciding=True,
    ),
    Option(
        "--data-download",
        "data_download",
        parsers.flag,
        False,
        "Let torchvision download the dataset.",
        is_flag=True,
    ),
    Option(
        "--n-eval",
        "n_eval",
        parsers.positive_int,
        None,
        "Samples taken from the start of the test split, in order.",
        _n_eval_text(),
        "N",
        deciding=True,
    ),
    Option(
        "--bs-seed",
        "bs_seed",
        parsers.whole,
        None,
        "Seed that reconstructs feedback matrices a "
        "checkpoint does not store, by the rule's recipe (stored ones always win).",
        metavar="S",
        deciding=True,
    ),
    Option(
        "--bs-device",
        "bs_device",
        parsers.choice("auto", "cpu", "cuda"),
        "auto",
        "Generator that "
        "reconstructs the feedback matrices: cpu, cuda or auto (the compute device).",
        metavar="auto|cpu|cuda",
        deciding=True,
    ),
    Option(
        "--bs-init",
        "bs_init",
        parsers.choice(*INITS),
        None,
        "Distribution of the feedback matrices' entries, for reconstruction and for the "
        "null's fresh draws: gaussian (randn/sqrt(fan-in), the research scripts'), uniform "
        "(rand*2-1, TinyDFA's), xavier_uniform (BioTorch's) or kaiming_uniform "
        "(U(+-sqrt(6/fan-in)) of the matrix as stored, Frenkel et al.'s DRTP repo's).",
        "the checkpoint config's bs_init, else what its layout implies, else gaussian",
        "INIT",
        deciding=True,
    ),
    Option(
        "--chunk-size",
        "chunk_size",
        parsers.positive_int,
        1024,
        "Samples per forward/backward call of the network (the shared pass, FA's signal, the "
        "anchors' perturbed passes); lower it when a large network's activations do not fit.",
        metavar="N",
    ),
    Option(
        "--device",
        "device",
        parsers.device,
        "auto",
        "Compute device: auto (CUDA when present), cpu, cuda or cuda:i.",
        metavar="DEVICE",
        deciding=True,
    ),
    Option(
        "--null-draws",
        "null_draws",
        parsers.positive_int,
        None,
        "Fresh feedback draws K for the null distribution.",
        metavar="K",
        deciding=True,
        threshold=("bs_specificity", "null_draws"),
    ),
    Option(
        "--null-seed",
        "null_seed",
        parsers.whole,
        None,
        "Seed of the fresh draws of the null.",
        metavar="S",
        deciding=True,
        threshold=("bs_specificity", "null_seed"),
    ),
    Option(
        "--metric",
        "reported_metric",
        parsers.choice("gamma", "rho", "both"),
        None,
        "The metric your paper reports: gamma (the cosine Γ), rho (the perturbation "
        "correlation ρ) or both; calibration_anchors audits its anchors (a claim audits its own).",
        metavar="gamma|rho|both",
        deciding=True,
        threshold=("calibration_anchors", "metric"),
    ),
    Option(
        "--trust-pickle",
        "trust_pickle",
        parsers.flag,
        False,
        "Allow checkpoints that need full unpickling (this can run code from the file).",
        "off: weights_only=True; command line only, never from an ini file",
        is_flag=True,
        deciding=True,
        ini=False,
    ),
    Option(
        "--trust-code",
        "trusted_modules",
        trusted_modules,
        None,
        "Modules whose code a claims file or a checkpoint's config may name (a model, rule, "
        "loss or data function), imported and recorded in the report; without it a name of "
        "code in those files is refused and nothing is imported.",
        "none: files name only built-in rules, losses, layouts and datasets",
        "MODULE[,MODULE...]",
        deciding=True,
    ),
    Option(
        "--audit-metric",
        "metric",
        parsers.text,
        None,
        "Your cosine as module:function(a, g) -> per-row cosines, run on the known-answer case.",
        "credit_audit's unclamped cosine",
        "MODULE:FUNCTION",
    ),
    Option("--claims", "claims", parsers.text, None, "Claims YAML file to verify.", metavar="FILE"),
    Option(
        "--audit-shard",
        "shard",
        parsers.shard,
        None,
        "Audit part I of N of the checkpoints and claims (every N-th, from the I-th in sorted "
        "order), for a cluster's job array; its JSON keeps the records that `python -m "
        "credit_audit merge` joins into one report.",
        "all of them",
        "I/N",
        ini=False,
    ),
    Option("--audit-html", "html", parsers.text, None, "HTML audit path.", DEFAULT_HTML, "PATH"),
    Option("--audit-json", "json", parsers.text, None, "JSON results path.", DEFAULT_JSON, "PATH"),
    Option(
        "--audit-write-claims",
        "write_claims",
        parsers.text,
        None,
        "Write a claims file from this run, for the paper's author to edit: one claim per "
        "checkpoint and headline metric (Γ, the null mean, the layer-0 share) with the protocol "
        "used, the measured value and a tolerance of 2 standard errors; --claims on it "
        "reproduces every value.",
        metavar="FILE",
    ),
    Option(
        "--audit-figures",
        "figures",
        parsers.choice(*FIGURE_MODES),
        "auto",
        "Which checks get a figure in the HTML audit: failing (every verdict but PASS), all, "
        "none, or auto (failing for up to 10 checkpoints, none for a larger sweep, whose page "
        "stays light and fast).",
        metavar="auto|failing|all|none",
    ),
    Option(
        "--audit-fail-on",
        "fail_on",
        parsers.choice("fail", "warn"),
        "fail",
        "Lowest verdict that fails the run: fail or warn.",
        metavar="fail|warn",
    ),
)
_BY_DEST = {o.dest: o for o in OPTIONS}
_BY_DEST = {o.dest: o for o in OPTIONS}


def option(dest: str) -> Option:
    """The table row of one option by its destination name."""
    return _BY_DEST[dest]
