"""The PyTorch back end: a checked :class:`~resdsl.ir.Network` as an ``nn.Module``.

Modules nest as the spec does: named layers are attributes, stages are ``nn.Sequential`` of
blocks, a projection shortcut is one child (``downsample`` unless the spec names it), so
``state_dict`` keys follow the spec. Each layer is the module the op table names, and so is
each step of a residual's shortcut (:meth:`resdsl.ops.shortcut.Shortcut.steps`: a projection's
conv and norm, option A's ``pad_channels``), with the same runtime classes generated files copy.

A scope's ``forward`` is Python source written from the IR once per distinct body (a
flat sequence of calls and merges, like a hand-written ``forward``: the steps of
:func:`resdsl.ir.forward.scope_forward`, written by the renderer generated files use too) and
compiled with ``exec``. There is no per-call interpretation, and the result can be scripted with
``torch.jit.script``, compiled with ``torch.compile(fullgraph=True)`` and exported.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from resdsl.ir import Layer, Network, Scope, sources_hash
from resdsl.ir import forward as ir_forward
from resdsl.ir import steps as ir_steps
from resdsl.ir.classnames import block_class_name, camel, network_class_name
from resdsl.ir.features import Checkpoint, Plan, requested, top_level
from resdsl.ir.init import scheme_of
from resdsl.ops import OPS, Ctor, channels_of
from resdsl.ops.shortcut import Shortcut
from resdsl.runtime import layers as runtime_layers
from resdsl.runtime.checkpointing import checkpoint_seq
from resdsl.runtime.init import apply_scheme
from resdsl.runtime.shortcuts import ZeroPadShortcut
from resdsl.runtime.weights import preprocess_images

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)

__all__ = ["ScopeModule", "ZeroPadShortcut", "build", "init_weights", "layer_module", "module_path"]


class ScopeModule(nn.Module):
    """A block or network body. Subclasses made by :func:`_scope_class` carry its ``forward``
    and are named after the block or network (``Bottleneck``, ``Resnet50``), so ``print(model)``
    and torch's own messages (``Error(s) in loading state_dict for Resnet50``, tracebacks)
    say which one."""

    def __init__(self, kind: str = "") -> None:
        super().__init__()
        self.kind = kind  # the block type or network name, for print(model)

    def extra_repr(self) -> str:
        return self.kind

    def preprocess(self, images: Tensor) -> Tensor:
        """``images`` (uint8 or 0..1 floats) as this network's input: resized and center-cropped
        to ``self.input_size``, normalised with the spec's ``mean`` and ``std``; a built network's
        root has these attributes, the generated module has the same function."""
        size: tuple[int, ...] = self.input_size  # type: ignore[assignment]
        return preprocess_images(images, getattr(self, "mean", None), getattr(self, "std", None), size)

    def __reduce__(self) -> tuple[Any, ...]:
        # the class is made at run time; pickling rebuilds it from its name and forward's source
        cls = type(self)
        return (_restore, (cls.resdsl_source, self.kind, cls.__name__), self.__dict__)  # type: ignore[attr-defined]


def _restore(source: str, kind: str, name: str | None = None) -> ScopeModule:
    cls = _scope_class(source, name or class_name(kind))
    return cls.__new__(cls)  # pickle then restores the instance's __dict__


_CLASSES: dict[tuple[str, str], type[ScopeModule]] = {}


def class_name(kind: str) -> str:
    """The class of a module made for ``block=NAME`` or ``network=NAME`` (see
    :mod:`resdsl.ir.classnames`), for pickles that did not record it."""
    what, _, name = kind.partition("=")
    return block_class_name(name) if what == "block" else camel(name)


def _scope_class(source: str, name: str) -> type[ScopeModule]:
    """A ScopeModule subclass called ``name`` whose ``forward`` is ``source``: one class per
    block or network and distinct body."""
    cls = _CLASSES.get((name, source))
    if cls is not None:
        return cls
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<resdsl {name} {digest}>"  # tracebacks name the block whose forward failed
    # TorchScript reads a method's source through linecache: keep it there for the process
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"torch": torch, "Tensor": Tensor, "checkpoint_seq": checkpoint_seq}
    exec(compile(source, filename, "exec"), namespace)
    forward = namespace["forward"]
    forward.__qualname__ = f"{name}.forward"
    cls = type(name, (ScopeModule,), {"forward": forward, "resdsl_source": source, "__qualname__": name})
    _CLASSES[(name, source)] = cls
    return cls


def shortcut_module(shortcut: Shortcut) -> nn.Module | None:
    """A residual's shortcut module, built from its realised description's steps through the
    op table as any layer is (None: the input is added as it is). A projection is an
    ``nn.Sequential`` of its steps (``downsample.0``, ``downsample.1``); option A's one step is
    the module itself (``ZeroPadShortcut``)."""
    steps = shortcut.steps()
    modules = []
    for step in steps:
        ctor = OPS[step.op].torch
        assert ctor is not None, f"op {step.op} builds no module"
        modules.append(_make(ctor(step.args, channels_of(step.in_shape), step.in_shape)))
    if len(steps) == 1 and steps[0].index is None:
        return modules[0]
    if not modules:
        return None
    return nn.Sequential(OrderedDict((str(step.key), module) for step, module in zip(steps, modules, strict=True)))


def layer_module(layer: Layer) -> nn.Module | None:
    """The module an op-table entry builds for ``layer`` (None: the op needs none)."""
    op = OPS[layer.op]
    if op.torch is None:
        return None
    assert layer.in_shapes, layer.id
    shape = layer.in_shapes[0]
    cin = math.prod(shape) if op.flatten_input and len(shape) == 3 else channels_of(shape)
    return _make(op.torch(dict(layer.attrs, inplace=layer.inplace), cin, shape))


def _make(ctor: Ctor) -> nn.Module:
    """The module of a constructor call: torch.nn's class, or resdsl's own (runtime.layers)."""
    home = runtime_layers if ctor.runtime else nn
    return getattr(home, ctor.cls)(*ctor.args, **dict(ctor.kwargs))


def own_param(layer: Layer) -> nn.Parameter:
    """The tensor of an op held as a parameter of its scope's module (layer_scale's gamma)."""
    form = OPS[layer.op].own_param
    assert form is not None and layer.in_shapes
    size = form.shape(layer.attrs, channels_of(layer.in_shapes[0]))
    return nn.Parameter(torch.full(size, float(form.fill(layer.attrs))))


def own_modules(layer: Layer) -> dict[str, Any]:
    """The attributes of an op whose modules belong to its scope's module (res2_hierarchy's
    ``width``, ``convs``, ``bns``, ``pool``): modules of the table's ops, ModuleLists of them,
    None where a module is absent, or plain values."""
    form = OPS[layer.op].own_modules
    assert form is not None and layer.in_shapes
    out: dict[str, Any] = {}
    for own in form.modules(layer.attrs, layer.in_shapes[0], lambda a, b: a - b):
        if own.op is None:
            out[own.attr] = own.value
            continue
        ctor = OPS[own.op].torch
        assert ctor is not None, f"op {own.op} builds no module"
        if not own.present:
            out[own.attr] = None
        elif own.count is None:
            out[own.attr] = _make(ctor(own.args, own.cin, own.in_shape))
        else:
            out[own.attr] = nn.ModuleList(_make(ctor(own.args, own.cin, own.in_shape)) for _ in range(own.count))
    return out


class _Builder:
    def __init__(self, network: Network) -> None:
        self.net = network

    def scope(self, scope: Scope, plan: Plan | None = None) -> nn.Module:
        """The module of one scope; ``plan`` (the network body only) adds feature outputs and
        checkpointed items. Its ``forward`` is :func:`resdsl.ir.forward.scope_forward`'s steps
        as :func:`resdsl.ir.forward.render` writes them."""
        if scope.kind == "stage":  # blocks by name: 0, 1, ... or the stage's prefix (b1, b2, ...)
            return nn.Sequential(OrderedDict((s.name, self.scope(s)) for s in scope.items if isinstance(s, Scope)))
        if scope.kind == "sequential":  # numbered children, run in order
            return nn.Sequential(*(self.scope(i) if isinstance(i, Scope) else self._module(i) for i in scope.items))
        forward = ir_forward.scope_forward(self.net, scope, plan)
        source = ir_forward.render(forward)
        named = block_class_name(scope.block.name) if scope.block is not None else network_class_name(self.net)
        module = _scope_class(source, named)(
            f"block={scope.block.name}" if scope.block is not None else f"network={scope.name}"
        )
        for name, child in self._children(scope, ir_forward.shortcuts(forward.steps)).items():
            if isinstance(child, nn.Parameter):  # an op held as a parameter (its key is its name)
                module.register_parameter(name, child)
            elif isinstance(child, nn.Module):
                module.add_module(name, child)
            else:  # an absent module (None) or a value that forward reads (res2_hierarchy's width)
                setattr(module, name, child)
        return module

    def _children(self, scope: Scope, shortcuts: set[str]) -> dict[str, Any]:
        """The modules (and parameters: ops held as one) the steps of ``scope`` call, by
        attribute, in statement order (the state_dict's key order); ``shortcuts``: the
        residuals' shortcut modules they call."""
        children: dict[str, Any] = {}
        for item in scope.items:
            if isinstance(item, Scope):
                children[item.name] = self.scope(item)
                continue
            op = OPS[item.op]
            if op.merge is not None:  # a residual's shortcut module, where its addition calls one
                if item.module in shortcuts and item.shortcut is not None:
                    module = shortcut_module(item.shortcut)
                    assert module is not None, item.id
                    children[item.module] = module
            elif op.own_param is not None:  # a tensor of this module, applied in the forward
                children[item.module] = own_param(item)
            elif op.own_modules is not None:  # modules of this module, named by the op
                children.update(own_modules(item))
            elif item.module not in children:  # anonymous stateless layers may share one
                module = layer_module(item)
                assert module is not None, f"op {item.op} builds no module"
                children[item.module] = module
        return children

    @staticmethod
    def _module(layer: Layer) -> nn.Module:
        module = layer_module(layer)
        assert module is not None, f"op {layer.op} builds no module"
        if isinstance(module, nn.Linear) and ir_steps.flattens(layer):  # same keys, flattens first
            return runtime_layers.FlattenLinear(module.in_features, module.out_features, bias=module.bias is not None)
        return module


def init_weights(model: nn.Module, network: Network, zero_init_residual: bool = False) -> None:
    """torchvision's initialisation: Kaiming normal (fan_out) convs, unit-gamma norms; or the
    scheme the network's ``meta { init = ... }`` names (:mod:`resdsl.ir.init`)."""
    scheme = scheme_of(network.meta)
    if scheme is not None:
        apply_scheme(model, scheme)
    for m in model.modules() if scheme is None else ():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, NORM_LAYERS) and m.weight is not None:
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for layer in network.layers():
            norm = network.last_norm(layer) if layer.shortcut is not None and layer.shortcut.adds else None
            if norm is not None:
                nn.init.constant_(model.get_submodule(module_path(norm)).weight, 0)  # type: ignore[arg-type]


def module_path(layer: Layer) -> str:
    """The path of the module that runs ``layer`` (shared anonymous modules have one path)."""
    scope_path = layer.scope.path if layer.scope is not None else ""
    return f"{scope_path}.{layer.module}" if scope_path else layer.module


def build(
    network: Network,
    zero_init_residual: bool | None = None,
    norm: str | None = None,
    features: Sequence[str] | None = None,
    checkpoint: Checkpoint = None,
) -> nn.Module:
    """An ``nn.Module`` for ``network``, initialised like torchvision's ResNets.

    ``features`` names top-level layers whose outputs the model returns, as a dict in network
    order, instead of the classifier's (everything after the last one is not built; see
    :mod:`resdsl.ir.features`); ``checkpoint`` (True: every stage) runs those top-level layers
    under gradient checkpointing, about sqrt(n) blocks per segment, while
    ``model.grad_checkpointing`` is true (see :mod:`resdsl.runtime.checkpointing`).
    """
    wanted = requested(network, features, checkpoint)
    full = network
    if wanted is not None:
        network = wanted.network
    options: dict[str, Any] = {**network.meta, **network.params}
    zero_init = bool(options.get("zero_init_residual", False) if zero_init_residual is None else zero_init_residual)
    chosen = options.get("norm")  # a string option; a layer-valued 'norm' parameter is the spec's own
    norm = str(norm or (chosen if isinstance(chosen, str) else "batchnorm"))
    if norm not in ("batchnorm", "syncbatchnorm"):
        raise ValueError(f"norm must be 'batchnorm' or 'syncbatchnorm', got {norm!r}")
    model = _Builder(network).scope(network.root, wanted)
    if norm == "syncbatchnorm":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    init_weights(model, network, zero_init)
    describe(model, network)
    if wanted is not None and wanted.features:
        model.feature_info = wanted.feature_info  # type: ignore[assignment]  # timm's, for detection necks
        built = dict(model.named_children())
        # the full network's layers that the feature model leaves out: their checkpoint keys are not loaded
        model.resdsl_dropped = tuple(n for n in top_level(full) if n not in built)  # type: ignore[assignment]
    if wanted is not None and wanted.checkpoint:
        model.grad_checkpointing = True  # type: ignore[assignment]  # turn off to run without
        model.checkpoint_reentrant = True  # type: ignore[assignment]  # turn off for autograd.grad
    return model


def describe(model: nn.Module, network: Network) -> None:
    """What travels with a built model: its network's name and spec hash, its preprocessing
    (``input_size``, ``mean``, ``std``), and the classifier that fine-tuning may replace."""
    from resdsl.ir.preprocessing import preprocessing

    prep = preprocessing(network)
    model.resdsl_network = network.name  # type: ignore[assignment]
    model.resdsl_spec_hash = sources_hash(network)  # type: ignore[assignment]
    children = dict(model.named_children())
    for key, value in (("input_size", prep.input_size), ("mean", prep.mean), ("std", prep.std)):
        if key not in children:  # a layer the spec names 'mean' keeps its name
            setattr(model, key, value)
    classifiers: list[str] = []
    out: Layer | None = network.output
    for _ in range(2 if network.head is not None else 1):  # the head, and the classifier it sits on
        if out is None or out.op != "linear":
            break
        classifiers.insert(0, module_path(out))
        source = network.port(out.id, 0)
        out = network.layer(source) if source is not None else None
    model.resdsl_classifiers = tuple(classifiers)  # type: ignore[assignment]
    model.resdsl_head = "head" if network.head is not None else None  # type: ignore[assignment]
