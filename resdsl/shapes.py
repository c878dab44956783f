"""Shape inference and validation: fills every IR node's shape, parameters and MACs.

Runs over the graph in build order (which is topological), applies each op's shape rule
from the op table, realises residual shortcuts from the two branch shapes, and reports
every problem with the span of the layer that caused it. A node whose input shape is
unknown (because of an earlier error) is skipped silently, so one mistake gives one
diagnostic. Lints encode the paper's design advice as warnings. No torch here.
"""

from __future__ import annotations

from resdsl.diagnostics import Collector, error, warning
from resdsl.ir import Layer, Network, Scope, instance_note
from resdsl.ops import OPS, SHORTCUT_HELP, ShapeError, fmt_shape, realise_shortcut


def infer(network: Network, collector: Collector) -> None:
    """Annotate ``network`` in place with shapes and costs; append diagnostics to ``collector``."""
    graph = network.graph
    for node_id in network.order:
        layer: Layer = graph.nodes[node_id]["layer"]
        if layer.op == "input":
            continue
        inputs = [graph.nodes[p]["layer"] for p in network.inputs(node_id)]
        shapes = [i.shape for i in inputs]
        if layer.op == "error" or any(s is None for s in shapes):
            layer.shape = None
            continue
        layer.in_shapes = tuple(shapes)  # type: ignore[arg-type]
        op = OPS[layer.op]
        try:
            if layer.op == "residual":
                _residual(network, layer, inputs)
            else:
                layer.shape = op.shape(layer.in_shapes, layer.attrs)
                layer.params = op.param_count(layer.in_shapes[0], layer.shape, layer.attrs)
                layer.macs = op.macs(layer.in_shapes[0], layer.shape, layer.attrs)
        except ShapeError as exc:
            layer.shape = exc.recovered  # None unless the intended shape is clear
            message, notes = exc.message, list(exc.notes)
            scope = layer.scope
            if layer.op != "residual" and layer.path:
                message = f"{layer.path}: {message}"
            elif layer.op == "residual" and exc.code != "E301":
                message = f"residual addition in {scope.path if scope and scope.path else 'the network'}: {message}"
            place = _instance(layer)
            if place is not None:
                with collector.within("block", place.span.file, instance_note(place)):
                    collector.add(error(exc.code, message, layer.span, notes=notes, help=exc.help))
            else:
                collector.add(error(exc.code, message, layer.span, notes=notes, help=exc.help))
    _lint(network, collector)


def _instance(layer: Layer) -> Scope | None:
    """The block instance a layer belongs to (through sequential groups), if any."""
    scope = layer.scope
    return scope if scope is not None and scope.kind == "block" else None


def _residual(network: Network, layer: Layer, inputs: list[Layer]) -> None:
    main, branch = inputs[0], inputs[1]
    kind = str(layer.attrs["shortcut"])
    assert main.shape is not None and branch.shape is not None
    # Whether the shortcut maps anything is decided by the block input against the main branch;
    # when it does, a project_from tap is what it maps (see Network.shortcut_source).
    changes = branch.shape != main.shape
    source = inputs[2] if len(inputs) > 2 and kind != "identity" and (changes or kind == "projection_all") else branch
    assert source.shape is not None
    try:
        shortcut = realise_shortcut(
            kind,
            main.shape,
            source.shape,
            layer.attrs.get("norm", True),
            network.path_stride(source.id, main.id),
            changes=changes,
        )
    except ShapeError as exc:
        if exc.code == "E301":
            notes = [
                f"main branch  {fmt_shape(main.shape):<14} ({_origin(main)})",
                f"shortcut     {fmt_shape(source.shape):<14} ({kind}{_from(source, layer)})",
            ]
            scope = layer.scope.path if layer.scope is not None and layer.scope.path else "the network"
            raise ShapeError(
                "E301", f"residual addition in {scope}: shapes differ", notes, exc.help or SHORTCUT_HELP, main.shape
            ) from None
        exc.recovered = main.shape
        raise
    layer.shortcut = shortcut
    layer.shape = main.shape
    layer.params = shortcut.params
    layer.macs = shortcut.macs(main.shape)


def _origin(layer: Layer) -> str:
    return f"{layer.name} at {layer.span}" if layer.op != "input" else "the network input"


def _from(source: Layer, residual: Layer) -> str:
    scope = residual.scope
    if scope is not None and source.id == scope.input:
        return ", the block input"
    return f", from {source.name}"


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
        if h1 * 2 <= h0 and c1 < 2 * c0:
            collector.add(
                warning(
                    "W402",
                    f"stage {scope.path} halves the map ({h0} -> {h1}) but does not double the width ({c0} -> {c1})",
                    scope.span,
                    notes=["the paper keeps the cost per layer constant: halve the map, double the filters"],
                    help="double the stage's width, or silence this by keeping the map size",
                )
            )
