"""Shape inference and validation: fills every IR node's shape, parameters and MACs.

Runs over the graph in build order (which is topological), applies each op's shape rule
from the op table, realises residual shortcuts from the two branch shapes, and reports
every problem with the span of the layer that caused it. A node whose input shape is
unknown (because of an earlier error) is skipped silently, so one mistake gives one
diagnostic. Lints encode the paper's design advice as warnings. No torch here.
"""

from __future__ import annotations

from resdsl.checks.realise import REALISERS
from resdsl.diagnostics import Collector, error, warning
from resdsl.diagnostics.overrides import comes_from
from resdsl.diagnostics.span import is_override
from resdsl.ir import Layer, Network, Scope, instance_note
from resdsl.ir.repairs import drop_bias
from resdsl.ops import OPS, ShapeError


def infer(network: Network, collector: Collector) -> None:
    """Annotate ``network`` in place with shapes and costs; append diagnostics to ``collector``."""
    layers: dict[str, Layer] = dict(network.graph.nodes(data="layer"))  # one pass, not a view per read
    for node_id in network.order:
        layer = layers[node_id]
        if layer.op == "input":
            continue
        inputs = [layers[p] for p in network.inputs(node_id)]
        shapes = [i.shape for i in inputs]
        if layer.op == "error" or None in shapes:
            layer.shape = None
            continue
        layer.in_shapes = tuple(shapes)  # type: ignore[arg-type]
        op = OPS[layer.op]
        try:
            if op.composite:  # a residual and its shortcut: realised from the network around it
                REALISERS[layer.op](network, layer, inputs)
            else:
                layer.shape = op.shape(layer.in_shapes, layer.attrs)
                layer.params = op.param_count(layer.in_shapes[0], layer.shape, layer.attrs)
                layer.macs = op.macs(layer.in_shapes[0], layer.shape, layer.attrs)
        except ShapeError as exc:
            layer.shape = exc.recovered  # None unless the intended shape is clear
            message, notes = exc.message, [*exc.notes, *_overridden(layer)]
            if op.merge is None and layer.path:  # merges word their own messages
                message = f"{layer.path}: {message}"
            found = error(exc.code, message, layer.span, notes, exc.help, exc.fixes, exc.related)
            place = _instance(layer)
            if place is not None:
                with collector.within("block", place.span.file, instance_note(place), place.span):
                    collector.add(found)
            else:
                collector.add(found)
    _lint(network, collector)


def _overridden(layer: Layer) -> list[str]:
    """Notes naming the ``--set`` override each of a layer's arguments was written in (a layer
    passed as ``--set norm=groupnorm(7)`` keeps the override as the place of its arguments), so
    an error in a shipped block says which override caused it."""
    return [
        comes_from(name, layer.attrs[name], expr.span.file)
        for name, expr in layer.exprs.items()
        if is_override(expr.span.file) and name in layer.attrs
    ]


def _instance(layer: Layer) -> Scope | None:
    """The block instance a layer belongs to (through sequential groups), if any."""
    scope = layer.scope
    return scope if scope is not None and scope.kind == "block" else None


def _lint(network: Network, collector: Collector) -> None:
    graph = network.graph
    for layer in network.layers():
        if layer.shape is None:
            continue
        if layer.op == "conv" and layer.attrs.get("bias"):
            for succ in graph.successors(layer.id):
                nxt = graph.nodes[succ]["layer"]
                if nxt.op == "batchnorm":
                    collector.add(
                        warning(
                            "W401",
                            f"{layer.path}: conv has a bias but feeds batchnorm {nxt.name}",
                            layer.span,
                            notes=["batchnorm subtracts the mean, so the bias has no effect and wastes parameters"],
                            help="drop bias=true",
                            fixes=drop_bias(network, layer),
                        )
                    )
        if layer.op == "batchnorm" and layer.in_shapes and len(layer.in_shapes[0]) == 3:
            _c, h, w = layer.in_shapes[0]
            if h * w == 1:
                collector.add(
                    warning(
                        "W403",
                        f"{layer.path}: batchnorm over a 1 x 1 map normalises each channel over the batch alone",
                        layer.span,
                        help="with batch size 1 in training it fails; move it before the map shrinks to 1 x 1",
                    )
                )
    for scope in network.root.scopes():
        if scope.kind != "stage" or not scope.output:
            continue
        first, last = graph.nodes[scope.input]["layer"], graph.nodes[scope.output]["layer"]
        if first.shape is None or last.shape is None or len(first.shape) != 3 or len(last.shape) != 3:
            continue
        (c0, h0, _w0), (c1, h1, _w1) = first.shape, last.shape
        if h1 * 2 <= h0 and c1 < 2 * c0 and not _inverted(network, scope):
            collector.add(
                warning(
                    "W402",
                    f"stage {scope.path} halves the map ({h0} -> {h1}) but does not double the width ({c0} -> {c1})",
                    scope.span,
                    notes=["the paper keeps the cost per layer constant: halve the map, double the filters"],
                    help="double the stage's width, or keep the map size; --ignore W402 silences this lint",
                )
            )


def _inverted(network: Network, stage: Scope) -> bool:
    """Whether a stage is made of blocks designed to widen slowly: inverted residuals
    (MobileNetV2's expand, depthwise, project: a block whose inner width exceeds its output
    width), depthwise-separable blocks, or grouped convolutions (RegNet's design space, whose
    widths follow a quantised linear rule). The paper's doubling rule (W402), made for ResNet's
    plain blocks, does not apply to them."""
    for block in stage.items:
        if not isinstance(block, Scope) or block.kind != "block" or not block.output:
            continue
        out = network.layer(block.output).shape
        inner = [layer.shape[0] for layer in block.layers() if layer.shape is not None and len(layer.shape) == 3]
        if out is not None and len(out) == 3 and max(inner, default=0) > out[0]:
            return True
        if any(layer.op == "conv" and layer.attrs.get("groups", 1) > 1 for layer in block.layers()):
            return True
    return False
