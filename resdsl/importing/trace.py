"""One module's forward as steps: torch.fx traces it with every child module kept as one call.

A step is a child module called, a function applied (relu, flatten, a mean over the map) or a
merge: an addition of the point a shortcut starts from (the module's input, or where the last
merge stood), possibly through a shortcut module (``residual``); a concatenation of that point and
the main branch (``concat``); a product of the main branch and a child module applied to it
(``gate``), or of the module's own input and the main branch (``scale``: the module is itself a
gate, as timm's SEModule is). Anything else, and control flow that depends on the data, is
refused with the module path, the torch function or class, and its source line.
"""

from __future__ import annotations

import inspect
import operator
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from resdsl.diagnostics import ResdslError, error
from resdsl.importing.layout import permute_of
from resdsl.importing.library import Library
from resdsl.importing.scales import layer_scales, misshapen_scale
from resdsl.importing.tokens import token_steps, unexpressed_attention
from resdsl.ops import OPS

ADD = (operator.add, operator.iadd, torch.add)
MUL = (operator.mul, operator.imul, torch.mul)
CAT = (torch.cat, torch.concat)
# functions and methods that are one op of the table
_FUNCTIONS = {
    torch.relu: "relu",
    torch.nn.functional.relu: "relu",
    torch.sigmoid: "sigmoid",
    torch.nn.functional.sigmoid: "sigmoid",
    torch.flatten: "flatten",
    torch.nn.functional.silu: "silu",
    torch.nn.functional.gelu: "gelu",
}
_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "flatten": "flatten"}


@dataclass
class Step:
    """``kind`` is "module" (``target`` an attribute path), an op ("relu", "flatten",
    "global_avgpool", a library op with ``args``: :mod:`.library`, or a token op, ``target`` the
    module's own tensor it names where it has one: :mod:`.tokens`), "residual" (``target`` the
    shortcut module, "" for identity; ``source`` the layer it reads where not the block input),
    "concat", "gate" (``target`` the gating module), "scale" or "layer_scale" (``target`` the
    module's own parameter)."""

    kind: str
    target: str = ""
    source: str = ""
    args: dict[str, object] = field(default_factory=dict)  # a library op's (res2_hierarchy, radix_sum)


@dataclass
class Traced:
    """A module's steps, in the order its forward runs them."""

    steps: list[Step] = field(default_factory=list)


class _ChildrenAreLeaves(torch.fx.Tracer):
    """Keeps every child module one call, so a block's own code is what is traced."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def where(module: nn.Module) -> str:
    """``file:line`` of a module's class in its source, for diagnostics ("" where unknown)."""
    try:
        path = inspect.getsourcefile(type(module))
        line = inspect.getsourcelines(type(module))[1]
    except (OSError, TypeError):
        return ""
    return f"{path}:{line}"


def _forward_line(module: nn.Module, node: torch.fx.Node | None) -> str:
    """``file:line`` of the statement of ``module``'s forward that made ``node`` (fx records the
    stack); the forward's first line where it is not known."""
    trace = (node.stack_trace or "") if node is not None else ""
    torch_dir = os.path.dirname(torch.__file__)
    for line in reversed(trace.strip().splitlines()):
        text = line.strip()
        if text.startswith('File "') and not text[6:].startswith(torch_dir):
            path, _, rest = text[6:].partition('", line ')
            return f"{path}:{rest.split(',')[0]}"
    try:
        forward = type(module).forward
        return f"{inspect.getsourcefile(forward)}:{inspect.getsourcelines(forward)[1]}"
    except (OSError, TypeError):
        return ""


def refuse(
    code: str, message: str, module: nn.Module, path: str, hint: str, node: torch.fx.Node | None = None, at: str = ""
) -> ResdslError:
    """A ResdslError for a module the importer cannot express, with where its class is written
    and the line of its forward that made ``node`` (or ``at``, a ``file:line``)."""
    notes = [f"module `{path or '(the model)'}` is a {type(module).__module__}.{type(module).__qualname__}"]
    if where(module):
        notes.append(f"its class is defined at {where(module)}")
    line = at or (_forward_line(module, node) if node is not None else "")
    if line:
        notes.append(f"the call is at {line}")
    return ResdslError(error(code, message, notes=notes, help=hint))


def trace(module: nn.Module, path: str) -> Traced:
    """The steps of ``module``'s forward; a refusal (E901, E902) where it has no such form."""
    lacking = unexpressed_attention(module)
    if lacking:
        raise refuse(
            "E903",
            f"`{path or type(module).__name__}` is attention that the `attention` op does not express: {lacking}",
            module,
            path,
            "the op is timm's Attention without qk_norm, scale_norm, gating or dropout (docs/cli.md, resdsl import)",
        )
    tracer = _ChildrenAreLeaves()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(module, concrete_args=_defaults(module))
    except Exception as exc:  # fx raises TraceError, but also TypeError/NotImplementedError on proxies
        raise refuse(
            "E901",
            f"`{path or type(module).__name__}.forward` cannot be traced: {str(exc).splitlines()[0]}",
            module,
            path,
            "data-dependent control flow (an `if` on a tensor's value, a loop over its size) has no spec "
            "form; write the choice as a parameter of the module's constructor",
            at=_traceback_line(exc, module),
        ) from None
    return _Walk(graph, module, path).run()


def _defaults(module: nn.Module) -> dict[str, object]:
    """The forward's arguments after the input that have defaults (timm's heads'
    ``pre_logits=False``), fixed at them so that a branch on them is traced as a choice."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _specialised(placeholders: list[torch.fx.Node]) -> set[torch.fx.Node]:
    """Arguments fixed at their defaults (:func:`_defaults`) and the checks fx adds that they
    keep them (``torch._assert(pre_logits == False)``): no steps of the forward."""
    found: set[torch.fx.Node] = set()
    for node in placeholders:
        users = list(node.users)
        checks = [u for user in users for u in user.users]
        if all(u.op == "call_function" and u.target is torch._assert for u in checks):
            found |= {node, *users, *checks}
    return found


def _traceback_line(exc: BaseException, module: nn.Module) -> str:
    """The line of ``module``'s forward (or a function it calls) where tracing failed."""
    tb, found = exc.__traceback__, ""
    files = {inspect.getsourcefile(type(module)) or ""}
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in files:
            found = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found or _forward_line(module, None)


_HINT = (
    "the importer knows child modules, relu, sigmoid, flatten, a mean over the map, merges "
    "(additions of a shortcut, x * gate(x), torch.cat([x, out], 1)) and the tensor code of library ops "
    "(Res2Net's split hierarchy, split attention's radix reshapes) (docs/cli.md, resdsl import)"
)


class _Walk:
    """Walks a traced graph in order, keeping the point a merge's shortcut starts from."""

    def __init__(self, graph: torch.fx.Graph, module: nn.Module, path: str) -> None:
        self.graph, self.module, self.path = graph, module, path
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        fixed = _specialised(placeholders[1:])
        inputs = [n for n in placeholders if n not in fixed]
        if len(inputs) != 1:
            raise refuse("E902", "a forward with more than one input has no spec form", module, path, _HINT)
        self.source = self.anchor = inputs[0]
        self.side = _side_nodes(graph, module)
        self.library = Library(graph, module)
        self.scales, self.fetch = layer_scales(graph, module)
        self.tokens, skip = token_steps(graph, module)  # class token, position embedding, pools
        self.fetch |= fixed | skip
        self.called: set[str] = set()

    def run(self) -> Traced:
        out = Traced()
        for node in self.graph.nodes:
            skipped = node in self.side or node in self.library.skip or node in self.fetch
            if node.op in ("placeholder", "output", "get_attr") or skipped:
                continue
            if node in self.library.steps:
                op, args = self.library.steps[node]
                if OPS[op].merge is not None:  # radix_combine: a merge, as concat is
                    self.anchor = node
                out.steps.append(Step(op, args=args))
                continue
            if node in self.tokens:
                out.steps += [Step(op, target, args=args) for op, target, args in self.tokens[node]]
                continue
            step = self._step(node)
            if step is not None:
                out.steps.append(step)
        if self.library.list_input:  # its concatenation of all earlier maps, as one layer's concat
            out.steps.append(Step("concat"))
        return out

    def _step(self, node: torch.fx.Node) -> Step | None:
        if node in self.scales:
            return Step("layer_scale", target=self.scales[node])
        if permute_of(node) is not None:
            return Step(str(permute_of(node)))
        if node.op == "call_module":
            target = str(node.target)
            if target in self.called and self.module.get_submodule(target).state_dict():
                raise refuse(
                    "E904",
                    f"`{self.path + '.' if self.path else ''}{target}` is called twice: its weights are shared",
                    self.module,
                    self.path,
                    "each layer of a spec has weights of its own",
                    node,
                )
            self.called.add(target)
            return Step("module", target)
        op = _function_op(node)
        if op is not None:
            return Step(op)
        others = [a for a in _operands(node) if isinstance(a, torch.fx.Node)]
        if node.op == "call_function" and node.target in ADD and len(others) == 2:
            step = self._residual(others)
            if step is None:
                raise refuse(
                    "E903",
                    f"an addition in `{self.path or type(self.module).__name__}.forward` whose shortcut does not "
                    "start at the module's input (or where its last merge stood)",
                    self.module,
                    self.path,
                    "a residual adds the input of its block: make the branch a block of its own",
                    node,
                )
            return self._merge(node, step)
        if node.op == "call_function" and node.target in CAT and others[:1] == [self.anchor] and len(others) == 2:
            return self._merge(node, Step("concat"))
        if node.op == "call_function" and node.target in MUL and len(others) == 2:
            gates = [a for a in others if a in self.side and self.side[a][1] == "gate"]
            if gates:
                return Step("gate", target=str(gates[0].target))
            if self.source in others:
                return Step("scale")
        return self._refuse(node)

    def _residual(self, operands: list[torch.fx.Node]) -> Step | None:
        if self.anchor in operands:
            return Step("residual")
        for arg in operands:
            if arg in self.side and self.side[arg][1] == "shortcut":
                start = self.side[arg][0]
                if start is self.anchor:
                    return Step("residual", target=str(arg.target))
                if start.op == "call_module":
                    return Step("residual", target=str(arg.target), source=str(start.target))
        return None

    def _merge(self, node: torch.fx.Node, step: Step | None) -> Step:
        if step is None:
            self._refuse(node)
        self.anchor = node
        return step  # type: ignore[return-value]

    def _refuse(self, node: torch.fx.Node) -> Step:
        target = node.target
        name = getattr(target, "__name__", str(target))
        why = misshapen_scale(node, self.module)
        raise refuse(
            "E903",
            f"`{name}` in `{self.path or type(self.module).__name__}.forward` has no op in resdsl's table"
            + (f": {why}" if why else ""),
            self.module,
            self.path,
            _HINT,
            node,
        )


def _operands(node: torch.fx.Node) -> list[object]:
    if node.op == "call_function" and node.target in CAT:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        return list(tensors) if dim == 1 and isinstance(tensors, list | tuple) else []  # type: ignore[arg-type]
    return list(node.args)


def _function_op(node: torch.fx.Node) -> str | None:
    """The op of a function or method node that is one ("relu", "flatten", "global_avgpool")."""
    if node.op == "call_function" and node.target in _FUNCTIONS:
        if node.target is torch.flatten and node.args[1:2] not in ((1,), ()) and node.kwargs.get("start_dim", 1) != 1:
            return None
        return _FUNCTIONS[node.target]  # type: ignore[index]
    if node.op == "call_method" and node.target in _METHODS:
        return _METHODS[str(node.target)]
    if node.op == "call_method" and node.target == "mean" and _spatial_mean(node.args[1:], node.kwargs):
        return "global_avgpool"
    pool = torch.nn.functional.adaptive_avg_pool2d
    if node.op == "call_function" and node.target is pool and node.args[1:] in (((1, 1),), (1,)):
        return "global_avgpool"
    return None


def _spatial_mean(args: tuple[object, ...], kwargs: Mapping[str, object]) -> bool:
    """``x.mean((2, 3), keepdim=True)``: timm's squeeze."""
    dims = args[0] if args else kwargs.get("dim")
    keep = args[1] if len(args) > 1 else kwargs.get("keepdim", False)
    return keep is True and isinstance(dims, list | tuple) and sorted(dims) in ([2, 3], [-2, -1])  # type: ignore[type-var]


def _side_nodes(graph: torch.fx.Graph, module: nn.Module) -> dict[torch.fx.Node, tuple[torch.fx.Node, str]]:
    """Child modules that branch off (what they read is read elsewhere too) and whose only use is
    a merge: a shortcut (added) or a gate (multiplied by what it read); each with the node it reads.
    Of an addition of two such modules (torchvision's RegNet: ``self.proj(x) + self.f(x)``) the
    shortcut is the one with fewer weights, the other the main branch."""
    found: dict[torch.fx.Node, tuple[torch.fx.Node, str]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or len(node.users) != 1:
            continue
        (user,) = node.users
        (arg,) = node.args
        if not isinstance(arg, torch.fx.Node) or user.op != "call_function" or len(arg.users) < 2:
            continue  # a side branch reads a tensor that the main branch reads too
        if user.target in ADD and arg not in user.args:  # conv(x) + x: the conv is the main branch
            found[node] = (arg, "shortcut")
        elif user.target in MUL and arg in user.args:
            found[node] = (arg, "gate")
    for node in [n for n in found if found[n][1] == "shortcut"]:
        (user,) = node.users
        other = next((a for a in user.args if isinstance(a, torch.fx.Node) and a is not node and a in found), None)
        if other is not None and _weights(module, other) <= _weights(module, node):
            del found[node]
    return found


def _weights(module: nn.Module, node: torch.fx.Node) -> int:
    return sum(p.numel() for p in module.get_submodule(str(node.target)).parameters())
