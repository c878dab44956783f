"""The PyTorch back end: a checked :class:`~resdsl.ir.Network` as an ``nn.Module``.

Modules nest as the spec does: named layers are attributes, stages are ``nn.Sequential`` of
blocks, a projection shortcut is one child (``downsample`` unless the spec names it), so
``state_dict`` keys follow the spec. Each layer is the module the op table names, and the
shortcut modules come from :mod:`resdsl.backends.runtime`, the same code the generator
copies into generated files.

A scope's ``forward`` is Python source written from the IR once per distinct body (a
flat sequence of calls and merges, like a hand-written ``forward``) and compiled with
``exec``. There is no per-call interpretation, and the result can be scripted with
``torch.jit.script``, compiled with ``torch.compile(fullgraph=True)`` and exported.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from typing import Any

import torch
from torch import Tensor, nn

from resdsl.backends.runtime import ZeroPadShortcut, make_shortcut
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, Ctor

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)

__all__ = ["ScopeModule", "ZeroPadShortcut", "build", "init_weights", "layer_module", "module_path"]


class ScopeModule(nn.Module):
    """A block or network body. Subclasses made by :func:`_scope_class` carry its ``forward``."""

    def __init__(self, kind: str = "") -> None:
        super().__init__()
        self.kind = kind  # the block type or network name, for print(model)

    def extra_repr(self) -> str:
        return self.kind

    def __reduce__(self) -> tuple[Any, ...]:
        # the class is made at run time; pickling rebuilds it from its forward's source
        source = type(self).resdsl_source  # type: ignore[attr-defined]
        return (_restore, (source, self.kind), self.__dict__)


def _restore(source: str, kind: str) -> ScopeModule:
    cls = _scope_class(source)
    return cls.__new__(cls)  # pickle then restores the instance's __dict__


_CLASSES: dict[str, type[ScopeModule]] = {}


def _scope_class(source: str) -> type[ScopeModule]:
    """A ScopeModule subclass whose ``forward`` is ``source``: one class per distinct body."""
    cls = _CLASSES.get(source)
    if cls is not None:
        return cls
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<resdsl-scope-{digest}>"
    # TorchScript reads a method's source through linecache: keep it there for the process
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"torch": torch, "Tensor": Tensor}
    exec(compile(source, filename, "exec"), namespace)
    cls = type(f"Scope_{digest}", (ScopeModule,), {"forward": namespace["forward"], "resdsl_source": source})
    _CLASSES[source] = cls
    return cls


def layer_module(layer: Layer) -> nn.Module | None:
    """The module an op-table entry builds for ``layer`` (None: the op needs none)."""
    op = OPS[layer.op]
    if layer.shortcut is not None:  # a merge whose second operand passes through a shortcut
        s = layer.shortcut
        return make_shortcut(s.kind, s.in_channels, s.out_channels, s.stride, s.kind != "identity", s.norm)
    if op.torch is None:
        return None
    assert layer.in_shapes, layer.id
    shape = layer.in_shapes[0]
    cin = math.prod(shape) if op.flatten_input else shape[0]
    ctor: Ctor = op.torch(dict(layer.attrs, inplace=layer.inplace), cin, len(shape))
    return getattr(nn, ctor.cls)(*ctor.args, **dict(ctor.kwargs))


class _Builder:
    def __init__(self, network: Network) -> None:
        self.net = network

    def scope(self, scope: Scope) -> nn.Module:
        if scope.kind == "stage":
            return nn.Sequential(*(self.scope(s) for s in scope.items if isinstance(s, Scope)))
        children: dict[str, nn.Module] = {}
        lines: list[str] = []
        var: dict[str, str] = {scope.input: "x"}
        keep = set(self.net.shortcut_reads(scope))  # outputs a later merge reads: kept in s0, s1, ...
        if scope.input in keep:
            lines.append("s0 = x")
            var[scope.input] = "s0"
        saved = len(var) - 1 + (scope.input in keep)
        for item in scope.items:
            node = item.output if isinstance(item, Scope) else item.id
            if isinstance(item, Scope):
                children[item.name] = self.scope(item)
                lines.append(f"x = self.{item.name}(x)")
            else:
                lines.extend(self._step(item, var, children))
            var[node] = "x"
            if node in keep:
                var[node] = f"s{saved}"
                lines.append(f"s{saved} = x")
                saved += 1
        source = "def forward(self, x: Tensor) -> Tensor:\n" + "".join(f"    {line}\n" for line in lines)
        source += "    return x\n"
        module = _scope_class(source)(
            f"block={scope.block.name}" if scope.block is not None else f"network={scope.name}"
        )
        for name, child in children.items():
            module.add_module(name, child)
        return module

    def _step(self, layer: Layer, var: dict[str, str], children: dict[str, nn.Module]) -> list[str]:
        op = OPS[layer.op]
        inputs = [var[p] for p in self.net.inputs(layer.id)]
        if op.merge is not None:  # a multi-input op: main (x) combined with another operand
            other = var[self.net.shortcut_source(layer)] if layer.shortcut is not None else inputs[1]
            module = layer_module(layer)
            if module is not None:
                children[layer.module] = module
                other = f"self.{layer.module}({other})"
            if layer.inplace:
                return [f"x {op.merge}= {other}"]
            return [f"x = x {op.merge} {other}"]
        lines = []
        if op.flatten_input and len(layer.in_shapes[0]) > 1:
            lines.append("x = torch.flatten(x, 1)")
        if layer.module not in children:
            module = layer_module(layer)
            assert module is not None, f"op {layer.op} builds no module"
            children[layer.module] = module
        lines.append(f"x = self.{layer.module}(x)")
        return lines


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
    model = _Builder(network).scope(network.root)
    if norm == "syncbatchnorm":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    init_weights(model, network, zero_init)
    model.resdsl_network = network.name  # type: ignore[assignment]
    return model
