"""Library ops found in torch code: what a module's forward computes with tensor functions
(a split, reshapes, sums) that is one of resdsl's ops, read off the traced graph.

- ``res2_hierarchy`` (Res2Net's Bottle2neck): ``torch.split`` of the map into chunks of
  ``width``, each of the first through ``convs.i`` [``bns.i``] and a ReLU after the previous
  result is added (not where ``pool`` exists, a first block), the last chunk kept or through
  ``pool``, all concatenated. The modules must be the block's attributes the op's definition
  names (``OwnModules.attrs``), so its keys are the op's.
- the radix ops (ResNeSt's SplitAttn): a reshape (or ``unflatten``) to ``B x R x C x H x W`` is
  a view of R splits; its ``.sum(1)`` is ``radix_sum``, and the sum of the product of two such
  views is ``radix_combine``, whose ``splits=`` names the layer the earlier view reads.
- a stateless module of no torch class that computes what one of resdsl's runtime modules does
  (timm's RadixSoftmax, a generated file's RadixSum) is that op: its arguments are read from
  its attributes (``cardinality`` for ``groups``) and checked by running both on a probe.

Shape arithmetic (``x.shape``, ``x.size(0)``, ``RC // radix``), ``contiguous()`` and the view
that gives a radix softmax's ``B x RC`` back its ``1 x 1`` map are plumbing, not steps. What
does not fit these forms is left to the walk, which refuses it (E903).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn

from resdsl.ops import OPS
from resdsl.ops.hierarchy import RES2_HIERARCHY

Found = tuple[str, dict[str, object]]  # (op, its non-default arguments)
_ARITH = (operator.floordiv, operator.mul, operator.add, operator.sub, operator.truediv, operator.getitem)
_VIEWS = ("reshape", "view")
_CAT = (torch.cat, torch.concat)
# the functions between a hierarchy's split and its concatenation: chunks, sums, ReLUs
_IN_HIERARCHY = (operator.getitem, operator.add, operator.iadd, torch.add, torch.relu, nn.functional.relu)
# a runtime op's parameter read from another attribute name (timm's RadixSoftmax: cardinality)
_ATTR_ALIASES = {"groups": ("groups", "cardinality")}


class Name(str):
    """A layer name as an argument (``splits=act0``): written bare, not quoted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def defaults(op: str) -> dict[str, object]:
    """The defaults of an op's optional arguments, from its definition."""
    return {p.name: p.default for p in OPS[op].params if not p.required and p.default_from is None}


def _changed(op: str, args: dict[str, object]) -> dict[str, object]:
    table = defaults(op)
    return {k: v for k, v in args.items() if k not in table or table[k] != v}


@dataclass
class Library:
    """The library ops of one traced forward: ``steps`` the op at the node that ends it,
    ``skip`` the nodes inside them and the shape plumbing around them."""

    graph: torch.fx.Graph
    module: nn.Module
    steps: dict[torch.fx.Node, Found] = field(default_factory=dict)
    skip: set[torch.fx.Node] = field(default_factory=set)
    # the forward takes a list of maps and concatenates it first (torchvision's _DenseLayer):
    # in a dense block that is a layer ending in concat (:mod:`.nesting`)
    list_input: bool = False

    def __post_init__(self) -> None:
        self.order = {node: i for i, node in enumerate(self.graph.nodes)}
        self._meta()
        self._list_input()
        for node in self.graph.nodes:
            if _is_split(node):
                self._hierarchy(node)
        self._radix()

    def _meta(self) -> None:
        """Nodes that compute sizes, not tensors: ``x.shape``, ``x.size(i)`` and arithmetic on them."""
        for node in self.graph.nodes:
            shape = node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)
            size = node.op == "call_method" and node.target == "size"
            arith = node.op == "call_function" and node.target in _ARITH
            if shape or size or (arith and _nodes(node.args) and all(a in self.skip for a in _nodes(node.args))):
                self.skip.add(node)

    def _list_input(self) -> None:
        inputs = [n for n in self.graph.nodes if n.op == "placeholder"]
        for node in self.graph.nodes:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if node.op == "call_function" and node.target in _CAT and node.args[:1] == tuple(inputs) and dim == 1:
                self.skip.add(node)
                self.list_input = len(inputs) == 1

    def _hierarchy(self, split: torch.fx.Node) -> None:
        """A split whose chunks meet again in one concatenation, every node between them one of
        the hierarchy's: (the chunk, convs.i, bns.i, relu, an addition, pool)."""
        region = _between(split)
        ends = [n for n in region if _is_cat(n) and not _chained(n)]
        if len(ends) != 1:
            return
        found = self._hierarchy_args(split, region)
        if found is not None:
            self.steps[ends[0]] = ("res2_hierarchy", found)
            self.skip |= region - {ends[0]}

    def _hierarchy_args(self, split: torch.fx.Node, region: set[torch.fx.Node]) -> dict[str, object] | None:
        """The op's arguments, from the split and the block's convs, bns and pool (the attributes
        the op's definition names); None where the region is no hierarchy."""
        attrs = RES2_HIERARCHY.own_modules.attrs if RES2_HIERARCHY.own_modules else ()
        convs, bns, pool = (getattr(self.module, a, None) for a in attrs[1:4])
        conv = convs[0] if isinstance(convs, nn.ModuleList) and len(convs) else None
        if not isinstance(convs, nn.ModuleList) or not isinstance(conv, nn.Conv2d):
            return None
        named = [split.kwargs.get(k) for k in ("split_size_or_sections", "split_size", "chunks")]
        size = split.args[1] if len(split.args) > 1 else next((v for v in named if v is not None), None)
        chunked = split.target in (torch.chunk, "chunk")
        if chunked and size != len(convs) + 1:
            return None
        width = conv.in_channels if chunked else size
        if not isinstance(width, int):
            return None
        layers = self._hierarchy_modules(region, len(convs))
        if layers is None:
            return None
        norm, first = layers
        functions = [n for n in region if n.op == "call_function" and n is not split and not _is_cat(n)]
        methods = [n for n in region if n.op == "call_method" and n is not split]
        if any(n.target not in _IN_HIERARCHY for n in functions) or methods:
            return None
        adds = [n for n in functions if n.target in (operator.add, operator.iadd, torch.add)]
        if len(adds) != (0 if first else len(convs) - 1) or not _hierarchy_layers(
            convs, bns if isinstance(bns, nn.ModuleList) and norm else None, pool
        ):
            return None
        args: dict[str, object] = {
            "width": width,
            "scale": len(convs) + 1,
            "k": conv.kernel_size[0],
            "s": conv.stride[0],
        }
        args |= {"groups": conv.groups, "first": first, "norm": norm}
        return _changed("res2_hierarchy", args)

    def _hierarchy_modules(self, region: set[torch.fx.Node], n: int) -> tuple[bool, bool] | None:
        """(norm, first): the region calls ``convs.0`` ... and maybe ``bns.0`` ..., ReLU modules,
        and ``pool`` (a first block's); None where it calls anything else."""
        called = {str(node.target) for node in region if node.op == "call_module"}
        relus = {t for t in called if isinstance(self.module.get_submodule(t), nn.ReLU)}
        norm = bool(called & {f"bns.{i}" for i in range(n)})
        expected = {f"convs.{i}" for i in range(n)} | ({f"bns.{i}" for i in range(n)} if norm else set())
        if called - relus - {"pool"} != expected:
            return None
        if norm and not isinstance(getattr(self.module, "bns", None), nn.ModuleList):
            return None
        return norm, "pool" in called

    def _radix(self) -> None:
        """Reshapes into radix splits, their sums, and the weighted sum of two such views."""
        views: dict[torch.fx.Node, tuple[torch.fx.Node, int]] = {}
        products: dict[torch.fx.Node, tuple[torch.fx.Node, int]] = {}
        for node in self.graph.nodes:
            if node in self.skip or node in self.steps:
                continue
            view = _radix_view(node)
            if view is not None:
                views[node] = view
                self.skip.add(node)
            elif _is_method(node, "contiguous") or self._restores_map(node):
                self.skip.add(node)
            elif node.op == "call_function" and node.target in (operator.mul, torch.mul) and len(node.args) == 2:
                pair = [views.get(a) for a in node.args if isinstance(a, torch.fx.Node)]
                if len(pair) == 2 and None not in pair and pair[0][1] == pair[1][1]:  # type: ignore[index]
                    splits = min((p[0] for p in pair), key=self.order.__getitem__)  # type: ignore[index]
                    products[node] = (splits, pair[0][1])  # type: ignore[index]
                    self.skip.add(node)
            elif _sums_radix(node) and node.args[0] in views:
                self.steps[node] = ("radix_sum", {"radix": views[node.args[0]][1]})  # type: ignore[index]
            elif _sums_radix(node) and node.args[0] in products:
                splits, radix = products[node.args[0]]  # type: ignore[index]
                args: dict[str, object] = {"radix": radix}
                if splits.op == "call_module":
                    args["splits"] = Name(str(splits.target))
                self.steps[node] = ("radix_combine", args)
        self._keep_unused(views, products)

    def _keep_unused(self, views: Mapping[torch.fx.Node, object], products: Mapping[torch.fx.Node, object]) -> None:
        """A view or product that no radix op consumes stays a step, so the walk refuses it (E903)
        instead of the spec leaving it out."""
        for node in [*products, *views]:
            if not all(user in self.steps or (user in products and user in self.skip) for user in node.users):
                self.skip.discard(node)

    def _restores_map(self, node: torch.fx.Node) -> bool:
        """``.view(B, -1, 1, 1)`` of a radix softmax's output (timm's is ``B x RC``)."""
        if not (node.op == "call_method" and node.target in _VIEWS and node.args):
            return False
        source, dims = node.args[0], _dims(node)
        if not isinstance(source, torch.fx.Node) or source.op != "call_module" or len(dims) != 4:
            return False
        found = runtime_op(self.module.get_submodule(str(source.target)))
        return found is not None and found[0] == "radix_softmax" and list(dims[1:]) == [-1, 1, 1]


def _nodes(values: Iterable[object]) -> list[torch.fx.Node]:
    return [v for v in values if isinstance(v, torch.fx.Node)]


def _is_method(node: torch.fx.Node, name: str) -> bool:
    return node.op == "call_method" and node.target == name


def _is_split(node: torch.fx.Node) -> bool:
    """``torch.split(x, width, 1)`` or ``torch.chunk(x, scale, 1)`` (a function or a method)."""
    dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
    function = node.op == "call_function" and node.target in (torch.split, torch.chunk)
    split = function or (node.op == "call_method" and node.target in ("split", "chunk"))
    return bool(split and dim == 1)


def _is_cat(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target in _CAT


def _between(split: torch.fx.Node) -> set[torch.fx.Node]:
    """The split and what it feeds, up to (and with) the concatenation of its chunks: the first,
    or the last of a chain of them (the original Res2Net's ``out = torch.cat((out, sp), 1)``)."""
    region, todo = {split}, list(split.users)
    while todo:
        node = todo.pop()
        if node in region:
            continue
        region.add(node)
        if not _is_cat(node) or _chained(node):
            todo.extend(node.users)
    return region


def _chained(cat: torch.fx.Node) -> bool:
    """A concatenation whose only use is the first operand of another."""
    users = list(cat.users)
    return len(users) == 1 and _is_cat(users[0]) and _nodes(users[0].args[0])[:1] == [cat]  # type: ignore[arg-type]


def _hierarchy_layers(convs: nn.ModuleList, bns: nn.ModuleList | None, pool: nn.Module | None) -> bool:
    """The op's own modules: equal k x k convs padded k // 2 (a bias only without norms), table
    batchnorms, and a k x k average pool with the conv's stride."""
    first = convs[0]
    if not isinstance(first, nn.Conv2d) or not all(isinstance(c, nn.Conv2d) for c in convs):
        return False
    k, s = first.kernel_size[0], first.stride[0]
    same = {(c.kernel_size, c.stride, c.padding, c.dilation, c.groups, c.bias is None) for c in convs}
    if len(same) != 1 or first.kernel_size != (k, k) or first.stride != (s, s) or first.padding != (k // 2, k // 2):
        return False
    if first.dilation != (1, 1) or (first.bias is None) != (bns is not None):
        return False
    if bns is not None and not all(
        type(b) is nn.BatchNorm2d and (b.eps, b.momentum) == (1e-5, 0.1) and b.affine for b in bns
    ):
        return False
    if pool is None:
        return True
    return (
        type(pool) is nn.AvgPool2d
        and (pool.kernel_size, pool.stride, pool.padding) in (((k, k), (s, s), (k // 2, k // 2)), (k, s, k // 2))
        and not pool.ceil_mode
        and pool.count_include_pad
        and pool.divisor_override is None
    )


def _dims(node: torch.fx.Node) -> tuple[object, ...]:
    """The target shape of a ``reshape``/``view`` call, given as a tuple or one by one."""
    rest = node.args[1:]
    if len(rest) == 1 and isinstance(rest[0], list | tuple):
        return tuple(rest[0])
    return tuple(rest)


def _radix_view(node: torch.fx.Node) -> tuple[torch.fx.Node, int] | None:
    """(source, R) for ``x.reshape(B, R, C, H, W)`` / ``x.view(...)`` / ``x.unflatten(1, (R, -1))``."""
    if node.op != "call_method" or not node.args or not isinstance(node.args[0], torch.fx.Node):
        return None
    if node.target in _VIEWS:
        dims = _dims(node)
        if len(dims) == 5 and isinstance(dims[1], int) and not isinstance(dims[1], bool) and dims[1] >= 1:
            return node.args[0], dims[1]
    if node.target == "unflatten" and node.args[1:2] == (1,) and len(node.args) == 3:
        sizes = node.args[2]
        if isinstance(sizes, list | tuple) and len(sizes) == 2 and isinstance(sizes[0], int) and sizes[1] == -1:
            return node.args[0], sizes[0]
    return None


def _sums_radix(node: torch.fx.Node) -> bool:
    """``v.sum(1)`` / ``v.sum(dim=1)`` (the radix axis), without keepdim."""
    if not _is_method(node, "sum") or not isinstance(node.args[0], torch.fx.Node):
        return False
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return dim in (1, (1,), [1]) and not node.kwargs.get("keepdim", False)


def runtime_op(module: nn.Module) -> Found | None:
    """The op whose runtime module ``module`` is or computes as (a class of that name, its
    parameters among its attributes, the same output on a probe); None for any other module."""
    if module.state_dict() or any(True for _ in module.children()):
        return None
    for op in OPS.values():
        if op.torch is None or op.merge is not None or op.own_modules is not None:
            continue
        args = _attr_args(module, op.name)
        if args is None:
            continue
        try:
            ctor = op.torch(args, 0, (0, 1, 1))
        except Exception:  # an op whose constructor needs what a probe cannot give
            continue
        if ctor.runtime and ctor.cls == type(module).__name__ and _behaves_like(module, ctor, args):
            return op.name, _changed(op.name, args)
    return None


def _attr_args(module: nn.Module, op: str) -> dict[str, Any] | None:
    """The op's arguments read from the module's attributes (defaults where it has none)."""
    args: dict[str, Any] = {}
    for p in OPS[op].params:
        names = _ATTR_ALIASES.get(p.name, (p.name,))
        value = next((getattr(module, n) for n in names if isinstance(getattr(module, n, None), int | float)), None)
        if value is None and p.required:
            return None
        args[p.name] = p.default if value is None else value
    return args


def _behaves_like(module: nn.Module, ctor: Any, args: dict[str, Any]) -> bool:
    """Both modules give the same numbers on a probe whose channels every radix and group divides."""
    from resdsl.runtime import layers

    ours = getattr(layers, ctor.cls)(*ctor.args, **dict(ctor.kwargs))
    factor = 1
    for value in args.values():
        factor *= value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1
    probe = torch.randn(2, 3 * factor, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            theirs, expected = module(probe.clone()), ours(probe.clone())
    except Exception:
        return False
    return (
        isinstance(theirs, torch.Tensor)
        and theirs.numel() == expected.numel()
        and torch.equal(theirs.reshape(expected.shape), expected)
    )
