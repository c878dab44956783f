"""The PyTorch back end: a checked :class:`~resdsl.ir.Network` as an ``nn.Module``.

Modules nest as the spec does: named layers are attributes, stages are ``nn.Sequential`` of
blocks, a projection shortcut is one child (``downsample`` unless the spec names it), so
``state_dict`` keys follow the spec. Each layer is the module the op table names, and so is
each step of a residual's shortcut (:meth:`resdsl.ops.shortcut.Shortcut.steps`: a projection's
conv and norm, option A's ``pad_channels``), with the same runtime classes generated files copy.

A scope's ``forward`` is Python source written from the IR once per distinct body (a
flat sequence of calls and merges, like a hand-written ``forward``) and compiled with
``exec``. There is no per-call interpretation, and the result can be scripted with
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
from resdsl.ir.classnames import block_class_name, camel, network_class_name
from resdsl.ir.features import Checkpoint, Plan, group_runs, requested, top_level
from resdsl.ops import OPS, Ctor, Merge
from resdsl.ops.shortcut import Shortcut
from resdsl.runtime import layers as runtime_layers
from resdsl.runtime.checkpointing import checkpoint_seq
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
        modules.append(_make(ctor(step.args, step.in_shape[0], step.in_shape)))
    if len(steps) == 1 and steps[0].index is None:
        return modules[0]
    return nn.Sequential(*modules) if modules else None


def layer_module(layer: Layer) -> nn.Module | None:
    """The module an op-table entry builds for ``layer`` (None: the op needs none)."""
    op = OPS[layer.op]
    if op.torch is None:
        return None
    assert layer.in_shapes, layer.id
    shape = layer.in_shapes[0]
    cin = math.prod(shape) if op.flatten_input else shape[0]
    return _make(op.torch(dict(layer.attrs, inplace=layer.inplace), cin, shape))


def _make(ctor: Ctor) -> nn.Module:
    """The module of a constructor call: torch.nn's class, or resdsl's own (runtime.layers)."""
    home = runtime_layers if ctor.runtime else nn
    return getattr(home, ctor.cls)(*ctor.args, **dict(ctor.kwargs))


def own_param(layer: Layer) -> nn.Parameter:
    """The tensor of an op held as a parameter of its scope's module (layer_scale's gamma)."""
    form = OPS[layer.op].own_param
    assert form is not None and layer.in_shapes
    size = form.shape(layer.attrs, layer.in_shapes[0][0])
    return nn.Parameter(torch.full(size, float(form.fill(layer.attrs))))


class _Builder:
    def __init__(self, network: Network) -> None:
        self.net = network

    def scope(self, scope: Scope, plan: Plan | None = None) -> nn.Module:
        """The module of one scope; ``plan`` (the network body only) adds feature outputs and
        checkpointed items."""
        if scope.kind == "stage":  # blocks by name: 0, 1, ... or the stage's prefix (b1, b2, ...)
            return nn.Sequential(OrderedDict((s.name, self.scope(s)) for s in scope.items if isinstance(s, Scope)))
        if scope.kind == "sequential":  # numbered children, run in order
            return nn.Sequential(*(self.scope(i) if isinstance(i, Scope) else self._module(i) for i in scope.items))
        children: dict[str, nn.Module | nn.Parameter] = {}  # a parameter: an op held as one
        steps: list[tuple[str, list[str], str]] = []  # (kind for group_runs, lines, checkpointed last line)
        keep = self._kept(scope)  # outputs read after x moved on: kept in s0, s1, ...
        saved: dict[str, str] = {}
        capture = plan.capture if plan is not None else {}
        checkpointed = set(plan.checkpoint) if plan is not None else set()
        holds = scope.input  # the node whose output x holds
        for item in [None, *scope.items]:
            var = {**saved, holds: "x"}
            if isinstance(item, Scope):
                children[item.name] = self.scope(item)
                modules = f"self.{item.name}" if item.kind == "stage" else f"[self.{item.name}]"
                kind = "checkpoint" if item.name in checkpointed else "other"
                source = var[item.input]
                steps.append((kind, [f"x = self.{item.name}({source})"], _checkpointed(modules, source)))
            elif item is not None:
                lines = self._step(item, var, children)
                if item.name in checkpointed and not item.anonymous:
                    steps.append(("other", lines[:-1], ""))
                    steps.append(("checkpoint", lines[-1:], _checkpointed(f"[self.{item.module}]", "x")))
                else:
                    steps.append(("other", lines, ""))
            holds = scope.input if item is None else item.output if isinstance(item, Scope) else item.id
            if holds in capture:
                feature = capture[holds]
                value = "x.clone()" if feature.copy else "x"
                steps.append(("passive", [f"features[{feature.name!r}] = {value}"], ""))
            if holds in keep:
                saved[holds] = f"s{len(saved)}"
                steps.append(("passive", [f"{saved[holds]} = x"], ""))
        returns = "x"
        lines = []
        if capture:
            returns = "features"
            lines.append("features: dict[str, Tensor] = {}")
        runs = {start: end for start, end in group_runs([kind for kind, _, _ in steps])}
        i = 0
        while i < len(steps):
            end = runs.get(i, i + 1)
            if end > i + 1 or steps[i][0] == "checkpoint":  # one branch checkpoints, the other not
                group = steps[i:end]
                lines.append("if self.grad_checkpointing and not torch.jit.is_scripting():")
                for kind, body, alt in group:
                    lines += [f"    {line}" for line in ([*body[:-1], alt] if kind == "checkpoint" else body)]
                lines.append("else:")
                lines += [f"    {line}" for _, body, _ in group for line in body]
            else:
                lines += steps[i][1]
            i = end
        header = f"def forward(self, x: Tensor) -> {'dict[str, Tensor]' if capture else 'Tensor'}:\n"
        source = header + "".join(f"    {line}\n" for line in lines) + f"    return {returns}\n"
        named = block_class_name(scope.block.name) if scope.block is not None else network_class_name(self.net)
        module = _scope_class(source, named)(
            f"block={scope.block.name}" if scope.block is not None else f"network={scope.name}"
        )
        for name, child in children.items():
            if isinstance(child, nn.Parameter):  # an op held as a parameter (its key is its name)
                module.register_parameter(name, child)
            else:
                module.add_module(name, child)
        return module

    def _kept(self, scope: Scope) -> set[str]:
        """Nodes whose output is read when ``x`` no longer holds it (a merge's second operand,
        a gate's input after its branch ran)."""
        keep: set[str] = set()
        current = scope.input
        for item in scope.items:
            reads = [item.input] if isinstance(item, Scope) else self.net.inputs(item.id)
            keep.update(node for node in reads if node != current)
            current = item.output if isinstance(item, Scope) else item.id
        return keep

    @staticmethod
    def _module(layer: Layer) -> nn.Module:
        module = layer_module(layer)
        assert module is not None, f"op {layer.op} builds no module"
        if isinstance(module, nn.Linear) and len(layer.in_shapes[0]) > 1:  # same keys, flattens first
            flat = runtime_layers.FlattenLinear(module.in_features, module.out_features, bias=module.bias is not None)
            return flat
        return module

    def _step(self, layer: Layer, var: dict[str, str], children: dict[str, nn.Module | nn.Parameter]) -> list[str]:
        op = OPS[layer.op]
        inputs = [var[p] for p in self.net.inputs(layer.id)]
        if op.merge is not None:  # a multi-input op: the main input combined with another operand
            return self._merge(layer, op.merge, inputs, var, children)
        lines = []
        if inputs[0] != "x":
            lines.append(f"x = {inputs[0]}")
        if op.own_param is not None:  # a tensor of this module, applied in the forward
            children[layer.module] = own_param(layer)
            lines.append(f"x = {op.own_param.apply('x', f'self.{layer.module}', layer.in_shapes[0])}")
            return lines
        if op.flatten_input and len(layer.in_shapes[0]) > 1:
            lines.append("x = torch.flatten(x, 1)")
        if layer.module not in children:
            module = layer_module(layer)
            assert module is not None, f"op {layer.op} builds no module"
            children[layer.module] = module
        lines.append(f"x = self.{layer.module}(x)")
        return lines

    def _merge(
        self, layer: Layer, merge: Merge, inputs: list[str], var: dict[str, str], children: dict[str, Any]
    ) -> list[str]:
        """A merge's line: the main input and the other operand (a residual's mapped shortcut)."""
        s = layer.shortcut
        if s is not None and not s.adds:  # identity_if_same where the shapes differ: no addition
            return [] if inputs[0] == "x" else [f"x = {inputs[0]}"]
        other = var[self.net.shortcut_source(layer)] if layer.shortcut is not None else inputs[1]
        if s is not None and s.add_into and layer.inplace and inputs[0] == "x" and merge.operator == "+":
            # option A at inference: the subsampled shortcut added into the first channels; the
            # zero channels are never made (3x cheaper than padding, measured)
            sub = f"[:, :, ::{s.stride}, ::{s.stride}]" if s.stride > 1 else ""
            return [f"x[:, :{s.in_channels}] += {other}{sub}"]
        module = shortcut_module(s) if s is not None else None
        if module is not None:
            children[layer.module] = module
            other = f"self.{layer.module}({other})"
        if layer.inplace and inputs[0] == "x" and merge.in_place:
            return [f"x {merge.operator}= {other}"]
        return [f"x = {merge.expr(inputs[0], other)}"]


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
            norm = network.last_norm(layer) if layer.shortcut is not None and layer.shortcut.adds else None
            if norm is not None:
                nn.init.constant_(model.get_submodule(module_path(norm)).weight, 0)  # type: ignore[arg-type]


def module_path(layer: Layer) -> str:
    """The path of the module that runs ``layer`` (shared anonymous modules have one path)."""
    scope_path = layer.scope.path if layer.scope is not None else ""
    return f"{scope_path}.{layer.module}" if scope_path else layer.module


def _checkpointed(modules: str, source: str) -> str:
    """The forward line that runs ``modules`` (source text) under checkpointing."""
    return f"x = checkpoint_seq({modules}, {source}, self.checkpoint_reentrant)"


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
