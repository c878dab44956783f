"""One description of a forward pass, which both back ends write out.

A ``forward`` is a flat sequence of steps (:mod:`resdsl.ir.steps`: a module call, a merge, a
saved value, a feature capture, a run of checkpointed calls, a class-level choice ...) with
what it returns (:class:`Forward`). :func:`render` is the one writer of its Python source: the
torch back end compiles what it writes with ``exec``, the code generator puts it in the
generated file's classes. The rules both back ends follow are here once:

- how a layer, a merge, an op held as a parameter and a residual addition are written
  (:func:`layer_steps`, :func:`merge_step`, :func:`own_param_step`, :class:`Residual`):
  flatten before a linear that reads a map, ``+=`` where the addition may run in place;
- which values a forward keeps while ``x`` moves on (:func:`reads`, :func:`kept`), with a
  gate's branch held in ``x`` (build_model) or apart (generated code);
- where feature outputs are captured and how checkpointed calls are grouped
  (:func:`planned`, in :mod:`resdsl.ir.planning`, from a :class:`~resdsl.ir.features.Plan`);
- the steps of one scope of the IR as ``build_model`` runs it (:func:`scope_forward`): the
  value in ``x``, every value read after ``x`` moved on kept in ``s0``, ``s1``, ...

The code generator writes its steps in the terms of a class shared by many instances
(:mod:`resdsl.backends.codegen.emit`), with :class:`Choice` and :class:`Present` for what
differs between them; it renders them here too. The steps themselves are in
:mod:`resdsl.ir.steps` and the planning in :mod:`resdsl.ir.planning`, imported from there.
Nothing here imports torch or jinja2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from resdsl.ir import Layer, Network, Scope
from resdsl.ir.features import Plan
from resdsl.ir.planning import Segment, planned
from resdsl.ir.steps import (
    Assign,
    Call,
    Capture,
    CheckpointGroup,
    Choice,
    Flatten,
    Forward,
    Lines,
    NewFeatures,
    Present,
    Residual,
    Save,
    Step,
    Update,
    flattens,
)
from resdsl.ops import OPS, Merge

__all__ = [
    "kept",
    "layer_steps",
    "merge_step",
    "own_modules_step",
    "own_param_step",
    "reads",
    "render",
    "scope_forward",
    "shortcuts",
    "step_lines",
]

CHECKPOINTING = "if self.grad_checkpointing and not torch.jit.is_scripting():"


# -- the renderer --------------------------------------------------------------------------


def render(forward: Forward) -> str:
    """The source of ``def forward(self, x)`` (top level, four spaces a level, no blank lines)."""
    lines = [
        f"def forward(self, x: Tensor) -> {forward.returns}:",
        *_block(forward.steps),
        f"    return {forward.result}",
    ]
    return "".join(f"{line}\n" for line in lines)


def _block(steps: Iterable[Step]) -> list[str]:
    return [f"    {line}" for step in steps for line in step_lines(step)]


def step_lines(step: Step) -> list[str]:
    """The lines of one step, unindented."""
    if isinstance(step, Call):
        return [f"{step.target} = self.{step.module}({step.source})" + (f"  # {step.comment}" if step.comment else "")]
    if isinstance(step, Flatten):
        return [f"{step.target} = torch.flatten({step.source}, 1)"]
    if isinstance(step, Save):
        return [f"{step.target} = {step.source}"]
    if isinstance(step, Assign):
        return [f"{step.target} = {step.value}"]
    if isinstance(step, Update):
        return [f"{step.target} {step.operator}= {step.value}"]
    if isinstance(step, Residual):
        return _residual(step)
    if isinstance(step, Lines):
        return list(step.lines)
    if isinstance(step, NewFeatures):
        return [f"{step.target}: dict[str, Tensor] = {{}}"]
    if isinstance(step, Capture):
        return [f"{step.target}[{json.dumps(step.key, ensure_ascii=False)}] = {step.value}"]
    if isinstance(step, CheckpointGroup):
        return [CHECKPOINTING, *_block(_checkpointed(s) for s in step.steps), "else:", *_block(step.steps)]
    if isinstance(step, Choice):
        return [f"if self.{step.flag}:", *_block(step.then), "else:", *_block(step.orelse)]
    orelse = ["else:", *_block(step.orelse)] if step.orelse else []
    return [f"if self.{step.attr} is not None:", *_block(step.then), *orelse]


def _checkpointed(step: Step) -> Step:
    """A step as the checkpointing branch runs it: a checkpointed call through checkpoint_seq."""
    if isinstance(step, Call) and step.checkpointed is not None:
        return Assign(step.target, f"checkpoint_seq({step.checkpointed}, {step.source}, self.checkpoint_reentrant)")
    return step


def _residual(step: Residual) -> list[str]:
    if step.shortcut and step.optional:
        lines = [
            f"identity = {step.source}",
            f"if self.{step.shortcut} is not None:",
            f"    identity = self.{step.shortcut}({step.tap})",
        ]
    elif step.shortcut:
        lines = [f"identity = self.{step.shortcut}({step.tap})"]
    else:
        lines = [f"identity = {step.source}"]
    if step.inplace:
        lines.append(f"{step.target} {step.operator}= identity")
    else:
        lines.append(f"{step.target} = {step.target} {step.operator} identity")
    if step.guard:
        return [f"if self.{step.guard}:", *(f"    {line}" for line in lines)]
    return lines


def shortcuts(steps: Iterable[Step]) -> set[str]:
    """The shortcut modules the residual additions of ``steps`` call, by attribute."""
    found: set[str] = set()
    for step in steps:
        if isinstance(step, Residual) and step.shortcut is not None:
            found.add(step.shortcut)
        elif isinstance(step, CheckpointGroup):
            found |= shortcuts(step.steps)
        elif isinstance(step, (Choice, Present)):
            found |= shortcuts(step.then) | shortcuts(step.orelse)
    return found


# -- how layers and merges are written -----------------------------------------------------


def layer_steps(target: str, module: str, source: str, flatten: bool, comment: str = "") -> list[Step]:
    """An op layer's module called on ``source``, flattened first where ``flatten``."""
    if flatten:
        return [Flatten(target, source), Call(target, module, target, comment)]
    return [Call(target, module, source, comment)]


def merge_step(
    merge: Merge, target: str, main: str, other: str, inplace: bool, args: Mapping[str, str] | None = None
) -> Step:
    """A merge of ``main`` with ``other`` (no shortcut module): in place (``x *= s0``) where
    ``inplace`` and the merge's operator may, else the op table's expression (``args``: the
    source of the layer's arguments, which it may read)."""
    if inplace and merge.in_place and merge.operator is not None:
        return Update(target, merge.operator, other)
    return Assign(target, merge.expr(main, other, args))


def own_param_step(layer: Layer, target: str, source: str, param: str) -> Step:
    """An op held as a parameter of its scope's module (layer_scale's gamma), applied to ``source``."""
    form = OPS[layer.op].own_param
    assert form is not None and layer.in_shapes, layer.id
    return Assign(target, form.apply(source, f"self.{param}", layer.in_shapes[0], layer.attrs))


def own_modules_step(layer: Layer, target: str, source: str, local: Callable[[str], str] = str) -> Step:
    """An op whose modules are attributes of its scope's module (res2_hierarchy), run on
    ``source`` into ``target``; ``local`` gives free names for its local variables."""
    form = OPS[layer.op].own_modules
    assert form is not None, layer.id
    return Lines(tuple(form.forward(source, target, layer.attrs, local)))


# -- a scope of the IR, as build_model runs it ---------------------------------------------


def reads(network: Network, scope: Scope, apart: bool = False) -> list[tuple[Layer | Scope, int, str]]:
    """The values the items of ``scope`` read when ``x`` no longer holds them, as (the item,
    its input port, the node read): a merge's second operand, a gate's input after its branch
    ran, a ``project_from`` tap. This is the one rule of what a forward keeps.

    ``apart``: a gate's branch writes a variable of its own (``se_gate = self.se(out)``, as
    generated code writes it) instead of moving ``x`` on, so ``x`` still holds the gate's input
    when the multiply reads it and the branch's output is read from its own variable: neither
    is kept. build_model's forward (``apart`` false) runs the branch in ``x`` and keeps the input."""
    out: list[tuple[Layer | Scope, int, str]] = []
    current = scope.input
    held: set[str] = set()  # outputs of gate branches held apart
    for item in scope.items:
        if isinstance(item, Scope):
            ins = [(item.input, 0)]
        else:
            ins = sorted(((node, edge["port"]) for node, edge in network.graph.pred[item.id].items()), key=_port)
        out += [(item, port, node) for node, port in ins if node != current and node not in held]
        if apart and isinstance(item, Scope) and item.side:
            held.add(item.output)
            continue
        current = item.output if isinstance(item, Scope) else item.id
    return out


def _port(read: tuple[str, int]) -> int:
    return read[1]


def kept(network: Network, scope: Scope, apart: bool = False) -> set[str]:
    """Nodes whose output is read when ``x`` no longer holds it (see :func:`reads`)."""
    return {node for _, _, node in reads(network, scope, apart)}


def scope_forward(network: Network, scope: Scope, plan: Plan | None = None) -> Forward:
    """The forward of a block or network scope: the value so far in ``x``, each value read
    after ``x`` moved on saved in ``s0``, ``s1``, ... right after it is made; ``plan`` (the
    network body only) adds feature outputs and checkpointing."""
    keep = kept(network, scope)
    saved: dict[str, str] = {}

    def save(node: str) -> list[Step]:
        if node not in keep:
            return []
        saved[node] = f"s{len(saved)}"
        return [Save(saved[node], "x")]

    head = save(scope.input)
    holds = scope.input  # the node whose output x holds
    segments = []
    for item in scope.items:
        var = {**saved, holds: "x"}
        steps = [Call("x", item.name, var[item.input])] if isinstance(item, Scope) else _layer(network, item, var)
        holds = item.output if isinstance(item, Scope) else item.id
        segments.append(Segment.of(item, [*steps, *save(holds)]))
    return planned(head, segments, plan, "x")


def _layer(network: Network, layer: Layer, var: dict[str, str]) -> list[Step]:
    op = OPS[layer.op]
    inputs = [var[p] for p in network.inputs(layer.id)]
    if op.merge is not None and layer.shortcut is not None:
        return _residual_steps(layer, op.merge, inputs[0], var[network.shortcut_source(layer)])
    if op.merge is not None:  # the main input combined with another operand (a gate's, a concatenation's)
        args = {key: repr(value) for key, value in layer.attrs.items()}
        return [merge_step(op.merge, "x", inputs[0], inputs[1], layer.inplace and inputs[0] == "x", args)]
    if op.own_param is not None:
        return [own_param_step(layer, "x", inputs[0], layer.module)]
    if op.own_modules is not None:
        return [own_modules_step(layer, "x", inputs[0])]
    return layer_steps("x", layer.module, inputs[0], flattens(layer))


def _residual_steps(layer: Layer, merge: Merge, main: str, other: str) -> list[Step]:
    """A residual addition of its mapped shortcut; option A at inference adds the subsampled
    shortcut into the first channels, never making the zero channels (3x cheaper than padding)."""
    s = layer.shortcut
    assert s is not None and merge.operator is not None, layer.id
    if not s.adds:  # identity_if_same where the shapes differ: the main branch passes on alone
        return [] if main == "x" else [Assign("x", main)]
    if s.add_into and layer.inplace and main == "x" and merge.operator == "+":
        sub = f"[:, :, ::{s.stride}, ::{s.stride}]" if s.stride > 1 else ""
        return [Update(f"x[:, :{s.in_channels}]", "+", f"{other}{sub}")]
    # a main operand kept in a variable: x holds that very tensor, which must not be added into
    first: list[Step] = [] if main == "x" else [Assign("x", main)]
    inplace = layer.inplace and main == "x" and merge.in_place
    shortcut = layer.module if s.steps() else None  # steps: the shortcut module's (see the torch back end)
    return [*first, Residual("x", other, other, shortcut, inplace=inplace, operator=merge.operator)]
