"""The spec is built and compared with the model before anyone sees it: state_dict keys, shapes
and order, then float64 outputs in eval and train mode on one random input."""

from __future__ import annotations

import copy

import torch
from torch import nn

from resdsl.diagnostics import ResdslError, error


def verify(model: nn.Module, source: str, shape: tuple[int, int, int]) -> None:
    """Raises E905 naming the first key or output that differs; returns when the spec is exact."""
    from resdsl.api import build_model

    built = build_model(source, input_shape=shape)
    theirs, ours = model.state_dict(), built.state_dict()
    for (k1, v1), (k2, v2) in zip(theirs.items(), ours.items(), strict=False):
        if k1 != k2 or v1.shape != v2.shape:
            _fail(f"state_dict differs at `{k1}` {tuple(v1.shape)}: the spec has `{k2}` {tuple(v2.shape)}")
    if len(theirs) != len(ours):
        _fail(f"state_dict has {len(theirs)} entries; the spec's has {len(ours)}")
    original = copy.deepcopy(model).double()
    built.load_state_dict(original.state_dict())
    built = built.double()
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode in ("eval", "train"):
        original.train(mode == "train")
        built.train(mode == "train")
        with torch.no_grad():
            a, b = original(x), built(x)
        if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-9, atol=1e-9):
            _fail(
                f"outputs differ in {mode} mode: {tuple(a.shape)} vs {tuple(b.shape)}, "
                f"largest difference {(a - b).abs().max().item() if a.shape == b.shape else 'n/a'}"
            )


def _fail(message: str) -> None:
    raise ResdslError(
        error(
            "E905",
            "the imported spec does not rebuild the model: " + message,
            help="nothing was written; the model uses a form the importer misreads",
        )
    )
