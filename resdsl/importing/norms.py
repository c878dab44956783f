"""Layers that are one or two ops of the table although torch does not ship them: timm's
LayerNorm2d (a LayerNorm over the channels of a map, written by permuting or channels-last),
a Linear over the channels at every position (resdsl's PointwiseLinear: ``pointwise_linear``),
a Linear or GroupNorm subclass that calls ``F.linear`` or ``F.group_norm`` itself (timm's Linear
and GroupNorm: ``linear``, ``groupnorm``),
timm's activation modules that call a torch function (its GELU, Sigmoid)
and BatchNormAct2d (a BatchNorm2d that also runs its ``drop`` and ``act`` children, so that its
weights keep batchnorm's keys). They are recognised by what they compute, not by their name
alone: the first two are run on a probe, BatchNormAct2d's children must be ops."""

from __future__ import annotations

import torch
from torch import nn

from resdsl.diagnostics import ResdslError
from resdsl.importing.layout import linear_args
from resdsl.importing.trace import trace

Op = tuple[str, dict[str, object]]


def layernorm2d(module: nn.Module) -> dict[str, object] | None:
    """``layernorm``'s arguments for a LayerNorm subclass that normalises an N x C x H x W map
    over C at every position (timm's LayerNorm2d); None for anything else."""
    if not isinstance(module, nn.LayerNorm) or type(module).__module__.startswith("torch.nn"):
        return None
    if len(module.normalized_shape) != 1 or not module.elementwise_affine or module.bias is None:
        return None
    c = module.normalized_shape[0]
    probe = torch.randn(2, c, 3, 3, generator=torch.Generator().manual_seed(0), dtype=module.weight.dtype)
    weight = torch.randn(c, generator=torch.Generator().manual_seed(1), dtype=module.weight.dtype)
    expected = torch.nn.functional.layer_norm(
        probe.permute(0, 2, 3, 1), (c,), weight, module.bias.detach(), module.eps
    ).permute(0, 3, 1, 2)
    saved = module.weight.detach().clone()
    try:
        with torch.no_grad():
            module.weight.copy_(weight)
            out = module(probe)
    except Exception:
        return None
    finally:
        with torch.no_grad():
            module.weight.copy_(saved)
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape or not torch.allclose(out, expected):
        return None
    return {} if module.eps == 1e-5 else {"eps": module.eps}


def pointwise_linear(module: nn.Module) -> dict[str, object] | None:
    """``pointwise_linear``'s arguments for a Linear subclass that maps the channels of an
    N x C x H x W map at every position; None for anything else."""
    if not isinstance(module, nn.Linear) or type(module).__module__.startswith("torch.nn"):
        return None
    probe = torch.randn(2, module.in_features, 3, 3, generator=torch.Generator().manual_seed(0))
    probe = probe.to(module.weight.dtype)
    try:
        with torch.no_grad():
            out = module(probe)
            expected = torch.nn.functional.linear(probe.permute(0, 2, 3, 1), module.weight, module.bias)
    except Exception:
        return None
    expected = expected.permute(0, 3, 1, 2)
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape or not torch.allclose(out, expected):
        return None
    return linear_args(module)


def linear_subclass(module: nn.Module) -> dict[str, object] | None:
    """``linear``'s arguments for a Linear subclass that computes ``F.linear(x, weight, bias)``
    on a batch of vectors (timm's Linear, written so for AMP and TorchScript); None otherwise."""
    if not isinstance(module, nn.Linear) or not _computes_as_base(module, nn.Linear, (2, module.in_features)):
        return None
    return linear_args(module)


def groupnorm_subclass(module: nn.Module) -> dict[str, object] | None:
    """``groupnorm``'s arguments for a GroupNorm subclass that computes what nn.GroupNorm does
    (timm's GroupNorm, which calls ``F.group_norm`` itself); None otherwise."""
    if not isinstance(module, nn.GroupNorm) or not module.affine:
        return None
    if not _computes_as_base(module, nn.GroupNorm, (2, module.num_channels, 3, 3)):
        return None
    return {"groups": module.num_groups} | ({} if module.eps == 1e-5 else {"eps": module.eps})


def _computes_as_base(module: nn.Module, base: type[nn.Module], shape: tuple[int, ...]) -> bool:
    """Whether ``module``, of a subclass of torch's ``base`` from outside torch, gives on a probe
    of ``shape`` exactly what ``base``'s own forward gives with the same weights."""
    if type(module).__module__.startswith("torch.nn"):
        return False
    weight = next(module.parameters(), None)
    dtype = weight.dtype if weight is not None else torch.float32
    probe = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    try:
        with torch.no_grad():
            out, expected = module(probe), base.forward(module, probe)
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.equal(out, expected)


def _is_batchnorm_act(module: nn.Module) -> bool:
    """A BatchNorm2d subclass of timm's kind: children ``drop`` (no-op) and ``act`` only."""
    if not isinstance(module, nn.BatchNorm2d) or type(module) is nn.BatchNorm2d:
        return False
    children = dict(module.named_children())
    drop = children.get("drop")
    no_drop = isinstance(drop, nn.Identity) or (isinstance(drop, nn.Dropout) and drop.p == 0)
    return set(children) == {"drop", "act"} and no_drop and module.affine and module.track_running_stats


def plain_batchnorm(module: nn.Module) -> bool:
    """nn.BatchNorm2d, or timm's BatchNormAct2d without an activation (``apply_act=False``)."""
    if type(module) is nn.BatchNorm2d:
        return True
    return _is_batchnorm_act(module) and isinstance(module.get_submodule("act"), nn.Identity)


def batchnorm_act(module: nn.Module) -> tuple[Op, nn.Module | None] | None:
    """timm's BatchNormAct2d as ``batchnorm`` and its activation module (None for nn.Identity,
    made an op by the caller); None for any other module."""
    if not _is_batchnorm_act(module):
        return None
    args: dict[str, object] = {}
    if module.eps != 1e-5:
        args["eps"] = module.eps
    if module.momentum != 0.1:
        args["momentum"] = module.momentum
    act = module.get_submodule("act")
    return ("batchnorm", args), None if isinstance(act, nn.Identity) else act


_ONE_OP = frozenset({"relu", "sigmoid", "silu", "gelu"})


def one_function(module: nn.Module) -> str | None:
    """The activation a stateless module without children applies as a torch function (timm's
    GELU: ``F.gelu(x)``; its Sigmoid: ``x.sigmoid()``); None for anything else."""
    if type(module).__module__.startswith("torch.nn") or module.state_dict() or any(True for _ in module.children()):
        return None
    try:
        steps = trace(module, "").steps
    except ResdslError:
        return None
    return steps[0].kind if len(steps) == 1 and steps[0].kind in _ONE_OP else None


# Each layer read as one op by running it: the op and its recogniser (its arguments, or None).
_ONE_OP_LAYERS = (
    ("layernorm", layernorm2d),
    ("pointwise_linear", pointwise_linear),
    ("linear", linear_subclass),
    ("groupnorm", groupnorm_subclass),
)


def timm_norm(module: nn.Module, path: str) -> Op | None:
    """The one op such a layer is (LayerNorm2d, PointwiseLinear, timm's Linear or GroupNorm, an
    activation module of timm's, BatchNormAct2d without an activation)."""
    for op, recognise in _ONE_OP_LAYERS:
        args = recognise(module)
        if args is not None:
            return op, args
    function = one_function(module)
    if function is not None:
        return function, {}
    parts = batchnorm_act(module)
    return parts[0] if parts is not None and parts[1] is None else None


def is_timm_norm(module: nn.Module) -> bool:
    """A timm norm layer the importer reads as ops (:func:`timm_norm`, :func:`batchnorm_act`)."""
    if _is_batchnorm_act(module) or any(recognise(module) is not None for _, recognise in _ONE_OP_LAYERS):
        return True
    return one_function(module) is not None


def scale_init(gamma: torch.Tensor) -> dict[str, object]:
    """``layer_scale``'s arguments: its ``init`` where the parameter is still one value (the
    weights are loaded anyway, so a trained scale keeps the op's default)."""
    gamma = gamma.detach()
    dims: dict[str, object] = {"dims": 3} if gamma.dim() == 3 else {}  # torchvision's (C, 1, 1)
    if not gamma.numel() or not bool((gamma == gamma.flatten()[0]).all()):
        return dims
    value = float(f"{float(gamma.flatten()[0]):.7g}")  # float32's digits: 1e-06, not 9.99999997e-07
    return ({"init": value} if value != 1e-6 else {}) | dims
