"""Convolutions fused with the ReLU and the residual addition after them, for the inference build on CPU.

An eager inference forward runs ``relu(conv(x))`` and ``relu(conv(x) + identity)`` as two and
three passes over memory; oneDNN's convolution applies a ReLU, and adds into the tensor it
is given, as it writes its output. :func:`fuse_convolutions` reads the model's forward with
``torch.fx`` and gives the model a second forward, the fused graph, which ``model(x)`` runs:
each float32 conv whose only reader is a ReLU becomes one oneDNN call with that ReLU
(``mkldnn._convolution_pointwise``), and each whose only reader is an addition (then, when
the sum's only reader is one, a ReLU) adds into the other operand in place
(``mkldnn._convolution_pointwise_.binary``), where nothing reads that operand afterwards.
This is what ``torch.jit.optimize_for_inference`` and inductor fuse; measured in
benchmarks/inference_speed.py. The model keeps its class, modules, state_dict and its own
``forward`` (what TorchScript, ``torch.export`` and a module hook see); where a hook watches
any module, the model is in training mode, or an input is not a float32 CPU tensor without
gradients, the model's own forward runs. Nothing changes where the forward cannot be traced.
"""

# no "from __future__ import annotations": TorchScript reads the class annotations below as types

import operator
from typing import Any

import torch
import torch.fx
from torch import Tensor, nn

__all__ = ["FusedCall", "FusedConv", "fuse_convolutions"]


# --- copied into generated inference modules from here ---

_ADDS = (operator.add, torch.add)
_RELUS = (torch.relu, torch.nn.functional.relu)
# what returns a new tensor (not a view, nor its input): a tensor one may add into in place
_FRESH_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d)
_FRESH_FUNCTIONS = (*_ADDS, operator.mul, torch.mul, torch.cat)


class FusedConv(nn.Module):
    """A conv run by oneDNN with its ReLU (``unary="relu"``) and, given ``other``, the addition
    before that ReLU, written into ``other``; any other input takes the unfused ops."""

    def __init__(self, conv: nn.Conv2d, unary: str | None) -> None:
        super().__init__()
        self.conv = conv
        self.unary = unary

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        conv = self.conv
        if _onednn(conv, x) and (other is None or _addable(conv, x, other)):
            weight = conv.weight_for(x) if hasattr(conv, "weight_for") else conv.weight  # type: ignore[operator]
            args = (weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
            if other is None:
                return torch.ops.mkldnn._convolution_pointwise(x, *args, self.unary or "none", [], "")
            return torch.ops.mkldnn._convolution_pointwise_.binary(other, x, *args, "add", None, self.unary, [], "")
        y = conv(x)
        if other is not None:
            y = y + other
        return torch.relu(y) if self.unary == "relu" else y


def _onednn(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether oneDNN's fused conv may run ``conv`` on ``x``: float32 on the CPU, no autograd."""
    w = conv.weight
    plain = x.dtype == torch.float32 and x.device.type == "cpu" and not x.requires_grad and x.dim() == 4
    return plain and w.dtype == torch.float32 and w.device.type == "cpu" and not w.requires_grad


def _addable(conv: nn.Conv2d, x: Tensor, other: Tensor) -> bool:
    """Whether ``other`` is exactly the conv's output's size and layout (channels_last, float32,
    the CPU, no autograd), so the conv can write its sum into it."""
    size = [x.shape[0], conv.out_channels]
    for n, k, s, p, d in zip(x.shape[2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True):
        size.append((n + 2 * p - d * (k - 1) - 1) // s + 1)  # type: ignore[operator]
    same = list(other.shape) == size and other.dtype == torch.float32 and other.device.type == "cpu"
    return same and not other.requires_grad and other.is_contiguous(memory_format=torch.channels_last)


class FusedCall:
    """What ``model(x)`` runs once fused (``model._compiled_call_impl``, as ``nn.Module.compile``
    sets it): the fused graph, or the model's own forward where a hook watches one of its
    modules (so that every layer's hooks fire) or the model is training. A module replaced
    since (``model.fc = ...``), a copy and an unpickled model (torch.fx's graphs do not pickle
    reliably) fuse again on their next call."""

    def __init__(self, model: nn.Module, graph: torch.fx.GraphModule | None) -> None:
        self.model = model
        self.graph = graph
        self.traced = list(model.modules())  # what the graph was made of

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.model.training or _global_hooks():
            return self.model._call_impl(*args, **kwargs)
        now = list(self.model.modules())
        if any(m._forward_hooks or m._forward_pre_hooks for m in now):
            return self.model._call_impl(*args, **kwargs)
        if self.graph is None or now != self.traced:  # modules compare by identity
            self.graph, self.traced = _fused(self.model)[0], now  # copied, unpickled or changed: fuse again
        if self.graph is None:
            return self.model._call_impl(*args, **kwargs)
        return self.graph(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "graph": None, "traced": []}


def _global_hooks() -> bool:
    from torch.nn.modules import module as torch_module

    return bool(torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks)


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, with every conv (also a packed one) a leaf."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


def fuse_convolutions(model: nn.Module) -> int:
    """Fuse ``model``'s convs with the ReLUs and additions after them (see the module's
    docstring), in place; returns how many convs were fused, and ``model.resdsl_fusion`` says
    so (or why none: a forward torch.fx cannot trace)."""
    graph, count, note = _fused(model)
    model.resdsl_fusion = note  # type: ignore[assignment]
    if graph is None:
        return 0
    model._compiled_call_impl = FusedCall(model, graph)
    # TorchScript compiles the model's own forward; it would try to type the call too
    ignored = [*getattr(model, "__jit_ignored_attributes__", []), "_compiled_call_impl"]
    model.__jit_ignored_attributes__ = ignored  # type: ignore[assignment]
    return count


def _fused(model: nn.Module) -> tuple[torch.fx.GraphModule | None, int, str]:
    """The fused graph of ``model``'s forward (None where nothing fuses), how many convs it
    fuses, and that in words (or why it cannot)."""
    try:
        graph = _Tracer().trace(model)
    except (ValueError, TypeError, RuntimeError, AttributeError, NotImplementedError) as exc:
        # fx cannot read every forward (TraceError, a ValueError: control flow on values): run it unfused
        return None, 0, f"not fused: torch.fx cannot trace the forward ({type(exc).__name__}: {exc})"
    fused = torch.fx.GraphModule(model, graph, class_name=type(model).__name__)
    count = _fuse_graph(fused)
    fused.recompile()
    return (fused if count else None), count, f"{count} convs fused"


def _fuse_graph(gm: torch.fx.GraphModule) -> int:
    """Rewrite ``gm``'s graph: each conv that a ReLU or an addition alone reads becomes a
    :class:`FusedConv` call."""
    modules = dict(gm.named_modules())
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    roots: dict[torch.fx.Node, torch.fx.Node] = {}  # a node -> the node whose memory it is
    count = 0
    for node in list(gm.graph.nodes):
        conv = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d) or not _plain_conv(conv) or len(node.users) != 1 or node.kwargs:
            continue
        user = next(iter(node.users))
        if _is_relu(user, modules):
            last, other = user, None
        elif _is_add(user) and node in user.args:
            other = user.args[1] if user.args[0] is node else user.args[0]
            if not _may_write(other, user, node, gm, order, modules, roots):
                continue
            after = next(iter(user.users)) if len(user.users) == 1 else None
            last = after if after is not None and _is_relu(after, modules) else user
        else:
            continue
        name = f"resdsl_fused_{count}"
        modules[name] = FusedConv(conv, "relu" if _is_relu(last, modules) else None)
        gm.add_submodule(name, modules[name])
        with gm.graph.inserting_before(last):
            call = gm.graph.call_module(name, (node.args[0],) if other is None else (node.args[0], other))
        order[call] = order[last]
        if other is not None:
            roots[call] = roots.get(other, other)  # the sum is written into other's memory
        last.replace_all_uses_with(call)
        for dead in reversed([n for n in (node, user, last) if n is not call]):
            if dead in gm.graph.nodes and not dead.users:
                gm.graph.erase_node(dead)
        count += 1
    gm.graph.lint()
    return count


def _plain_conv(conv: nn.Conv2d) -> bool:
    """A 2d conv that pads with zeros by numbers: what oneDNN's conv computes."""
    ours = type(conv) is nn.Conv2d or hasattr(conv, "weight_for")  # a subclass may compute another conv
    return ours and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def _is_relu(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules.get(node.target)) is nn.ReLU  # type: ignore[arg-type]
    return node.op == "call_function" and node.target in _RELUS and len(node.args) == 1


def _is_add(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target in _ADDS and len(node.args) == 2 and not node.kwargs


def _may_write(
    other: Any,
    add: torch.fx.Node,
    conv: torch.fx.Node,
    gm: torch.fx.GraphModule,
    order: dict[torch.fx.Node, int],
    modules: dict[str, nn.Module],
    roots: dict[torch.fx.Node, torch.fx.Node],
) -> bool:
    """Whether the conv may write ``add``'s sum into ``other``: a tensor the forward made (not
    its input, a view or a parameter), read before ``add`` only by ops that make new tensors of
    it (no view of it lives on), after ``add`` by nothing, and not the conv's own input."""
    if not isinstance(other, torch.fx.Node):
        return False
    root = roots.get(other, other)
    if not _fresh(root, modules):
        return False
    sharing = [n for n in gm.graph.nodes if roots.get(n, n) is root]
    if conv.args[0] in sharing:
        return False
    readers = [reader for n in sharing for reader in n.users if reader is not add]
    return all(order.get(r, 0) < order[add] and (r in sharing or _fresh(r, modules)) for r in readers)


def _fresh(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        module = modules.get(node.target)  # type: ignore[arg-type]
        fresh = isinstance(module, (*_FRESH_MODULES, FusedConv))
        return fresh or (type(module) is nn.ReLU and not module.inplace)  # type: ignore[union-attr]
    return node.op == "call_function" and node.target in _FRESH_FUNCTIONS
