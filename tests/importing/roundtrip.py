"""The check every importer test makes on its own, beside the importer's: the spec's model has the
model's state_dict listing and float64 outputs in eval and in train mode."""

from __future__ import annotations

import copy

import torch
from torch import nn

import resdsl


def same_model(model: nn.Module, source: str, shape: tuple[int, int, int]) -> None:
    """``source`` rebuilds ``model``: keys, shapes and order, then outputs within 1e-9 in float64."""
    built = resdsl.build_model(source, input_shape=shape)
    listing = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert [(k, tuple(v.shape)) for k, v in built.state_dict().items()] == listing
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        theirs = copy.deepcopy(model).double().train(train)
        ours = copy.deepcopy(built).double()
        ours.load_state_dict(theirs.state_dict())
        ours.train(train)
        with torch.no_grad():  # the same seed for each: dropout and drop path draw the same masks
            torch.manual_seed(0)
            a = theirs(x)
            torch.manual_seed(0)
            b = ours(x)
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-9, atol=1e-9), f"train={train}"


def import_and_check(model: nn.Module, shape: tuple[int, int, int], name: str | None = None) -> str:
    """import_model's spec for ``model``, checked by :func:`same_model`."""
    source = resdsl.import_model(model, name, shape)
    same_model(model, source, shape)
    return source
