"""Layer scale in a traced forward: the main branch multiplied by a parameter of the module
itself, shaped to the channels (ConvNeXt's ``x * self.gamma.reshape(-1, 1, 1)``, timm's
``x.mul(self.gamma.reshape(1, -1, 1, 1))``). The parameter's reshape is no step of its own."""

from __future__ import annotations

import operator

import torch
import torch.fx
from torch import nn

_MUL = (operator.mul, operator.imul, torch.mul, "mul", "mul_")
_SHAPING = ("reshape", "view", "unsqueeze")  # methods that only give the parameter its 1 x C x 1 x 1 shape


def _is_mul(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _MUL) or (node.op == "call_method" and node.target in _MUL)


def _per_channel(value: torch.Tensor) -> bool:
    """A (C,) tensor, or a (C, 1, 1) one (torchvision's ConvNeXt ``layer_scale``: ``dims=3``)."""
    return value.dim() == 1 or (value.dim() == 3 and tuple(value.shape[1:]) == (1, 1))


def _parameter(node: object, module: nn.Module, chain: list[torch.fx.Node]) -> str | None:
    """The name of the module's own 1-d parameter that ``node`` is (through reshapes), the
    nodes on the way added to ``chain``."""
    while isinstance(node, torch.fx.Node):
        chain.append(node)
        if node.op == "get_attr":
            target = str(node.target)
            value = getattr(module, target, None) if "." not in target else None
            return target if isinstance(value, nn.Parameter) and _per_channel(value) else None
        if node.op == "call_method" and node.target in _SHAPING and len(node.users) == 1:
            node = node.args[0]
        else:
            return None
    return None


def layer_scales(graph: torch.fx.Graph, module: nn.Module) -> tuple[dict[torch.fx.Node, str], set[torch.fx.Node]]:
    """The products that scale by an own parameter (node -> parameter name), and the nodes
    that only fetch and shape those parameters (to be passed over)."""
    scales: dict[torch.fx.Node, str] = {}
    fetch: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if not _is_mul(node) or len(node.args) != 2:
            continue
        for arg in node.args:
            chain: list[torch.fx.Node] = []
            name = _parameter(arg, module, chain)
            if name is not None:
                scales[node] = name
                fetch.update(chain)
                break
    return scales, fetch


def misshapen_scale(node: torch.fx.Node, module: nn.Module) -> str | None:
    """Why a product that scales by an own parameter is no layer scale, where it is one of
    another shape (torchvision's ConvNeXt: ``self.layer_scale`` of shape (C, 1, 1)); else None."""
    if not _is_mul(node):
        return None
    for arg in node.args:
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr" and "." not in str(arg.target):
            value = getattr(module, str(arg.target), None)
            if isinstance(value, nn.Parameter):
                return (
                    f"`{arg.target}`, a parameter of shape {tuple(value.shape)}, multiplies the branch: "
                    "layer_scale's state_dict entry is (C,), or (C, 1, 1) with dims=3"
                )
    return None
