"""The spec's text: each block class once, with the values that differ between its instances as
parameters, then the network, whose ``nn.Sequential`` runs of one block class are stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

import resdsl.importing.blocks as blocks
from resdsl.importing.layers import is_leaf, op_of
from resdsl.importing.names import snake
from resdsl.importing.trace import refuse, trace


@dataclass
class Spec:
    """Block definitions (by class) and the network's statements, gathered while walking."""

    blocks: dict[type, blocks.BlockClass] = field(default_factory=dict)
    names: dict[type, str] = field(default_factory=dict)


def write_spec(model: nn.Module, name: str, shape: tuple[int, int, int]) -> str:
    """The spec source for ``model`` (not yet verified: :func:`resdsl.importing.verify.verify`)."""
    spec = Spec()
    body = _body(model, "", spec, top=True)
    lines = [f"# imported from {type(model).__module__}.{type(model).__qualname__} by resdsl import", ""]
    for cls, klass in spec.blocks.items():
        lines += [*klass.definition(spec.names[cls]), ""]
    lines.append(f"network {name}() {{")
    lines.append(f"    input {shape[0]} x {shape[1]} x {shape[2]}")
    lines += ["    " + (s if isinstance(s, str) else s()) for s in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _body(module: nn.Module, path: str, spec: Spec, top: bool) -> list[str | Callable[[], str]]:
    """The network's statements: one per step of its forward (block calls are written once every
    instance of their class has been seen, as their parameters depend on all of them)."""
    out: list[str | Callable[[], str]] = []
    for step in trace(module, path).steps:
        if step.kind != "module":
            if step.kind == "residual":
                raise refuse("E903", "an addition in the network itself (outside a block)", module, path, "")
            out.append(step.kind)
            continue
        child = module.get_submodule(step.target)
        where = f"{path}.{step.target}" if path else step.target
        out.append(_statement(step.target, child, where, spec))
    return out


def _statement(attr: str, child: nn.Module, path: str, spec: Spec) -> str | Callable[[], str]:
    """``attr = op(...)``, ``attr = stage(...)``, ``attr = sequential(...)`` or ``attr = block(...)``."""
    if "." in attr:
        raise refuse("E903", f"`{attr}` is a module inside a child; the spec names only its own", child, path, "")
    if is_leaf(child):
        op, args = op_of(child, path)
        return blocks.call(op, args) if op == "relu" else f"{attr} = {blocks.call(op, args, named=True)}"
    if isinstance(child, nn.Sequential):
        members = list(child)
        if members and all(is_leaf(m) for m in members):
            parts = [blocks.call(*op_of(m, f"{path}.{i}")) for i, m in enumerate(members)]
            return f"{attr} = sequential({', '.join(parts)})"
        if members and len({type(m) for m in members}) == 1:
            klass = _klass(type(members[0]), spec)
            done = [klass.add(m, f"{path}.{i}") for i, m in enumerate(members)]
            return lambda: f"{attr} = " + klass.stage(spec.names[type(members[0])], done)
        raise refuse("E904", f"`{path}` mixes block classes in one nn.Sequential", child, path, "")
    klass = _klass(type(child), spec)
    index = klass.add(child, path)
    return lambda: f"{attr} = " + klass.single(spec.names[type(child)], index)


def _klass(cls: type, spec: Spec) -> blocks.BlockClass:
    if cls not in spec.blocks:
        spec.blocks[cls] = blocks.BlockClass()
        spec.names[cls] = snake(cls.__name__)
    return spec.blocks[cls]
