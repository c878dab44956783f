"""Sequential groups, nested ones included: an ``nn.Sequential`` numbered 0, 1, ... whose members
are torch layers or groups of them (torchvision's Conv2dNormActivation, an nn.Sequential
subclass, inside MobileNetV2's ``InvertedResidual.conv``: ``conv.0.0.weight``) is
``sequential(sequential(conv(...), batchnorm, relu6), ..., conv(...), batchnorm)``.

A group is one statement of a block: ``{"body": "sequential(conv, batchnorm, relu6), conv", ...}``
with its members' arguments as ``m{j}.{key}`` (a nested group's as ``m{j}.m{i}.{key}``, its
body as ``m{j}.body``), so that the instances of a block compare and vary key by key, and two
groups are alike where their bodies are.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from resdsl.diagnostics import ResdslError
from resdsl.importing.layers import is_leaf, op_of
from resdsl.importing.layout import LAYOUT_FREE, channels_last_op, permute_module
from resdsl.importing.trace import refuse, trace


def is_group(module: nn.Module) -> bool:
    """An ``nn.Sequential`` that runs its members in order, numbered 0, 1, ..., each a torch
    layer, such a group, or a module that permutes the map between channels-first and -last."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return False
    names = [name for name, _ in module.named_children()]
    if not names or names != [str(i) for i in range(len(names))]:
        return False
    return all(is_leaf(m) or is_group(m) or permute_module(m) for m in module.children())


def group_args(module: nn.Module, path: str) -> dict[str, object]:
    """A group's statement arguments: its body and its members' arguments by ``m{j}.``. Between
    a permute to channels-last and one back (torchvision's ConvNeXt block), the members are
    the ops they are on a channels-last map (:func:`.layout.channels_last_op`) and each permute
    is an ``identity`` in its place: the language's maps stay channels-first."""
    ops: list[str] = []
    args: dict[str, object] = {}
    last = False
    own: dict[str, object]
    for j, member in enumerate(module.children()):
        layout = permute_module(member) if not is_leaf(member) and not is_group(member) else None
        if layout is not None:
            if last == (layout == "channels_last"):
                raise refuse("E904", f"`{path}.{j}` permutes a map that is {layout[9:]} already", member, path, "")
            last = not last
            op, own = "identity", {}
            ops.append(op)
        elif last:
            op, own = _channels_last(member, f"{path}.{j}")
            ops.append(op)
        elif is_leaf(member):
            op, own = op_of(member, f"{path}.{j}")
            ops.append(op)
        else:
            own = group_args(member, f"{path}.{j}")
            ops.append(f"sequential({own['body']})")
        args |= {f"m{j}.{k}": v for k, v in own.items()}
    if last:
        raise refuse("E904", f"`{path}` returns a channels-last map", module, path, "")
    return {"body": ", ".join(ops), **args}


def _channels_last(member: nn.Module, path: str) -> tuple[str, dict[str, object]]:
    """A group member on a channels-last map: a LayerNorm or Linear as its op over the channels,
    or a layer that computes the same in either layout."""
    found = channels_last_op(member)
    if found is not None:
        return found
    if is_leaf(member) and op_of(member, path)[0] in LAYOUT_FREE:
        return op_of(member, path)
    raise refuse(
        "E904", f"`{path}` runs on a channels-last map", member, path, "between the permutes a group holds layers"
    )


def split(body: str) -> list[str]:
    """A body's members: the text between its top-level commas."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(body[start:i].strip())
            start = i + 1
    return [*out, body[start:].strip()]


def member_op(args: dict[str, object], key: str) -> tuple[str, str]:
    """The op a group's argument ``m1.m0.out`` belongs to, and its own key (``conv``, ``out``)."""
    op = "sequential"
    while op == "sequential" and "." in key:
        member, _, key = key.partition(".")
        text = split(str(args["body"]))[int(member[1:])]
        op = "sequential" if text.startswith("sequential(") else text
        args = {k.partition(".")[2]: v for k, v in args.items() if k.startswith(f"{member}.")}
    return op, key


Render = Callable[[str, dict[str, object], set[str]], str]


def render_group(args: dict[str, object], symbolic: set[str], render_op: Render) -> str:
    """``sequential(...)`` for a group's arguments; ``render_op(op, args, symbolic)`` writes one
    member op (``symbolic``: the arguments that are the block's parameters, written bare)."""
    members = []
    for j, text in enumerate(split(str(args["body"]))):
        own = {k.partition(".")[2]: v for k, v in args.items() if k.startswith(f"m{j}.")}
        mine = {k.partition(".")[2] for k in symbolic if k.startswith(f"m{j}.")}
        if text.startswith("sequential("):
            members.append(render_group(own, mine, render_op))
        elif text == "identity":  # a bare identity in a call's arguments is the shortcut kind
            members.append("identity()")
        else:
            members.append(render_op(text, own, mine))
    return f"sequential({', '.join(members)})"


def gate_member(group: nn.Module, path: str) -> ResdslError | None:
    """E910 for an nn.Sequential that holds a gate, a module that multiplies its input by what it
    computes (torchvision's SqueezeExcitation in MBConv's ``block``): the language's
    ``sequential(...)`` holds no ``gate(...)``; None where it holds none."""
    if not isinstance(group, nn.Sequential) or type(group).forward is not nn.Sequential.forward:
        return None
    for j, member in enumerate(group.children()):
        if is_leaf(member) or isinstance(member, nn.Sequential):
            continue
        steps = trace(member, f"{path}.{j}").steps
        if steps and steps[-1].kind == "scale":
            return refuse(
                "E910",
                f"`{path}.{j}` multiplies its input by what it computes (a gate) inside an nn.Sequential",
                member,
                f"{path}.{j}",
                "sequential(...) holds layers, groups, blocks and stages, not gate(...): the spec can say "
                "this gate only as a named layer of a block (se = gate(...)), which gives other state_dict keys",
            )
    return None
