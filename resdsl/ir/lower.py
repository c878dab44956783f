"""Lowering decisions made once the graph is built: which activations and merges may run in
place, and which anonymous stateless modules can be shared within a scope (one ``relu``
module per block, as torchvision writes it). Both back ends read the result from the IR.
"""

from __future__ import annotations

import networkx as nx

from resdsl.ir import Layer, Scope
from resdsl.ops import OPS
from resdsl.syntax.names import FreshNames


def _may_overwrite_input(g: nx.DiGraph, item: Layer, own: set[str]) -> bool:
    """Whether ``item`` may overwrite its main input: only if nothing else reads that tensor,
    it is not the scope's input, and backward does not need it (a relu's output is its
    backward's mask). Ops that return their input (identity, flatten) are looked through."""
    node = item.id
    while True:
        main = [p for p, e in g.pred[node].items() if e["port"] == 0]
        if len(main) != 1 or main[0] not in own or g.out_degree(main[0]) != 1:
            return False
        producer = OPS.get(g.nodes[main[0]]["layer"].op)
        if producer is None or producer.output_saved:
            return False
        if not producer.returns_input:
            return True
        node = main[0]


def finish(g: nx.DiGraph, root: Scope) -> None:
    """Decide in-place activations and which anonymous modules can be shared."""
    for scope in root.scopes():
        own = {item.id for item in scope.items if isinstance(item, Layer)}
        shared: dict[tuple, str] = {}
        taken = {item.name for item in scope.items if isinstance(item, Layer) and not item.anonymous}
        taken |= {item.name for item in scope.items if isinstance(item, Scope)}
        fresh = FreshNames(taken)
        for item in scope.items:
            if not isinstance(item, Layer):
                continue
            op = OPS.get(item.op)
            if op is not None and (op.can_inplace or (op.merge is not None and op.merge.in_place)):
                item.inplace = _may_overwrite_input(g, item, own)
            if not item.anonymous or op is None or op.stateful:
                continue
            key = (item.op, item.inplace, tuple(sorted(item.attrs.items())))
            if key in shared:
                item.module = shared[key]
                continue
            module = fresh(item.op)
            taken.add(module)
            shared[key] = item.module = module
