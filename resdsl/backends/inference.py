"""The inference build: the training network with eval-mode batchnorm folded into its convs.

:func:`build_inference` builds the training model (for its initialisation, or takes trained
weights), folds its state_dict with the plan of :func:`resdsl.fold.fold_network`, and loads
the result into the module the PyTorch back end builds from the folded IR. The module is in
eval mode with gradients off and, by default, in ``channels_last`` memory format (the layout
oneDNN's CPU convolutions run fastest in) with float32 conv weights packed for oneDNN once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from resdsl.backends.packed import pack_convolutions
from resdsl.backends.torch import build
from resdsl.fold import FoldPlan, fold_network, fold_state_dict
from resdsl.ir import Network

__all__ = ["build_inference", "inference_model"]


def build_inference(
    network: Network,
    weights: Mapping[str, Any] | None = None,
    channels_last: bool = True,
    zero_init_residual: bool | None = None,
) -> nn.Module:
    """The inference ``nn.Module`` of ``network``; ``weights``: a state_dict of its training
    model (built by ``build_model``), folded here; without it, the training model's own
    initialisation, folded. Its dtype is the weights' (``load_state_dict(assign=True)``)."""
    if weights is None:
        weights = build(network, zero_init_residual=zero_init_residual).state_dict()
    folded, plan = fold_network(network)
    with torch.device("meta"):  # no memory and no initialisation: every tensor comes from the weights
        model = build(folded)
    return inference_model(model, fold_state_dict(weights, plan), plan, channels_last, network.input_shape)


def inference_model(
    model: nn.Module,
    state: Mapping[str, Any],
    plan: FoldPlan,
    channels_last: bool = True,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """Load a folded ``state`` into ``model`` (which may live on the meta device: its tensors
    are replaced by ``state``'s) and make it ready to serve. ``channels_last`` with float32
    weights on the CPU also packs the convs' weights for oneDNN once (:mod:`packed`), for
    inputs of ``input_shape``."""
    model.load_state_dict(state, assign=True)
    model.eval()
    model.requires_grad_(False)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it
        if input_shape is not None:
            pack_convolutions(model, input_shape)
    model.resdsl_fold_plan = plan  # type: ignore[assignment]
    return model
