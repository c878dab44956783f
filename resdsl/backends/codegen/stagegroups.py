"""Stages that differ only by numbers, built by one function, as torchvision's ``_make_layer``.

:mod:`stages` writes each stage as its own ``nn.Sequential`` of a first block and a loop over
the later ones. Consecutive stages of one block class, each a first block and a loop, whose
constructor calls differ only in some arguments' values, are written once instead: a function
local to the constructor (so it reads the class's parameters as they are) takes the values that
differ, in the order they first appear, and each stage is one line that calls it::

    def make_layer(in_channels: int, planes: int, stride: int, out_channels: int, blocks: int):
        return nn.Sequential(Bottleneck(in_channels, planes, stride=stride, groups=groups),
                             *[Bottleneck(out_channels, planes, groups=groups) for _ in range(blocks - 1)])

    self.layer1 = make_layer(64, 64, 1, 256, depths[0])
    self.layer2 = make_layer(256, 128, 2, 512, depths[1])

An argument that differs between the stages is named after the block parameter it is for
(``in_channels`` for the first block's input, ``out_channels`` for the later blocks', which is
the stage's output, ``blocks`` for the repeat); one that is the same in every stage stays
written inside. A keyword argument that some stage leaves out takes the class's default there.
The calls are exactly the ones :mod:`stages` wrote, so the modules, their names and the
state_dict keys are unchanged. Stages whose differing values read the loop's variable, or that
are written block by block, stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from resdsl.backends.codegen.classes import Call, ClassDef
from resdsl.backends.codegen.expr import fresh

__all__ = ["StageGroup", "group_stages"]

_KEYWORD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(?!=)(.*)$", re.S)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class StageGroup:
    """What the template writes for a group: the function, its parameters (name, type), the
    calls it makes and each stage's line (attribute, the values it passes)."""

    function: str
    params: list[tuple[str, str]]
    first: Call
    rest: Call
    count: str
    var: str
    stages: list[tuple[str, list[str]]]
    names: tuple[list[str], str] | None = None  # the blocks' names where the stages name them


def group_stages(cls: ClassDef, classes: dict[str, ClassDef]) -> None:
    """Replace each run of two or more stages of ``cls`` that one function can build by that
    function and its calls (``classes``: the block classes by name, for their defaults)."""
    init: list[tuple[str, Any]] = []
    run: list[tuple[str, Any]] = []
    for entry in [*cls.init, ("end", None)]:
        if entry[0] == "stage" and _loop(entry) and (not run or _joins(run[0], entry)):
            run.append(entry)
            continue
        init += _flush(run, cls, classes)
        run = [entry] if entry[0] == "stage" and _loop(entry) else []
        if not run and entry[0] != "end":
            init.append(entry)
    cls.init = init


def _loop(entry: tuple[str, Any]) -> bool:
    """A stage of a first block and a loop over the later ones."""
    _, calls, rest, _, _ = entry[1]
    return len(calls) == 1 and rest is not None


def _joins(first: tuple[str, Any], entry: tuple[str, Any]) -> bool:
    """Whether a stage builds the blocks of the run's first stage, in the same loop."""
    (_, calls, rest, _, names), (_, other, other_rest, _, other_names) = first[1], entry[1]
    same_calls = calls[0].name == other[0].name and rest[0].name == other_rest[0].name
    return bool(same_calls and rest[2] == other_rest[2] and names == other_names)


def _flush(run: list[tuple[str, Any]], cls: ClassDef, classes: dict[str, ClassDef]) -> list[tuple[str, Any]]:
    """The run's entries: one group where it has two stages or more and one function fits."""
    if len(run) < 2:
        return run
    group = _group([entry[1] for entry in run], cls, classes)
    return run if group is None else [("stages", group)]


def _arguments(call: Call, block: ClassDef | None) -> list[tuple[str, str]]:
    """A call's arguments as (parameter, source): positional ones by the class's parameter at
    that place, keyword ones by their keyword."""
    names = [n for n, _, _ in block.params if n != "*"] if block is not None else []
    out: list[tuple[str, str]] = []
    for k, arg in enumerate(call.args):
        keyword = _KEYWORD.match(arg)
        if keyword is not None:
            out.append((keyword.group(1), keyword.group(2)))
        else:
            out.append((names[k] if k < len(names) else f"arg{k}", arg))
    return out


def _group(stages: list[Any], cls: ClassDef, classes: dict[str, ClassDef]) -> StageGroup | None:
    """One function for these stages, or None where their calls differ in more than values."""
    tables: list[tuple[Call, list[dict[str, str]], list[str]]] = []
    types: dict[str, str] = {}
    for which in (1, 2):  # the first blocks' calls, the later blocks'
        calls = [s[which][0] for s in stages]
        block = classes.get(calls[0].name)
        params = block.params if block is not None else []
        types |= {n: t for n, t, _ in params}
        defaults = {n: d for n, _, d in params if d is not None}
        if len({tuple(k for k, a in enumerate(c.args) if _KEYWORD.match(a) is None) for c in calls}) != 1:
            return None  # positional arguments in other places
        table = [dict(_arguments(c, block)) for c in calls]
        place = {n: k for k, (n, _, _) in enumerate(params)}  # keywords in the class's order
        order = sorted(dict.fromkeys(k for t in table for k in t), key=lambda k: place.get(k, len(place)))
        for t in table:  # a keyword some stage leaves out: the class's default there
            for k in order:
                if k not in t and k not in defaults:
                    return None
                t.setdefault(k, defaults.get(k, ""))
        tables.append((calls[0], table, order))
    var = stages[0][2][2]
    taken = set(cls.locals) | {n for n, _, _ in cls.params} | {var}
    taken |= {w for _, table, _ in tables for t in table for v in t.values() for w in _WORD.findall(v)}
    taken |= {w for s in stages for w in _WORD.findall(s[3])}
    columns: dict[tuple[str, ...], tuple[str, str]] = {}  # values stage by stage: (name, type)

    def column(values: tuple[str, ...], name: str, type_: str) -> str | None:
        if len(set(values)) == 1:
            return values[0]
        if any(var in _WORD.findall(v) for v in values):
            return None  # it reads the loop's variable: it cannot be passed in
        if values not in columns:
            columns[values] = (fresh(name, taken | {n for n, _ in columns.values()}), type_)
        return columns[values][0]

    written: list[Call] = []
    for later, (call, table, order) in enumerate(tables):
        positional = {k for k, a in enumerate(call.args) if _KEYWORD.match(a) is None}
        args: list[str] = []
        for at, key in enumerate(order):
            name = "out_channels" if later and at == 0 else key  # the later blocks' input: the stage's output
            value = column(tuple(t[key] for t in table), name, types.get(key, ""))
            if value is None:
                return None
            args.append(value if at in positional else f"{key}={value}")
        written.append(Call(call.name, args))
    repeats = tuple(s[3] for s in stages)
    if len(set(repeats)) == 1:
        if len({s[2][1] for s in stages}) != 1:
            return None
        count = stages[0][2][1]
    else:
        count = f"{column(repeats, 'blocks', 'int')} - 1"
    function = fresh("make_layer", taken | {n for n, _ in columns.values()})
    lines = [(s[0], [values[n] for values in columns]) for n, s in enumerate(stages)]
    return StageGroup(function, list(columns.values()), written[0], written[1], count, var, lines, stages[0][4])
