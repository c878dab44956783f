"""Channels-last stretches of a forward (timm's ConvNeXt blocks without ``conv_mlp``:
``x.permute(0, 2, 3, 1)``, a LayerNorm and Linear layers over the last dimension,
``x.permute(0, 3, 1, 2)``). The language keeps maps N x C x H x W: within such a stretch a
LayerNorm over the last dimension is ``layernorm`` (over the channels) and a Linear is
``pointwise_linear``, the same functions with the same weights."""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

TO_LAST, TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)
# ops that compute the same on a channels-last map; a LayerNorm and a Linear become their
# channels-first ops there (:func:`channels_last_op`)
LAYOUT_FREE = frozenset(
    {*("relu", "relu6", "silu", "gelu", "sigmoid", "hardswish", "hardsigmoid"), "dropout", "identity"}
)


def permute_of(node: torch.fx.Node) -> str | None:
    """ "channels_last" or "channels_first" for a permute between the two layouts; else None."""
    if node.op not in ("call_method", "call_function") or getattr(node.target, "__name__", node.target) != "permute":
        return None
    dims = node.args[1:] if len(node.args) > 2 else (node.args[1] if len(node.args) > 1 else ())
    dims = tuple(dims) if isinstance(dims, list | tuple) else ()  # type: ignore[arg-type]
    return {TO_LAST: "channels_last", TO_FIRST: "channels_first"}.get(dims)  # type: ignore[arg-type]


def channels_last_op(module: nn.Module) -> tuple[str, dict[str, object]] | None:
    """The op a layer is when it runs on a channels-last map: a LayerNorm over the last
    dimension (torch's or a subclass that computes it) or a Linear; None for other layers."""
    if isinstance(module, nn.Linear) and _same(module, nn.functional.linear, module.weight, module.bias):
        return "pointwise_linear", linear_args(module)
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1 and module.elementwise_affine:
        size = module.normalized_shape

        def norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return nn.functional.layer_norm(x, size, w, b, module.eps)

        if module.bias is not None and _same(module, norm, module.weight, module.bias):
            return "layernorm", {} if module.eps == 1e-5 else {"eps": module.eps}
    return None


def linear_args(module: nn.Linear) -> dict[str, object]:
    """``pointwise_linear``'s arguments for a Linear: its width, and ``bias=false`` where it has none."""
    args: dict[str, object] = {"out": module.out_features}
    if module.bias is None:
        args["bias"] = False
    return args


def _same(module: nn.Module, function: object, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether ``module`` computes ``function(x, weight, bias)`` on a channels-last probe."""
    features = weight.shape[-1]
    probe = torch.randn(2, 3, 3, features, generator=torch.Generator().manual_seed(0)).to(weight.dtype)
    try:
        with torch.no_grad():
            out, expected = module(probe), function(probe, weight, bias)  # type: ignore[operator]
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.allclose(out, expected)


def permute_module(module: nn.Module) -> str | None:
    """ "channels_last" or "channels_first" for a stateless module that only permutes a map between
    the two layouts (torchvision's ``Permute([0, 2, 3, 1])`` inside ConvNeXt's CNBlock.block),
    found by running it; None for any other module."""
    if (
        isinstance(module, nn.Sequential | nn.ModuleList | nn.ModuleDict)
        or module.state_dict()
        or list(module.children())
    ):
        return None
    probe = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception:
        return None
    for dims, layout in ((TO_LAST, "channels_last"), (TO_FIRST, "channels_first")):
        if isinstance(out, torch.Tensor) and out.shape == probe.permute(dims).shape:
            if torch.equal(out, probe.permute(dims)):
                return layout
    return None
