"""One module's forward as steps: torch.fx traces it with every child module kept as one call.

A step is a child module called, a function applied (relu, flatten) or a merge (an addition whose
other operand is the module's input or a shortcut module applied to it). Anything else, and
control flow that depends on the data, is refused with the module path and its source line.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from resdsl.diagnostics import ResdslError, error


@dataclass
class Step:
    """``kind`` is "module" (``target`` an attribute path), "relu", "flatten" or "residual"."""

    kind: str
    target: str = ""
    shortcut: str = ""  # for a residual: "" (identity) or the attribute of the shortcut module


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


def refuse(code: str, message: str, module: nn.Module, path: str, hint: str) -> ResdslError:
    """A ResdslError for a module the importer cannot express, with where its class is written."""
    place = where(module)
    notes = [f"module `{path or '(the model)'}` is a {type(module).__qualname__}"]
    if place:
        notes.append(f"its class is defined at {place}")
    return ResdslError(error(code, message, notes=notes, help=hint))


def trace(module: nn.Module, path: str) -> Traced:
    """The steps of ``module``'s forward; a refusal (E901, E902) where it has no such form."""
    try:
        graph = _ChildrenAreLeaves().trace(module)
    except Exception as exc:  # fx raises TraceError, but also TypeError/NotImplementedError on proxies
        raise refuse(
            "E901",
            f"`{path or type(module).__name__}.forward` cannot be traced: {str(exc).splitlines()[0]}",
            module,
            path,
            "data-dependent control flow (an `if` on a tensor's value, a loop over its size) has no spec "
            "form; write the choice as a parameter of the module's constructor",
        ) from None
    return _steps(graph, module, path)


def _steps(graph: torch.fx.Graph, module: nn.Module, path: str) -> Traced:
    """Walks the traced graph in order; each node becomes a step or is refused."""
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise refuse("E902", "a forward with more than one input has no spec form", module, path, _HINT)
    source = inputs[0]
    shortcuts = _shortcut_nodes(graph, source)
    out = Traced()
    for node in graph.nodes:
        if node.op in ("placeholder", "output", "get_attr") or node in shortcuts:
            continue
        out.steps.append(_step(node, source, shortcuts, module, path))
    return out


_HINT = "the importer knows child modules, relu, flatten and additions of a shortcut (docs/cli.md, resdsl import)"


def _shortcut_nodes(graph: torch.fx.Graph, source: torch.fx.Node) -> dict[torch.fx.Node, str]:
    """Child modules applied to the input whose only use is an addition: a block's shortcut."""
    found: dict[torch.fx.Node, str] = {}
    for node in graph.nodes:
        if node.op == "call_module" and node.args == (source,) and len(node.users) == 1:
            (user,) = node.users
            if user.op == "call_function" and user.target in (operator.add, operator.iadd, torch.add):
                found[node] = str(node.target)
    return found


def _step(
    node: torch.fx.Node, source: torch.fx.Node, shortcuts: dict[torch.fx.Node, str], module: nn.Module, path: str
) -> Step:
    """One graph node as a step."""
    if node.op == "call_module":
        return Step("module", str(node.target))
    target = node.target
    if (node.op == "call_function" and target in (torch.relu, torch.nn.functional.relu)) or (
        node.op == "call_method" and target in ("relu", "relu_")
    ):
        return Step("relu")
    if (node.op == "call_function" and target is torch.flatten) or (node.op == "call_method" and target == "flatten"):
        return Step("flatten")
    if node.op == "call_function" and target in (operator.add, operator.iadd, torch.add):
        others = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if source in others:
            return Step("residual")
        for arg in others:
            if arg in shortcuts:
                return Step("residual", shortcut=shortcuts[arg])
    name = getattr(target, "__name__", str(target))
    raise refuse(
        "E903",
        f"`{name}` in `{path or type(module).__name__}.forward` has no op in resdsl's table",
        module,
        path,
        _HINT,
    )
