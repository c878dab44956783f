"""Catalog entries: inference builds (E80x)."""

from __future__ import annotations

from resdsl.errors_catalog.entry import Entry
from resdsl.errors_catalog.export import SMALL

API_ONLY = "given by build_model(..., mode=...), which no command takes; tests/test_inference.py gives it"

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
        '`build_model(spec, mode="inference")` got a training option: `head`, `freeze`, `freeze_until` or `freeze_bn`',
        "An inference build has no gradients to stop and no head to train: fine-tune with the training "
        "build, save its weights (resdsl.save_weights), then build the inference model from that file.",
        SMALL,
        SMALL,
        runs=False,
        why=API_ONLY,
    ),
]
