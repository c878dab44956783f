"""The spec's text: each block class once, with the values that differ between its instances as
parameters, then the network, whose ``nn.Sequential`` runs of one block class are stages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

import resdsl.importing.blocks as blocks
from resdsl.importing.groups import gate_member, group_args, is_group, render_group
from resdsl.importing.layers import is_leaf, op_of
from resdsl.importing.names import reserved_layer, snake, stage_naming
from resdsl.importing.nesting import named_sequential, stage_members
from resdsl.importing.shortcuts import chain, render_residual, residual_args
from resdsl.importing.trace import Step, refuse, trace

Line = str | Callable[[], str]


@dataclass
class Spec:
    """Block definitions (by class, in the order first seen), gathered while walking."""

    classes: dict[tuple[type, int], blocks.BlockClass] = field(default_factory=dict)

    def klass(self, cls: type, variant: int = 0) -> blocks.BlockClass:
        """The block class of a module class (its ``variant``-th set of layers), made when first
        seen (a name of its own)."""
        if (cls, variant) not in self.classes:
            taken = {k.name for k in self.classes.values()}
            base = snake(cls.__name__) + (f"_{variant + 1}" if variant else "")
            name, n = base, 2
            while name in taken:
                name, n = f"{base}{n}", n + 1
            self.classes[(cls, variant)] = blocks.BlockClass(name, self.klass, variant)
        return self.classes[(cls, variant)]


def write_spec(model: nn.Module, name: str, shape: tuple[int, int, int]) -> str:
    """The spec source for ``model`` (not yet verified: :func:`resdsl.importing.verify.verify`)."""
    spec = Spec()
    body = _body(model, spec)
    lines = [f"# imported from {type(model).__module__}.{type(model).__qualname__} by resdsl import", ""]
    # a nested block is defined before the block that uses it (it was seen first)
    for klass in spec.classes.values():
        lines += [*klass.definition(), ""]
    lines.append(f"network {name}() {{")
    lines.append(f"    input {shape[0]} x {shape[1]} x {shape[2]}")
    lines += ["    " + (s if isinstance(s, str) else s()) for s in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _body(model: nn.Module, spec: Spec) -> list[Line]:
    """The network's statements: one per step of its forward (block calls are written once every
    instance of their class has been seen, as their parameters depend on all of them)."""
    out: list[Line] = []
    for step in trace(model, "").steps:
        if step.kind == "residual":
            args = residual_args(model, step, "")
            if args.get("same") and args["kind"] == "projection":
                args["kind"] = "projection_all"
            out.append(render_residual(args))
        elif step.kind == "concat":
            out.append("concat()")
        elif step.kind == "scale":
            raise refuse("E904", "the network multiplies by its own input", model, "", "")
        elif step.kind == "module" and blocks.expanded(model.get_submodule(step.target), step.target):
            parts = blocks.expanded(model.get_submodule(step.target), step.target)
            out.append(f"{step.target} = {blocks.call(*parts[0], named=True)}")
            out += [blocks.call(*part) for part in parts[1:]]
        elif step.kind in ("module", "gate"):
            out.append(_statement(step, model.get_submodule(step.target), spec))
        elif step.target:  # an op on the model's own tensor, named as it: cls_token = class_token()
            out.append(f"{step.target} = {blocks.call(step.kind, step.args, named=True)}")
        else:
            out.append(blocks.call(step.kind, step.args))
    return out


def _statement(step: Step, child: nn.Module, spec: Spec) -> Line:
    """``attr = op(...)``, ``attr = stage(...)``, ``attr = sequential(...)``, ``attr = block(...)``
    or ``attr = gate(...)``."""
    attr, gate = step.target, step.kind == "gate"
    if "." in attr:
        raise refuse("E903", f"`{attr}` is a module inside a child; the spec names only its own", child, attr, "")
    if not attr.isidentifier():
        raise refuse(
            "E904",
            f"the model's layer `{attr}` has no name a spec can give it",
            child,
            attr,
            "a spec names its layers; wrap an nn.Sequential model in a module with named attributes",
        )
    if reserved_layer(attr):
        raise refuse("E912", f"the model's layer `{attr}` is named with a word the language reserves", child, attr, "")
    if is_leaf(child) and not gate:
        op, args = op_of(child, attr)
        if op in blocks.STATELESS and attr == op:
            return blocks.call(op, args)
        return f"{attr} = {blocks.call(op, args, named=True)}"
    named = stage_members(child) if not gate and (named_sequential(child) or not is_leaf(child)) else None
    if named is not None and not (isinstance(child, nn.Sequential) and not named_sequential(child)):
        # a dense block, or a run of one block class named denselayer1 ...: a stage with prefix=
        stage = _stage([m for _, m in named], attr, spec, [n for n, _ in named])
        return lambda: f"{attr} = " + stage()
    if isinstance(child, nn.Sequential) and not named_sequential(child):
        members = list(child)
        has_group = any(is_group(m) for m in members)  # groups of layers beside stages: no stage of one
        if is_group(child):
            group = render_group(group_args(child, attr), set(), lambda op, args, _: blocks.call(op, args))
            return f"{attr} = gate({group})" if gate else f"{attr} = {group}"
        if members and all(isinstance(m, nn.Sequential) and _one_class(m) for m in members) and not gate:
            # timm's MobileNets and EfficientNets: a group of stages, blocks.1.0
            stages = [
                _stage(list(m.children()), f"{attr}.{i}", spec, [n for n, _ in m.named_children()])
                for i, m in enumerate(members)
            ]
            return lambda: f"{attr} = sequential({', '.join(stage() for stage in stages)})"
        if members and len({type(m) for m in members}) == 1 and not gate and not is_leaf(members[0]) and not has_group:
            stage = _stage(members, attr, spec, [name for name, _ in child.named_children()])
            return lambda: f"{attr} = " + stage()
        if members and not gate and type(child).forward is nn.Sequential.forward:
            mixed = _mixed(child, attr, spec)
            return lambda: f"{attr} = " + mixed()
        raise refuse(
            "E904",
            f"`{attr}` is an nn.Sequential with a forward of its own",
            child,
            attr,
            "a sequential group runs its members in order",
        )
    if is_leaf(child):
        raise refuse("E904", f"`{attr}` gates with a single layer", child, attr, "")
    chained = chain(child)
    if not gate and len({type(m) for _, m in chained}) == 1 and not is_leaf(chained[0][1]):
        stage = _stage([m for _, m in chained], attr, spec, [n for n, _ in chained])  # timm's RegStage
        return lambda: f"{attr} = " + stage()
    klass, index = spec.klass(type(child)).add(child, attr)
    return lambda: f"{attr} = " + (f"gate({klass.single(index)})" if gate and not klass.gates else klass.single(index))


def _mixed(group: nn.Sequential, path: str, spec: Spec) -> Callable[[], str]:
    """``sequential(...)`` of layers, groups, stages and blocks of several classes, numbered as
    the nn.Sequential numbers them (torchvision's ``features``: a stem, MobileNetV2's inverted
    residuals one by one, a last conv; EfficientNet's stages). A gate has no place there (E910)."""
    error = gate_member(group, path)
    if error is not None:
        raise error
    items: list[Line] = []
    for i, member in enumerate(group):
        where = f"{path}.{i}"
        if is_leaf(member):
            items.append(blocks.call(*op_of(member, where)))
        elif is_group(member):
            items.append(render_group(group_args(member, where), set(), lambda op, args, _: blocks.call(op, args)))
        elif isinstance(member, nn.Sequential) and _one_class(member) and not named_sequential(member):
            items.append(_stage(list(member.children()), where, spec, [n for n, _ in member.named_children()]))
        elif isinstance(member, nn.Sequential) and not named_sequential(member):
            items.append(_mixed(member, where, spec))
        else:
            klass, index = spec.klass(type(member)).add(member, where)
            items.append(functools.partial(klass.single, index))
    return lambda: _sequential([item if isinstance(item, str) else item() for item in items])


def _sequential(items: list[str]) -> str:
    """``sequential(a, b)``, one item a line where they do not fit on one."""
    line = f"sequential({', '.join(items)})"
    if len(line) <= 100:
        return line
    return "sequential(\n" + "".join(f"        {item},\n" for item in items) + "    )"


def _one_class(group: nn.Sequential) -> bool:
    members = list(group)
    return bool(members) and len({type(m) for m in members}) == 1 and not is_leaf(members[0])


def _stage(members: list[nn.Module], path: str, spec: Spec, names: list[str]) -> Callable[[], str]:
    """A run of one block class as ``stage(...)``, written once every instance is seen; its
    blocks named ``names`` (0, 1, ... or a prefix and a count: timm's RegNet's b1, b2, ...)."""
    naming = _naming(names, members[0], path)
    placed = [spec.klass(type(m)).add(m, f"{path}.{n}") for n, m in zip(names, members, strict=True)]
    klass = placed[0][0]
    for i, (other, _) in enumerate(placed):
        if other is not klass:
            raise refuse(
                "E904",
                f"`{path}.{i}` has other layers than the first {type(members[0]).__name__} of its stage",
                members[i],
                f"{path}.{i}",
                "a stage repeats one block; the blocks of one class here hold different layers",
            )
    return lambda: klass.stage([index for _, index in placed], naming)


def _naming(names: list[str], first: nn.Module, path: str) -> str:
    """How a stage names its blocks (:func:`resdsl.importing.names.stage_naming`), or a refusal."""
    naming = stage_naming(names)
    if naming is None:
        message = f"the blocks of stage `{path}` are named {', '.join(names[:3])}, ...: no prefix and count"
        raise refuse("E904", message, first, path, "a stage names its blocks prefix + index (b1, b2, ...)")
    return naming
