"""Feature outputs and checkpointing applied to the steps of a network body's forward.

:func:`planned` takes the steps each top-level item of a network body wrote
(:class:`Segment`) and a :class:`~resdsl.ir.features.Plan` (:mod:`resdsl.ir.features` checks the
request and cuts the network): it captures each feature output after the item that makes it (a
copy where the next layer overwrites the value), calls the children of a group with a feature
inside it one by one (:func:`_unrolled`), and writes checkpointed calls under ``if
self.grad_checkpointing and not torch.jit.is_scripting():`` (:func:`group_runs`). Both back ends
plan through it, the torch back end from :func:`resdsl.ir.forward.scope_forward`, the code
generator from its network class. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from resdsl.ir import Layer, Scope
from resdsl.ir.features import Feature, Plan, top_level
from resdsl.ir.steps import Call, Capture, CheckpointGroup, Flatten, Forward, NewFeatures, Save, Step, flattens
from resdsl.ops import fmt_shape

__all__ = ["Segment", "group_runs", "planned"]


@dataclass(frozen=True)
class Segment:
    """The steps one top-level item of a network body wrote; ``name``: what a plan calls it
    (None: anonymous), ``attr``: its module attribute, ``output``: the IR node it leaves."""

    name: str | None
    attr: str
    output: str
    stage: bool
    steps: tuple[Step, ...]

    @classmethod
    def of(cls, item: Layer | Scope, steps: Sequence[Step], attr: str | None = None) -> Segment:
        if isinstance(item, Scope):
            return cls(item.name, attr or item.name, item.output, item.kind == "stage", tuple(steps))
        return cls(None if item.anonymous else item.name, attr or item.module, item.id, False, tuple(steps))


def _kind(step: Step) -> str:
    """A step's part in grouping: ``checkpoint``, ``passive`` (keeps or captures a value) or ``other``."""
    if isinstance(step, Call) and step.checkpointed is not None:
        return "checkpoint"
    return "passive" if isinstance(step, (Save, Capture, NewFeatures)) else "other"


def group_runs(kinds: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of forward steps to write under one checkpointing branch:
    runs from a ``"checkpoint"`` step to the last one before an ``"other"`` step, with only
    ``"passive"`` steps (saving a value, taking a feature) between."""
    runs: list[tuple[int, int]] = []
    start = last = -1
    for i, kind in enumerate([*kinds, "other"]):
        if kind == "checkpoint":
            start = i if start < 0 else start
            last = i
        elif kind == "other" and start >= 0:
            runs.append((start, last + 1))
            start = last = -1
    return runs


def planned(
    head: Sequence[Step], segments: Sequence[Segment], plan: Plan | None, main: str, features: str = "features"
) -> Forward:
    """A network body's forward: ``head`` (steps before the first item) and each item's
    steps, with ``plan``'s feature outputs captured into the dict ``features`` after the item
    that makes them, the groups they are inside called child by child (:func:`_unrolled`), and
    checkpointed calls grouped (see :func:`group_runs`)."""
    if plan is None:
        return Forward((*head, *(step for segment in segments for step in segment.steps)), "Tensor", main)
    capture = _captures(plan)
    checkpointed = set(plan.checkpoint)
    steps: list[Step] = [NewFeatures(features)] if capture else []
    steps += head
    marked: set[str] = set()
    for segment in segments:
        for step in segment.steps:
            if not (isinstance(step, Call) and step.module == segment.attr and segment.name is not None):
                steps.append(step)
                continue
            check = segment.name in checkpointed
            marked |= {segment.name} if check else set()
            if segment.name in plan.unrolled:
                scope = top_level(plan.network)[segment.name]
                assert isinstance(scope, Scope)
                steps += _unrolled(plan, scope, segment.attr, step, capture, features, check)
            elif check:
                modules = f"self.{segment.attr}" if segment.stage else f"[self.{segment.attr}]"
                steps.append(replace(step, checkpointed=modules))
            else:
                steps.append(step)
        top = [f for f in capture.get(segment.output, ()) if "." not in f.name]  # those inside: _unrolled's
        steps += _capture(top, features, main)
    if checkpointed - marked:
        raise AssertionError(f"checkpointed layers {sorted(checkpointed - marked)} have no call")
    runs = dict(group_runs([_kind(step) for step in steps]))
    out: list[Step] = []
    i = 0
    while i < len(steps):
        end = runs.get(i, i + 1)
        out.append(CheckpointGroup(tuple(steps[i:end])) if i in runs else steps[i])
        i = end
    if capture:
        return Forward(tuple(out), "dict[str, Tensor]", features)
    return Forward(tuple(out), "Tensor", main)


def _captures(plan: Plan) -> dict[str, list[Feature]]:
    """The feature outputs by the node whose output they are (``blocks`` and ``blocks.6`` are one)."""
    out: dict[str, list[Feature]] = {}
    for feature in plan.features:
        out.setdefault(feature.node, []).append(feature)
    return out


def _capture(wanted: Iterable[Feature], features: str, main: str) -> list[Step]:
    """The captures of the outputs ``wanted`` that ``main`` holds (a copy where the next layer overwrites it)."""
    return [Capture(features, f.name, f"{main}.clone()" if f.copy else main) for f in wanted]


def _unrolled(
    plan: Plan,
    group: Scope,
    attr: str,
    call: Call,
    capture: dict[str, list[Feature]],
    features: str,
    checkpointed: bool,
) -> list[Step]:
    """A stage's, sequential group's or chain block's ``call`` as its children's calls one by one
    (``self.blocks[0](x)``, ..., ``self.features.conv0(x)``), as its own forward runs them, with the feature outputs
    inside it captured after the child that makes them; a group with a feature further down
    is unrolled in turn. Under checkpointing, each child is checkpointed on its own."""
    steps: list[Step] = []
    source = call.source
    for i, child in enumerate(group.items):
        if group.kind == "block":  # a chain of the block's attributes (features.denseblock1)
            access = f"{attr}.{child.name if isinstance(child, Scope) else child.module}"
        else:  # an nn.Sequential's children by position
            access = f"{attr}[{i}]"
        node = child.output if isinstance(child, Scope) else child.id
        shape = plan.network.layer(node).shape
        comment = fmt_shape(shape) if call.comment else ""
        inner = Call(call.target, access, source, comment, f"[self.{access}]" if checkpointed else None)
        if isinstance(child, Scope) and child.path in plan.unrolled:
            steps += _unrolled(plan, child, access, inner, capture, features, checkpointed)
        else:
            if isinstance(child, Layer) and flattens(child):
                steps.append(Flatten(call.target, source))
                inner = replace(inner, source=call.target)
            steps.append(inner)
        steps += _capture([f for f in capture.get(node, ()) if f.name == child.path], features, call.target)
        source = call.target
    return steps
