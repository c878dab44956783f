"""Leaf torch modules as resdsl op calls: (op, arguments) with only the non-default arguments."""

from __future__ import annotations

from torch import nn

from resdsl.importing.layout import channels_last_op
from resdsl.importing.library import defaults, runtime_op
from resdsl.importing.norms import is_timm_norm, timm_norm
from resdsl.importing.tokens import token_layer
from resdsl.importing.trace import refuse

# the defaults of the op table's arguments the importer leaves out (docs/language.md, "Ops")
DEFAULTS: dict[str, dict[str, object]] = {
    "conv": {"s": 1, "p": 0, "d": 1, "groups": 1, "bias": False},
    "batchnorm": {"eps": 1e-5, "momentum": 0.1},
    "linear": {"bias": True},
    "dropout": {"p": 0.5},
    "drop_path": {"p": 0.0, "scale_by_keep": True},
}
DEFAULTS |= {op: defaults(op) for op in ("res2_hierarchy", "radix_sum", "radix_softmax", "radix_combine")}


def _one(value: object) -> object:
    """A pair of equal sizes (torch's (3, 3)) as one number."""
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(value)
        return value[0]
    return value


def op_of(module: nn.Module, path: str) -> tuple[str, dict[str, object]]:
    """The op and its arguments for a leaf module; E903 for a module the table has no op for."""
    timm = timm_norm(module, path)
    if timm is not None:
        return timm
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        args: dict[str, object] = {"out": module.out_channels, "k": _one(module.kernel_size)}
        for key, value, default in (
            ("s", _one(module.stride), 1),
            ("p", _one(module.padding), 0),
            ("d", _one(module.dilation), 1),
            ("groups", module.groups, 1),
            ("bias", module.bias is not None, False),
        ):
            if value != default:
                args[key] = value
        return "conv", args
    if type(module) is nn.BatchNorm2d and module.affine and module.track_running_stats:
        return "batchnorm", _changed({"eps": module.eps, "momentum": module.momentum}, {"eps": 1e-5, "momentum": 0.1})
    if type(module) in _ACTIVATIONS and getattr(module, "approximate", "none") == "none":
        return _ACTIVATIONS[type(module)], {}
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", _changed({"slope": module.negative_slope}, {"slope": 0.01})
    if isinstance(module, nn.GroupNorm) and module.affine:
        return "groupnorm", {"groups": module.num_groups} | _changed({"eps": module.eps}, {"eps": 1e-5})
    if _is_drop_path(module):
        return "drop_path", _changed(
            {
                "p": float(module.drop_prob),  # type: ignore[arg-type]
                "scale_by_keep": module.scale_by_keep,
            },
            {"p": 0.0, "scale_by_keep": True},
        )
    if _is_stochastic_depth(module):  # torchvision's: drop_path, scaled by 1 / (1 - p)
        return "drop_path", _changed({"p": float(module.p)}, {"p": 0.0})  # type: ignore[arg-type]
    if isinstance(module, nn.Identity):
        return "identity", {}
    if isinstance(module, nn.Flatten) and module.start_dim == 1:
        return "flatten", {}
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d) and _one(module.padding) is not None:
        return _pool(module)
    if isinstance(module, nn.AdaptiveAvgPool2d) and _one(module.output_size) == 1:
        return "global_avgpool", {}
    if isinstance(module, nn.Linear):
        linear: dict[str, object] = {"out": module.out_features}
        return "linear", linear | ({} if module.bias is not None else {"bias": False})
    if isinstance(module, nn.Dropout):
        return "dropout", _changed({"p": module.p}, {"p": 0.5})
    if _last_dim_norm(module):  # over the last dimension: the channels of tokens
        return channels_last_op(module)  # type: ignore[return-value]
    found = token_layer(module) or runtime_op(module)
    if found is not None:  # timm's RadixSoftmax
        return found
    raise refuse(
        "E903",
        f"module `{path}` ({type(module).__module__}.{type(module).__qualname__}) has no op in resdsl's table",
        module,
        path,
        "`resdsl ops` lists the ops; a module written of them is imported as a block",
    )


_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Sigmoid: "sigmoid",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
}


def _is_drop_path(module: nn.Module) -> bool:
    """timm's DropPath (and resdsl's generated copy of it): stochastic depth, no state."""
    return (
        type(module).__name__ == "DropPath"
        and isinstance(getattr(module, "drop_prob", None), int | float)
        and isinstance(getattr(module, "scale_by_keep", True), bool)
        and not module.state_dict()
    )


def _is_stochastic_depth(module: nn.Module) -> bool:
    """torchvision's StochasticDepth in "row" mode (a sample's whole branch dropped, the kept
    ones scaled by 1 / (1 - p)): drop_path."""
    return (
        type(module).__name__ == "StochasticDepth"
        and getattr(module, "mode", None) == "row"
        and isinstance(getattr(module, "p", None), int | float)
        and not module.state_dict()
    )


def _changed(values: dict[str, object], defaults: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in values.items() if v != defaults[k]}


def _pool(module: nn.MaxPool2d | nn.AvgPool2d) -> tuple[str, dict[str, object]]:
    k, s = _one(module.kernel_size), _one(module.stride)
    args: dict[str, object] = {"k": k}
    if s != k:
        args["s"] = s
    if _one(module.padding):
        args["p"] = _one(module.padding)
    if module.ceil_mode:
        args["ceil"] = True
    if isinstance(module, nn.AvgPool2d) and not module.count_include_pad:
        args["count_include_pad"] = False
    return ("maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"), args


def is_leaf(module: nn.Module) -> bool:
    """A module of torch.nn itself (not a container), a DropPath, or a module that computes as one
    of resdsl's runtime modules (timm's RadixSoftmax, PatchEmbed, Attention): one op."""
    if isinstance(module, nn.Sequential | nn.ModuleList | nn.ModuleDict):
        return False
    if type(module).__module__.startswith("torch.nn.modules") or _is_drop_path(module) or is_timm_norm(module):
        return True
    if _is_stochastic_depth(module):
        return True
    return _last_dim_norm(module) or token_layer(module) is not None or runtime_op(module) is not None


def _last_dim_norm(module: nn.Module) -> bool:
    """A LayerNorm (torch's, or a subclass such as timm's that calls ``F.layer_norm``) over the
    last dimension of its input, as tokens' channels are."""
    return isinstance(module, nn.LayerNorm) and channels_last_op(module) is not None
