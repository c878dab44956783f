"""A picture of a checked network: Graphviz DOT built with the ``graphviz`` package's
:class:`~graphviz.Digraph`, rendered to SVG, PNG or PDF by Graphviz's ``dot`` program.

Stages and blocks are clusters (``cluster_<path>``); every merge (an op whose table entry
has ``merge`` set: the residual addition, a gating multiply) is a small circle showing its
operator, its shortcut edge dashed and labelled with the shortcut's kind ("projection,
stride 2", "identity"); every edge carries the shape that flows along it ("256 x 56 x 56").
``depth`` folds scopes at that nesting (network 0, stage 1, block in a stage 2) into single
nodes with their parameter and MAC totals, as ``resdsl summary --depth`` folds rows, so
ResNet-1001 stays readable. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.diagnostics.files import write_atomic
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, REQUIRED, fmt_shape
from resdsl.tools.summary import is_merge, paused_gc, scope_label, shortcut_label

if TYPE_CHECKING:
    import graphviz

# suffix -> Graphviz output format (None: the DOT source itself)
FORMATS: dict[str, str | None] = {".dot": None, ".gv": None, ".svg": "svg", ".png": "png", ".pdf": "pdf"}
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz) so that `dot` is on PATH, or write a .dot file instead"
)
# a graph this large takes `dot` a long time to lay out; the CLI suggests --depth
LARGE = 1500

_FONT = "Helvetica"
_FILL = {
    "conv": "#dbe8f7",
    "linear": "#e5dcf2",
    "batchnorm": "#fdf3d0",
    "maxpool": "#fde3cf",
    "avgpool": "#fde3cf",
    "global_avgpool": "#fde3cf",
    "input": "#ffffff",
}
_ACTIVATION_FILL = "#ddf0dd"
_FOLDED_FILL = "#dfe7f3"
_SHORTCUT_COLOR = "#b5512f"


class GraphError(Exception):
    """A picture that cannot be made (an unknown format, Graphviz missing); ``hint`` says
    what to do. The CLI prints both and exits 1."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def output_format(path: str | Path) -> str | None:
    """The Graphviz format a file name asks for (None: DOT source); GraphError if unknown."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise GraphError(
            f"cannot tell the picture format of {path}",
            f"use one of the suffixes {', '.join(FORMATS)}",
        )
    return FORMATS[suffix]


def _human(n: int) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _call(layer: Layer) -> str:
    """The layer's op as the spec would write it, with only the arguments that differ from
    their defaults: ``conv(64, k=7, s=2, p=3)``, ``relu``."""
    op = OPS.get(layer.op)
    if op is None:
        return layer.op
    args: list[str] = []
    for p in op.params:
        if p.name not in layer.attrs:
            continue
        value = layer.attrs[p.name]
        default = layer.attrs.get(p.default_from) if p.default_from else p.default
        if p.default is not REQUIRED and value == default:
            continue
        if p.default is REQUIRED and p.default_from is None and not args:
            args.append(_spec_value(value))  # the first required argument, by position
        elif value is not None:
            args.append(f"{p.name}={_spec_value(value)}")
    return f"{layer.op}({', '.join(args)})" if args else layer.op


def _spec_value(value: object) -> str:
    """A value as the language writes it (true, not Python's True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):  # a layer: (op, args)
        return value[0]
    return str(value)


class _Builder:
    def __init__(self, network: Network, depth: int | None) -> None:
        import graphviz

        self.net = network
        self.depth = depth
        self.rep: dict[str, str] = {}  # layer id -> the node that shows it
        self.nodes = 0
        self.dot = graphviz.Digraph(
            name=network.name,
            graph_attr={
                "rankdir": "TB",
                "label": self._title(),
                "labelloc": "t",
                "fontname": _FONT,
                "fontsize": "16",
                "nodesep": "0.25",
                "ranksep": "0.3",
                "newrank": "true",
            },
            node_attr={
                "shape": "box",
                "style": "rounded,filled",
                "fillcolor": "#ffffff",
                "fontname": _FONT,
                "fontsize": "10",
                "height": "0.3",
                "margin": "0.1,0.03",
            },
            edge_attr={"fontname": _FONT, "fontsize": "8", "color": "#555555", "arrowsize": "0.6"},
        )

    def _title(self) -> str:
        net = self.net
        depth = f", depth {self.depth}" if self.depth is not None else ""
        return (
            f"{net.name}: {net.weighted_layers} weighted layers, {net.num_params:,} parameters, "
            f"{net.macs / 1e9:.3f} GMACs{depth}"
        )

    # -- nodes ------------------------------------------------------------------------------

    def scope(self, scope: Scope, into: Any, level: int) -> None:
        for item in scope.items:
            if isinstance(item, Layer):
                self.layer(item, into)
            elif self.depth is not None and level + 1 >= self.depth:
                self.folded(item, into)
            else:
                name = f"cluster_{item.path}"
                with into.subgraph(name=name) as cluster:
                    stage = item.kind == "stage"
                    cluster.attr(
                        label=f"{item.path}: {scope_label(item)}  ",  # room before the border
                        labeljust="l",
                        fontname=_FONT,
                        fontsize="12" if stage else "10",
                        style="rounded,filled",
                        fillcolor="#f5f7fb" if stage else "#ffffff",
                        color="#8a9bb8" if stage else "#c8c8c8",
                    )
                    self.scope(item, cluster, level + 1)

    def layer(self, layer: Layer, into: Any) -> None:
        self.rep[layer.id] = layer.id
        self.nodes += 1
        tooltip = f"{layer.path or 'input'}: {layer.op}, {layer.params:,} params, {layer.macs:,} MACs"
        if is_merge(layer):
            label = shortcut_label(layer)
            into.node(
                layer.id,
                merge.label if (merge := OPS[layer.op].merge) is not None else "",
                shape="circle",
                style="filled",
                fillcolor="#eeeeee",
                width="0.3",
                height="0.3",
                fixedsize="true",
                fontsize="14",
                group="main",
                tooltip=f"{tooltip}; shortcut {label}" if label else tooltip,
                **{"class": "merge"},
            )
        elif layer.op == "input":
            into.node(
                layer.id,
                f"input\n{fmt_shape(layer.shape)}",
                shape="ellipse",
                style="filled",
                tooltip=tooltip,
                group="main",
            )
        else:
            fill = _FILL.get(layer.op)
            if fill is None:
                op = OPS.get(layer.op)
                fill = _ACTIVATION_FILL if (op is not None and op.can_inplace) or layer.op == "sigmoid" else "#f2f2f2"
            call = _call(layer)
            label = call if layer.anonymous or layer.name == layer.op else f"{layer.name}\n{call}"
            into.node(layer.id, label, fillcolor=fill, tooltip=tooltip, group="main")

    def folded(self, scope: Scope, into: Any) -> None:
        title = scope.path or self.net.name
        node = f"[{title}]"
        params = macs = count = 0
        for layer in scope.layers():
            self.rep[layer.id] = node
            params += layer.params
            macs += layer.macs
            count += 1
        self.nodes += 1
        into.node(
            node,
            f"{title}\n{scope_label(scope)}\n{_human(params)} params, {_human(macs)} MACs",
            fillcolor=_FOLDED_FILL,
            fontsize="11",
            group="main",
            tooltip=f"{title}: {count} layers, {params:,} params, {macs:,} MACs",
            **{"class": scope.kind},
        )

    # -- edges ------------------------------------------------------------------------------

    def edges(self) -> None:
        net, seen = self.net, set()
        for node_id in net.order:
            layer = net.layer(node_id)
            preds = sorted(net.graph.pred[node_id].items(), key=lambda kv: kv[1]["port"])
            tap = _shortcut_tap(layer, {edge["port"]: pred for pred, edge in preds})
            for pred, edge in preds:
                port = edge["port"]
                shortcut = port >= 1 and layer.shortcut is not None
                if shortcut and pred != tap:
                    continue  # the port this shortcut does not read
                tail, head = self.rep[pred], self.rep[node_id]
                if tail == head or (tail, head) in seen:
                    continue
                seen.add((tail, head))
                shape = fmt_shape(net.layer(pred).shape)
                if shortcut:
                    self.dot.edge(
                        tail,
                        head,
                        label=f"{shortcut_label(layer)}\n{shape}",
                        style="dashed",
                        color=_SHORTCUT_COLOR,
                        fontcolor=_SHORTCUT_COLOR,
                        **{"class": "shortcut"},
                    )
                elif port >= 1 and is_merge(layer):  # a side branch without a shortcut (gating)
                    self.dot.edge(tail, head, label=shape, style="dashed", **{"class": "side"})
                else:
                    self.dot.edge(tail, head, label=shape)
        out = net.root.output
        self.dot.node(
            "[output]", f"output\n{fmt_shape(net.output_shape)}", shape="ellipse", style="filled", group="main"
        )
        self.dot.edge(self.rep[out], "[output]", label=fmt_shape(net.output_shape))

    def build(self) -> graphviz.Digraph:
        for layer in self.net.layers():  # the input is a node of the graph, not of any scope
            if layer.op == "input":
                self.layer(layer, self.dot)
        if self.depth == 0:
            self.folded(self.net.root, self.dot)
        else:
            self.scope(self.net.root, self.dot, 0)
        self.edges()
        return self.dot


def _shortcut_tap(layer: Layer, ports: dict[int, str]) -> str | None:
    """The node a merge's shortcut reads: the ``project_from`` tap (port 2) when a module
    realises the shortcut, else the branch input (port 1); None without a shortcut."""
    if layer.shortcut is None:
        return None
    if 2 in ports and layer.shortcut.kind != "identity":
        return ports[2]
    return ports.get(1)


def to_digraph(network: Network, depth: int | None = None) -> graphviz.Digraph:
    """The network as a :class:`graphviz.Digraph`, scopes folded at ``depth`` (None: none)."""
    with paused_gc():
        return _Builder(network, depth).build()


def count_nodes(network: Network, depth: int | None = None) -> int:
    """How many nodes the picture will have (to warn before a very long layout)."""
    if depth is None:
        return len(network.order) + 1
    if depth == 0:
        return 3

    def count(scope: Scope, level: int) -> int:
        total = 0
        for item in scope.items:
            if isinstance(item, Layer):
                total += 1
            elif level + 1 >= depth:
                total += 1
            else:
                total += count(item, level + 1)
        return total

    return count(network.root, 0) + 1


def render(network: Network, fmt: str | None, depth: int | None = None) -> bytes:
    """The picture's bytes: DOT source (``fmt`` None) or what ``dot -T<fmt>`` makes of it."""
    import graphviz

    dot = to_digraph(network, depth)
    if fmt is None:
        return dot.source.encode("utf-8")
    try:
        return dot.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        message = f"cannot render a .{fmt} picture: Graphviz's `dot` program is not on PATH"
        raise GraphError(message, INSTALL_HINT) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise GraphError(
            f"Graphviz's `dot` failed to render the picture (exit {exc.returncode})"
            + (f": {detail[-1]}" if detail else ""),
            "write a .dot file instead and render it yourself",
        ) from None


def write_graph(network: Network, target: str | Path, depth: int | None = None) -> None:
    """Write the picture of ``network`` to ``target``; its suffix picks the format."""
    data = render(network, output_format(target), depth)
    write_atomic(target, data)
