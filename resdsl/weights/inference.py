"""The inference build: the training network with eval-mode batchnorm folded into its convs.

:func:`build_inference` builds the training model (for its initialisation, or loads trained
weights into it), folds its state_dict with the plan of :func:`resdsl.ir.fold.fold_network`, and
loads the result into the module the PyTorch back end builds from the folded IR. The module is in
eval mode with gradients off and, by default, in ``channels_last`` memory format (the layout
oneDNN's CPU convolutions run fastest in) with float32 conv weights packed for oneDNN (once
per input size) and each conv fused with the ReLU and residual addition after it. With
``compile=True`` the folded module's forward is also compiled by inductor with ``freezing``
(weights become constants of the compiled graph, which inductor prepacks itself), on its
first call for that call's input shape, and each input size runs the faster of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from resdsl.backends.torch import build
from resdsl.diagnostics import ResdslError, Span, error
from resdsl.ir import Network
from resdsl.ir.fold import FoldPlan, fold_network, fold_state_dict, refuse_folded
from resdsl.runtime.packed import compile_frozen, missing_compiler, pack_convolutions
from resdsl.weights import Weights, load_read, read_weights, weights_name

__all__ = ["build_inference", "inference_model"]


def build_inference(
    network: Network,
    weights: Weights | None = None,
    channels_last: bool = True,
    zero_init_residual: bool | None = None,
    strip_prefix: str | None = None,
    compile: bool = False,
) -> nn.Module:
    """The inference ``nn.Module`` of ``network``. ``weights`` (a checkpoint file, or a state_dict
    of its training model) are loaded strictly into the training model, in their own dtype,
    checked and reported as for training (``model.resdsl_load_report``), then folded: a server
    must not keep a classifier at random initialisation, as fine-tuning may. Without weights,
    the training model's own initialisation is folded. Weights that are folded already (an
    inference model's state_dict) are refused with E801 rather than reported key by key.
    ``compile``: see :func:`inference_model`; a missing C++ compiler is E804, before anything is built."""
    if compile:
        require_compiler()
    folded, plan = fold_network(network)
    trained = build(network, zero_init_residual=zero_init_residual)
    report = None
    if weights is not None:
        found, metadata, ignored = read_weights(weights, strip_prefix, list(trained.state_dict()))
        refuse_folded(found, plan, weights_name(weights))
        trained.to(next((v.dtype for v in found.values() if v.is_floating_point()), None))
        report = load_read(trained, weights_name(weights), found, metadata, ignored, strict=True)
    with torch.device("meta"):  # no memory and no initialisation: every tensor comes from the weights
        model = build(folded)
    state = fold_state_dict(trained.state_dict(), plan)
    served = inference_model(model, state, plan, channels_last, network.input_shape, compile)
    if report is not None:
        served.resdsl_load_report = report  # type: ignore[assignment]
    return served


def inference_model(
    model: nn.Module,
    state: Mapping[str, Any],
    plan: FoldPlan,
    channels_last: bool = True,
    input_shape: tuple[int, ...] | None = None,
    compile: bool = False,
) -> nn.Module:
    """Load a folded ``state`` into ``model`` (which may live on the meta device: its tensors
    are replaced by ``state``'s) and make it ready to serve. ``channels_last`` with float32
    weights on the CPU also packs the convs' weights for oneDNN and fuses them (:mod:`packed`,
    measured at inputs of ``input_shape``). ``compile``: the forward is compiled in place by
    inductor with freezing (:func:`compile_frozen`: the module, its class and its state_dict
    keys stay as they are), and each input size runs the faster of that and the uncompiled build."""
    model.load_state_dict(state, assign=True)
    model.eval()
    model.requires_grad_(False)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it
        if input_shape is not None:
            pack_convolutions(model, input_shape)
    model.resdsl_fold_plan = plan  # type: ignore[assignment]
    if compile:
        compile_frozen(model)
    return model


def require_compiler() -> None:
    """E804 now, when there is no C++ compiler for inductor (:func:`missing_compiler`), rather
    than in the first call's traceback."""
    why = missing_compiler()
    if why is not None:
        raise ResdslError(
            error(
                "E804",
                why,
                Span("<compile>", 0, 0, 0, 0),
                help="install one (apt-get install g++), set CXX, or build without compile=True",
            )
        )
