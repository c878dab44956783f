"""Shapes while placing: what the instance value ``in_channels`` reads.

A stage's block argument may read its block's input channels, which elaboration needs before
the checker has run. They come from the op table's shape rules (``OpDef.shape``), the same
rules the checker applies afterwards (a residual's rule is its main branch's shape), over the
nodes placed so far: one source of truth for every shape, computed here only as far as a
block argument asks. The checker recomputes every shape with its costs and reports any
mistake; here a rule that refuses gives the shape it recovers, or none.
"""

from __future__ import annotations

import networkx as nx

from resdsl.ir import Layer
from resdsl.ops import OPS, Shape, ShapeError

__all__ = ["PlacedShapes"]


class PlacedShapes:
    """The output shapes of the nodes of a graph being built, in ``order`` (build order)."""

    def __init__(self, graph: nx.DiGraph, order: list[str]) -> None:
        self.graph, self.order = graph, order  # the placer's own, which grow as it places
        self._shapes: dict[str, Shape | None] = {}
        self._done = 0  # nodes of order whose shapes are known

    def of(self, node_id: str) -> Shape | None:
        """A placed node's shape (None where an earlier mistake leaves it unknown)."""
        while self._done < len(self.order):
            layer: Layer = self.graph.nodes[self.order[self._done]]["layer"]
            self._done += 1
            self._shapes[layer.id] = self._infer(layer)
        return self._shapes.get(node_id)

    def _infer(self, layer: Layer) -> Shape | None:
        if layer.op == "input":
            return layer.shape
        preds = sorted(self.graph.pred[layer.id].items(), key=lambda kv: kv[1]["port"])
        ins = [self._shapes.get(p) for p, _ in preds]
        if layer.op not in OPS or not ins or any(s is None for s in ins):
            return None  # an error node, or after one
        try:
            return OPS[layer.op].shape(ins, layer.attrs)  # type: ignore[arg-type]
        except ShapeError as exc:
            return exc.recovered
