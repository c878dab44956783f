"""The PyTorch back end: a checked :class:`~resdsl.ir.Network` as an ``nn.Module``.

Modules nest as the spec does: named layers are attributes, stages are ``nn.Sequential``
of blocks, a projection shortcut is one child (``downsample`` unless the spec names it),
so ``state_dict`` keys follow the spec. Each layer is the ``torch.nn`` class the op table
names, so train/eval behaviour is torch's own. A scope's ``forward`` runs a precomputed
list of steps; there is no per-call interpretation of the graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, Ctor, Shortcut

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)

# step kinds
_CALL, _RESIDUAL = 0, 1


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by striding and append zero channels; no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class ScopeModule(nn.Module):
    """A block or network body: its layers in statement order plus residual additions.

    ``steps`` is a tuple of ``(kind, module name, flatten, save slot, source slot, in place)``
    computed once from the IR. Slot 0 holds the scope input; a residual reads its shortcut
    input from a slot and stores its sum in the slot the next residual branches from.
    """

    def __init__(
        self, steps: Sequence[tuple[int, str | None, bool, int, int, bool]], slots: int, kind: str = ""
    ) -> None:
        super().__init__()
        self.steps = tuple(steps)
        self.slots = slots
        self.kind = kind  # the block type or network name, for print(model)

    def extra_repr(self) -> str:
        return self.kind

    def forward(self, x: Tensor) -> Tensor:
        saved: list[Tensor] = [x] * self.slots
        for kind, name, flatten, save, source, inplace in self.steps:
            if kind == _CALL:
                if flatten:
                    x = torch.flatten(x, 1)
                x = getattr(self, name)(x)  # type: ignore[arg-type]
            else:
                shortcut = saved[source] if name is None else getattr(self, name)(saved[source])
                x = x.add_(shortcut) if inplace else x + shortcut
            if save >= 0:
                saved[save] = x
        return x


def _make(ctor: Ctor, norm: str) -> nn.Module:
    cls = ctor.cls
    if norm == "syncbatchnorm" and cls == "BatchNorm2d":
        cls = "SyncBatchNorm"
    return getattr(nn, cls)(*ctor.args, **dict(ctor.kwargs))


def shortcut_module(shortcut: Shortcut, norm: str = "batchnorm") -> nn.Module | None:
    """The module that maps the branch input onto the main branch's shape (None: identity)."""
    if shortcut.kind == "identity":
        return None
    if shortcut.kind == "zero_pad":
        return ZeroPadShortcut(shortcut.stride, shortcut.out_channels - shortcut.in_channels)
    pooled = shortcut.kind == "avgpool_projection"  # ResNet-D: the pool strides, the conv does not
    conv = nn.Conv2d(
        shortcut.in_channels, shortcut.out_channels, 1, stride=1 if pooled else shortcut.stride, bias=False
    )
    layers: list[nn.Module] = (
        [conv, _make(Ctor("BatchNorm2d", (shortcut.out_channels,)), norm)] if shortcut.norm else [conv]
    )
    if pooled:
        pool: nn.Module = (
            nn.AvgPool2d(shortcut.stride, shortcut.stride, ceil_mode=True, count_include_pad=False)
            if shortcut.stride > 1
            else nn.Identity()
        )
        layers.insert(0, pool)
    return nn.Sequential(*layers)


def layer_module(layer: Layer, norm: str = "batchnorm") -> nn.Module:
    op = OPS[layer.op]
    assert op.torch is not None and layer.in_shapes, layer.id
    shape = layer.in_shapes[0]
    cin = math.prod(shape) if op.flatten_input else shape[0]
    attrs = dict(layer.attrs, inplace=layer.inplace)
    return _make(op.torch(attrs, cin, len(shape)), norm)


class _Builder:
    def __init__(self, network: Network, norm: str) -> None:
        self.net = network
        self.norm = norm

    def scope(self, scope: Scope) -> nn.Module:
        if scope.kind == "stage":
            return nn.Sequential(*(self.scope(s) for s in scope.items if isinstance(s, Scope)))
        steps: list[tuple[int, str | None, bool, int, int, bool]] = []
        children: list[tuple[str, nn.Module]] = []
        registered: set[str] = set()
        slot_of: dict[str, int] = {scope.input: 0}
        for node_id in self.net.shortcut_reads(scope):
            slot_of.setdefault(node_id, len(slot_of))
        for item in scope.items:
            if isinstance(item, Scope):
                children.append((item.name, self.scope(item)))
                out = item.output
                steps.append((_CALL, item.name, False, slot_of.get(out, -1), 0, False))
                continue
            save = slot_of.get(item.id, -1)
            if item.op == "residual":
                shortcut = item.shortcut
                assert shortcut is not None
                source = self.net.shortcut_source(item)
                module = shortcut_module(shortcut, self.norm)
                name = None
                if module is not None:
                    name = item.module
                    children.append((name, module))
                steps.append((_RESIDUAL, name, False, save, slot_of[source], item.inplace))
                continue
            if item.module not in registered:
                registered.add(item.module)
                children.append((item.module, layer_module(item, self.norm)))
            flatten = OPS[item.op].flatten_input and len(item.in_shapes[0]) > 1
            steps.append((_CALL, item.module, flatten, save, 0, False))
        kind = f"block={scope.block.name}" if scope.block is not None else f"network={scope.name}"
        module = ScopeModule(steps, len(slot_of), kind)
        for name, child in children:
            module.add_module(name, child)
        return module


def init_weights(model: nn.Module, network: Network, zero_init_residual: bool = False) -> None:
    """torchvision's initialisation: Kaiming normal (fan_out) convs, unit-gamma norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, NORM_LAYERS) and m.weight is not None:
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for layer in network.layers():
            norm = network.last_norm(layer) if layer.op == "residual" else None
            if norm is not None:
                nn.init.constant_(model.get_submodule(module_path(norm)).weight, 0)  # type: ignore[arg-type]


def module_path(layer: Layer) -> str:
    """The path of the module that runs ``layer`` (shared anonymous modules have one path)."""
    scope_path = layer.scope.path if layer.scope is not None else ""
    return f"{scope_path}.{layer.module}" if scope_path else layer.module


def build(network: Network, zero_init_residual: bool | None = None, norm: str | None = None) -> nn.Module:
    """An ``nn.Module`` for ``network``, initialised like torchvision's ResNets."""
    options: dict[str, Any] = {**network.meta, **network.params}
    zero_init = bool(options.get("zero_init_residual", False) if zero_init_residual is None else zero_init_residual)
    norm = str(norm or options.get("norm", "batchnorm"))
    if norm not in ("batchnorm", "syncbatchnorm"):
        raise ValueError(f"norm must be 'batchnorm' or 'syncbatchnorm', got {norm!r}")
    model = _Builder(network, norm).scope(network.root)
    init_weights(model, network, zero_init)
    model.resdsl_network = network.name  # type: ignore[assignment]
    return model
