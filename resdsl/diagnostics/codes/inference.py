"""Catalog entries: inference builds (E80x)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry
from resdsl.diagnostics.codes.export import SMALL

API_ONLY = "given by build_model(..., mode=...), which no command takes; tests/weights/test_inference.py gives it"

ENTRIES = [
    Entry(
        "E801",
        '`build_model(spec, mode="inference", weights=...)` got weights without an entry that folding a '
        "batchnorm into its conv needs (`running_mean`, `running_var`, the conv's `weight`): the weights of "
        "another network, or a state_dict folded already",
        "An inference build folds each batchnorm into the conv before it, from the training model's "
        "state_dict; pass that (or a checkpoint of the training model), not the inference model's own.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E802",
        '`build_model` got a `mode` other than `"training"` or `"inference"`',
        'mode="training" (the default) builds the network to train; mode="inference" folds its batchnorms '
        "into the convs, in eval mode, for serving.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E803",
        '`build_model(spec, mode="inference")` got a training option: `freeze`, `freeze_until`, `freeze_bn`, '
        "`features` or `checkpoint`",
        "An inference build serves the whole network with no gradients to stop or recompute: fine-tune "
        "with the training build, save its weights (resdsl.save_weights), then build the inference model "
        "from that file. (`head=N` is part of the network, not a training option: an inference build takes "
        "it, with weights that have the head.)",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E804",
        '`build_model(spec, mode="inference", compile=True)` found no C++ compiler (`$CXX`, `c++`, `g++` or '
        "`clang++`) on PATH",
        "A compiled inference build is compiled by torch's inductor, which writes C++ for the CPU and builds it "
        "with the system's compiler; install one (apt-get install g++), point CXX at one, or build without "
        "compile=True (the uncompiled inference build needs none).",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
    Entry(
        "E805",
        '`build_model(spec, compile=True)` without `mode="inference"`',
        "compile=True compiles the folded inference build, whose weights are frozen into the compiled graph. "
        'Build with mode="inference" to serve; to train compiled, call torch.compile(model) on the training '
        "build yourself.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
]
