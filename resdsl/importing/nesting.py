"""Stages inside a block, and module containers that are blocks (DenseNet's ``features``).

- An ``nn.Sequential`` of one block class inside a block is a ``stage(...)`` there
  (:meth:`resdsl.importing.blocks.BlockClass._stage`); children named ``denselayer1``,
  ``denselayer2`` ... (not ``0``, ``1`` ...) give it ``prefix=`` and ``start=``
  (:func:`resdsl.importing.names.stage_naming`), so the keys are kept.
- A dense block (torchvision's ``_DenseBlock``, an ``nn.ModuleDict``): a module whose forward
  passes each child the list of its input and every earlier child's output, and returns their
  concatenation. Its children concatenate their list input first (:mod:`.library`), so each is
  a block ending in ``concat``, and the dense block is a stage of them: the same tensors.
- An ``nn.Sequential`` whose children have names of their own (``features.conv0``,
  ``transition1.norm``) is a block, not a ``sequential(...)`` group, whose layers are numbered.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from resdsl.importing.layers import is_leaf
from resdsl.importing.trace import CAT, _ChildrenAreLeaves


def named_sequential(module: nn.Module) -> bool:
    """An ``nn.Sequential`` whose children are not named ``0``, ``1`` ...: a block, keys kept."""
    names = [name for name, _ in module.named_children()]
    return isinstance(module, nn.Sequential) and bool(names) and names != [str(i) for i in range(len(names))]


def stage_members(module: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The blocks of ``module`` where it is a stage: a sequential run of one block class, or a
    dense block; None otherwise."""
    members = list(module.named_children())
    if not members or len({type(m) for _, m in members}) != 1 or is_leaf(members[0][1]):
        return None
    if isinstance(members[0][1], nn.Sequential):
        return None  # a group of stages is no stage
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return members
    return members if _dense_block(module) else None


def _dense_block(module: nn.Module) -> bool:
    """Child i is called with [input, out_1 ... out_i-1], and the output is cat([input, out_1 ...
    out_n], 1), each child once, in order."""
    try:
        graph = _ChildrenAreLeaves().trace(module)
    except Exception:  # a forward fx cannot trace is no dense block; the walk says why
        return False
    nodes = [n for n in graph.nodes if n.op not in ("output",)]
    if not nodes or nodes[0].op != "placeholder":
        return False
    seen: list[torch.fx.Node] = [nodes[0]]
    names = [name for name, _ in module.named_children()]
    for node, name in zip(nodes[1:], [*names, None], strict=False):
        if name is not None and node.op == "call_module" and str(node.target) == name:
            if list(node.args) != [seen] or node.kwargs:
                return False
            seen.append(node)
            continue
        tensors = node.args[0] if node.args else None
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        concatenates = node.op == "call_function" and node.target in CAT and dim == 1
        return concatenates and list(tensors) == seen and len(seen) == len(names) + 1 and len(node.users) == 1  # type: ignore[arg-type]
    return False
