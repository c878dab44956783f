"""The intermediate representation: a networkx DiGraph of layers plus the module tree.

Elaboration produces one :class:`Network` per network definition: every layer of every
block instance, unrolled, is a node of ``graph`` (node key = unique id, the :class:`Layer`
under the ``"layer"`` attribute) and every edge is data flow (``port`` 0 is the main input;
a residual also takes ``port`` 1, the branch input, and optionally ``port`` 2, where a
projection branches off). :class:`Scope` records how layers nest into blocks and stages, so
back ends can name modules as the spec does. The checker fills in shapes and costs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import networkx as nx

from resdsl.diagnostics.span import portable
from resdsl.ops import OPS, Shape
from resdsl.ops.shortcut import Shortcut
from resdsl.syntax import ast


class ScopeKind(str, Enum):
    """What a scope is; compares equal to its value ("block"), so it reads like one."""

    NETWORK = "network"
    STAGE = "stage"  # a sequence of block instances (nn.Sequential)
    BLOCK = "block"  # one instance of a block definition
    SEQUENTIAL = "sequential"  # a group of layers numbered by position (nn.Sequential)

    def __str__(self) -> str:
        return self.value


@dataclass(eq=False)
class Layer:
    """One node of the graph: a primitive op instance."""

    id: str  # unique key in the graph
    op: str  # key into resdsl.ops.OPS, or "input" / "error"
    attrs: dict[str, Any]  # bound, defaulted argument values
    exprs: dict[str, ast.Expr]  # the arguments as written, for code generation
    name: str  # unique local name within its scope
    module: str  # attribute name of its module (anonymous stateless layers may share one)
    path: str  # dotted module path, e.g. layer2.0.conv1 ("" for the input)
    span: ast.Span
    scope: Scope | None = field(repr=False)
    anonymous: bool = False
    shape: Shape | None = None  # output shape, per sample; None when unknown
    in_shapes: tuple[Shape, ...] = ()
    params: int = 0
    macs: int = 0
    shortcut: Shortcut | None = None  # residuals: how the checker realised the shortcut
    inplace: bool = False  # activations that may overwrite their input

    @property
    def weighted(self) -> bool:
        op = OPS.get(self.op)
        return bool(op and op.weighted)


@dataclass(eq=False)
class Scope:
    """A network body, a stage (a sequence of blocks) or one block instance."""

    kind: ScopeKind
    name: str  # local name: "layer1", "0"
    path: str  # dotted path ("" for the network)
    span: ast.Span
    items: list[Layer | Scope] = field(default_factory=list, repr=False)  # statement order
    input: str = ""  # id of the node that feeds this scope
    output: str = ""  # id of the node that leaves it
    block: ast.BlockDef | None = None  # block type (kind == "block")
    args: dict[str, Any] = field(default_factory=dict)  # block arguments, all parameters
    arg_exprs: dict[str, ast.Expr] = field(default_factory=dict)  # arguments as the caller wrote them
    lets: list[tuple[str, ast.Expr]] = field(default_factory=list)  # value bindings, in order
    let_at: list[int] = field(default_factory=list)  # for each binding: len(items) when it was made
    plain: list[tuple[int, ast.Expr]] = field(default_factory=list)  # residual(none): len(items) then, its kind
    repeat: int = 1  # stages
    repeat_expr: ast.Expr | None = None
    prefix: str = ""  # stages: block i is named prefix + str(start + i)
    start: int = 0
    # stages whose block argument reads instance values (index, net_index, ...): which ones; every
    # stage: the stage blocks enclosing it (net_index numbers the blocks of the stages at one
    # depth), its first block's net_index and the number of stage blocks at its depth
    instance_names: frozenset[str] = frozenset()
    depth: int = 0
    net_start: int = 0
    net_count: int = 0
    side: bool = False  # a side branch (a gate's): not on the main path, so not in the depth

    def child_name(self, i: int) -> str:
        """The module name of block ``i`` of a stage ("0", or "b1" for prefix "b" from 1)."""
        return f"{self.prefix}{self.start + i}"

    def layers(self) -> Iterator[Layer]:
        """Every layer below this scope, in statement order."""
        for item in self.items:
            if isinstance(item, Layer):
                yield item
            else:
                yield from item.layers()

    def scopes(self) -> Iterator[Scope]:
        yield self
        for item in self.items:
            if isinstance(item, Scope):
                yield from item.scopes()


def instance_note(scope: Scope) -> str:
    """How a diagnostic inside a block instance says where that instance is."""
    return f"in {scope.path}, a {scope.block.name if scope.block else 'block'} made at {scope.span}"


@dataclass(eq=False)
class Network:
    """One elaborated network: graph, module tree and the facts the back ends need."""

    name: str
    file: str
    span: ast.Span
    params: dict[str, Any]  # final parameter values (defaults, alias arguments, overrides)
    input_shape: Shape
    meta: dict[str, Any]
    graph: nx.DiGraph
    root: Scope
    order: list[str]  # node ids in build (= topological) order
    int_divisions: set[ast.BinOp] = field(default_factory=set)  # "/" evaluated on integers
    definition: ast.NetworkDef | None = None
    alias: ast.NetworkAlias | None = None  # the alias compiled, when it is one (``network b = a(...)``)
    overridden: frozenset[str] = frozenset()  # parameters given from outside the spec (--set)
    sources: dict[str, str] = field(default_factory=dict)  # every file read to compile it (for hashes)
    source_file: str = ""  # the file given to the compiler (may differ from the defining file)
    head: int | None = None  # outputs of the linear layer ``head`` added on top (head=N, --head N)
    declared_input: Shape | None = None  # the spec's ``input`` with these parameters (input_shape may override it)

    def layer(self, node_id: str) -> Layer:
        return self.graph.nodes[node_id]["layer"]

    def blocks_used(self) -> list[ast.BlockDef]:
        """The block definitions instantiated in this network, each once."""
        seen: dict[int, ast.BlockDef] = {}
        for scope in self.root.scopes():
            if scope.block is not None:
                seen.setdefault(id(scope.block), scope.block)
        return list(seen.values())

    def layers(self) -> Iterator[Layer]:
        """Every layer in build order."""
        layers = dict(self.graph.nodes(data="layer"))  # one pass: a node view's lookup per layer costs more
        for node_id in self.order:
            yield layers[node_id]

    def inputs(self, node_id: str) -> list[str]:
        """Predecessors ordered by port."""
        preds = self.graph.pred[node_id]
        if len(preds) < 2:  # most layers: no order to find
            return list(preds)
        return [p for p, _ in sorted(preds.items(), key=lambda kv: kv[1]["port"])]

    def port(self, node_id: str, port: int) -> str | None:
        """The node feeding ``port`` of ``node_id`` (None if that port is unused)."""
        for pred, edge in self.graph.pred[node_id].items():
            if edge["port"] == port:
                return pred
        return None

    def shortcut_reads(self, scope: Scope) -> list[str]:
        """Nodes whose outputs a residual of ``scope`` reads as its shortcut input (branch
        points and ``project_from`` layers), in order; a back end must keep them alive."""
        wanted: list[str] = []
        for item in scope.items:
            if isinstance(item, Layer) and OPS[item.op].merge is not None:
                for pred, edge in self.graph.pred[item.id].items():
                    if edge["port"] in (1, 2) and pred not in wanted:
                        wanted.append(pred)
        return wanted

    def path_stride(self, start: str, end: str) -> int | None:
        """The product of the spatial strides met going from ``start`` (exclusive) to ``end``
        along main inputs; None if ``end`` is not downstream of ``start`` that way."""
        stride, node = 1, end
        while node != start:
            layer = self.layer(node)
            op = OPS.get(layer.op)
            if op is None:
                return None
            if op.merge is None:
                value = op.stride(layer.attrs)
                stride *= value if isinstance(value, int) else 1
            previous = self.port(node, 0)
            if previous is None:
                return None
            node = previous
        return stride

    def shortcut_source(self, residual: Layer) -> str:
        """Where a residual's shortcut reads from: the ``project_from`` layer when the
        shortcut is realised by a module, otherwise the branch input."""
        tap = self.port(residual.id, 2)
        if tap is not None and residual.shortcut is not None and residual.shortcut.kind != "identity":
            return tap
        source = self.port(residual.id, 1)
        assert source is not None
        return source

    def last_norm(self, residual: Layer) -> Layer | None:
        """The last affine batchnorm on a residual's main branch (zero_init_residual zeroes it)."""
        node = self.port(residual.id, 0)
        while node is not None and residual.scope is not None and node != residual.scope.input:
            current = self.layer(node)
            if current.scope is not residual.scope:
                return None
            op = OPS.get(current.op)
            if op is not None and op.normalizes and current.attrs.get("affine", True):
                return current
            node = self.port(node, 0)
        return None

    @property
    def output(self) -> Layer:
        return self.layer(self.root.output)

    @property
    def output_shape(self) -> Shape | None:
        return self.output.shape

    @property
    def num_params(self) -> int:
        return sum(layer.params for layer in self.layers())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())

    @property
    def weighted_layers(self) -> int:
        """Conv and linear layers on the main path (not in gates' side branches, not in
        shortcuts): the depth in the paper's naming."""
        side = {layer.id for scope in self.root.scopes() if scope.side for layer in scope.layers()}
        return sum(1 for layer in self.layers() if layer.weighted and layer.id not in side)


def sources_hash(network: Network) -> str:
    """The sha256 of every source file the network was elaborated from, in a machine-independent
    order: built models and generated files carry it, so a stale one can be told apart."""
    digest = hashlib.sha256()
    for name in sorted(network.sources, key=lambda n: portable(ast.Span(n, 0, 0, 0, 0))):
        digest.update(network.sources[name].encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()
