"""The ONNX back end: a checked :class:`~resdsl.ir.Network` as an ONNX model, built straight
from the IR with the ``onnx`` package's graph builders; no tracing, and torch is not imported.

Layers are visited in build order. Each becomes the nodes its op definition's ``onnx`` form
(:mod:`resdsl.ops`, built from :mod:`resdsl.ops.lowering`) emits through an :class:`Emitter`:
node names follow the spec's module paths (``layer1.0.conv1``; a hook's second node gets ``layer1.0.conv1/Flatten``) and
initializers are named by ``build_model``'s state_dict keys (``layer1.0.bn1.running_var``), so a
trained state_dict maps onto the graph one to one. A residual's shortcut is the steps of the
checker's :class:`~resdsl.ops.shortcut.Shortcut` (what ``build_model`` builds too), each
emitted by its op's own hook under its module path: nothing for an identity; option A's
``pad_channels`` (a strided ``Slice`` and a channel ``Pad``); a projection's conv and norm
under ``downsample.0`` and ``downsample.1`` (``.1``/``.2`` after ResNet-D's average pool at ``.0``).

The graph is an inference graph: batchnorm is ``BatchNormalization`` with the running
statistics (onnxruntime folds it into the conv; a network folded by ``resdsl.ir.fold`` beforehand
simply has none), dropout is the identity. Opset 21 (onnx >= 1.16, onnxruntime >= 1.18) has
every op used, ``GroupNormalization`` with per-channel scale and ``Gelu`` included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from resdsl.backends.onnx.weights import Init, WeightSource, read_safetensors
from resdsl.diagnostics import ResdslError, error
from resdsl.diagnostics.files import write_atomic
from resdsl.ir import Layer, Network
from resdsl.ir.fold import fold_network, fold_state_dict
from resdsl.ops import OPS, Shape
from resdsl.syntax.ast import Span

if TYPE_CHECKING:
    import onnx

OPSET = 21
IR_VERSION = 10  # the IR version that goes with opset 21: readable by onnxruntime >= 1.18
PROTOBUF_LIMIT = 2**31 - 2**20  # one protobuf message; a margin for the graph besides the weights
INPUT, OUTPUT = "input", "output"

__all__ = ["OPSET", "Emitter", "export", "onnx_model", "parse_batch", "read_safetensors"]


def require_onnx() -> Any:
    """The ``onnx`` module, or E820 saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ResdslError(
            error(
                "E820",
                "writing ONNX needs the onnx package, which is not installed",
                Span("<export>", 0, 0, 0, 0),
                help="pip install 'resdsl[onnx]' (or pip install onnx)",
            )
        ) from None
    return onnx


def parse_batch(batch: int | str) -> int | str:
    """``"dynamic"`` (a symbolic batch dimension named ``batch``) or a positive whole size."""
    if isinstance(batch, str) and batch.strip().lower() == "dynamic":
        return "batch"
    text = batch.strip() if isinstance(batch, str) else None
    if text is not None and text.isdigit() and len(text) <= 9 and int(text) >= 1:
        return int(text)
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        return batch
    raise ResdslError(
        error(
            "E823",
            f"batch {batch!r} is neither 'dynamic' nor a positive whole number",
            Span("<batch>", 0, 0, 0, 0),
            help="--batch dynamic makes the batch dimension symbolic; --batch 8 fixes it",
        )
    )


class Emitter:
    """What an op's ``onnx`` hook sees of the graph being built, for one layer.

    ``x`` is the main input tensor's name, ``inputs`` every operand (a merge: main input and
    the other one), ``shape`` the per-sample input shape and ``shapes`` every operand's (where
    the layer's operands are known; the main input's alone otherwise). :meth:`node` adds a node named after
    the layer and returns its output; :meth:`param` adds an initializer named by the layer's
    state_dict key (``name=""``: the layer's own key, for an op held as a parameter) and
    returns its name; :meth:`ints` adds an int64 constant.
    """

    def __init__(
        self,
        builder: _Builder,
        name: str,
        prefix: str,
        inputs: list[str],
        shape: Shape,
        shapes: Sequence[Shape] = (),
        scope: str = "",
    ) -> None:
        self._builder, self._name, self._prefix, self._scope = builder, name, prefix, scope
        self.inputs, self.x, self.shape = inputs, inputs[0], shape
        self.shapes: tuple[Shape, ...] = tuple(shapes) or (shape,)

    def node(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        return self._builder.add_node(op_type, inputs, self._name, attributes)

    def nodes(self, op_type: str, inputs: list[str], count: int, **attributes: Any) -> list[str]:
        """A node with ``count`` outputs (Split), named after the layer: their names."""
        return self._builder.add_node(op_type, inputs, self._name, attributes, count)

    def sub(self, op: str, args: Mapping[str, Any], key: str, x: str, shape: Shape) -> str:
        """A module of the enclosing block that the op makes (res2_hierarchy's ``convs.0``),
        emitted by the op ``op``'s own form, its weights at the block's key ``<block>.<key>``."""
        hook = OPS[op].onnx
        prefix = f"{self._scope}.{key}" if self._scope else key
        return self._builder.sub(hook, args, f"{self._name}.{key}", prefix, x, shape)

    def param(self, name: str, shape: tuple[int, ...], init: Init, stored: bool = True) -> str:
        """A parameter or buffer; ``stored=False``: a fixed value that no state_dict holds
        (the unit scale of a non-affine norm), named ``<key>.fixed``."""
        key = f"{self._prefix}.{name}" if self._prefix and name else name or self._prefix
        value = self._builder.weights.get(key, shape, init, stored)
        return self._builder.add_initializer(key if stored else f"{key}.fixed", value)

    def ints(self, values: list[int], name: str = "const") -> str:
        """An int64 constant (the target shape of a Reshape, the positions of a Slice), named
        ``<layer>.<name>``."""
        return self._builder.constant(f"{self._name}.{name}", values)


def _module_path(layer: Layer) -> str:
    """The state_dict prefix of ``layer``'s module (as backends.torch.module_path, without torch)."""
    scope_path = layer.scope.path if layer.scope is not None else ""
    return f"{scope_path}.{layer.module}" if scope_path else layer.module


class _Builder:
    """Nodes and initializers of one graph, collected in order."""

    def __init__(self, onnx: Any, network: Network, weights: WeightSource, dry: bool = False) -> None:
        self.onnx, self.net, self.weights = onnx, network, weights
        self.dry = dry  # only ask for the weights (to fold them): no tensors are made
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: set[str] = {INPUT}
        self.nbytes = 0

    def unique(self, base: str) -> str:
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    @overload
    def add_node(self, op_type: str, inputs: list[str], layer_name: str, attributes: Mapping[str, Any]) -> str: ...

    @overload
    def add_node(
        self, op_type: str, inputs: list[str], layer_name: str, attributes: Mapping[str, Any], count: int
    ) -> list[str]: ...

    def add_node(
        self, op_type: str, inputs: list[str], layer_name: str, attributes: Mapping[str, Any], count: int | None = None
    ) -> str | list[str]:
        """A node named after its layer; ``count``: a node of that many outputs (``<node>:i``)."""
        taken = layer_name in self.names
        name = self.unique(f"{layer_name}/{op_type}" if taken else layer_name)
        outputs = [name] if count is None else [self.unique(f"{name}:{i}") for i in range(count)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name, **attributes))
        return name if count is None else outputs

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        name = self.unique(name)
        self.nbytes += value.nbytes
        if not self.dry:
            self.initializers.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def run(self) -> dict[str, str]:
        """Every layer's nodes, in order; the name of each layer's output tensor."""
        values: dict[str, str] = {}
        for layer in self.net.layers():
            values[layer.id] = INPUT if layer.op == "input" else self.layer(layer, values)
        self.weights.check(self.net.name)
        return values

    def constant(self, base: str, values: list[int]) -> str:
        """An int64 initializer (Slice and Pad take their positions as tensors)."""
        return self.add_initializer(base, np.asarray(values, dtype=np.int64))

    def layer(self, layer: Layer, values: dict[str, str]) -> str:
        op = OPS.get(layer.op)
        if op is None or op.onnx is None:
            raise ResdslError(
                error(
                    "E826",
                    f"{layer.path}: the op '{layer.op}' has no ONNX form",
                    layer.span,
                    help="resdsl export knows the ops whose definition has an onnx form (resdsl/ops/)",
                )
            )
        inputs = [values[node] for node in self.net.inputs(layer.id)]
        if op.composite and layer.shortcut is not None and not layer.shortcut.adds:
            return inputs[0]  # identity_if_same where the shapes differ: the main branch alone
        try:
            if op.composite and layer.shortcut is not None:  # the main branch and the mapped shortcut
                inputs = [inputs[0], self.shortcut(layer, values[self.net.shortcut_source(layer)])]
            scope = layer.scope.path if layer.scope is not None else ""
            emitter = Emitter(self, layer.path, _module_path(layer), inputs, layer.in_shapes[0], layer.in_shapes, scope)
            return op.onnx(emitter, layer.attrs)
        except ValueError as exc:  # a case of the op that ONNX cannot express
            raise ResdslError(error("E826", f"{layer.path}: {exc}", layer.span)) from None

    def shortcut(self, layer: Layer, source: str) -> str:
        """What a residual's shortcut makes of ``source``: its steps, each by its op's own hook,
        named by its module path (``layer1.0.downsample.0``; option A's one step is the
        shortcut's module itself, ``layer2.0.downsample``)."""
        s = layer.shortcut
        assert s is not None
        name, prefix, x = layer.path, _module_path(layer), source
        for step in s.steps():
            at = "" if step.key is None else f".{step.key}"
            x = self.sub(OPS[step.op].onnx, step.args, name + at, prefix + at, x, step.in_shape)
        return x

    def sub(self, hook: Any, attrs: Mapping[str, Any], name: str, prefix: str, x: str, shape: Shape) -> str:
        """One module of a shortcut, emitted by its op's own hook."""
        assert hook is not None
        return str(hook(Emitter(self, name, prefix, [x], shape), attrs))


def onnx_model(
    network: Network,
    weights: Mapping[str, Any] | None = None,
    batch: int | str = "dynamic",
    seed: int = 0,
    fold: bool = True,
    origin: str = "",
) -> onnx.ModelProto:
    """The ONNX model of ``network``, in memory; ``fold``: every batchnorm that follows a conv
    is folded into it (:mod:`resdsl.ir.fold`, as ``build_model(spec, mode="inference")`` does).

    ``weights``: a state_dict-like mapping of arrays (numpy arrays, or anything ``np.asarray``
    reads), or None for seeded random weights; ``origin`` names the file they came from
    (:func:`resdsl.api.weight_arrays` reads one).
    ``batch``: ``"dynamic"`` (the default: a symbolic first dimension named ``batch``) or a size.
    """
    onnx = require_onnx()
    batch_dim = parse_batch(batch)
    source = WeightSource(weights, seed, origin)
    # the graph is the folded network's; its name, doc string and metadata describe the spec's
    graph_net, builder = _folded(onnx, network, source) if fold else (network, _Builder(onnx, network, source))
    values = builder.run()
    if builder.nbytes > PROTOBUF_LIMIT:
        raise ResdslError(
            error(
                "E825",
                f"{network.name} has {builder.nbytes / 2**30:.1f} GiB of weights; one ONNX file holds under 2 GiB",
                network.span,
                help="export a smaller network; ONNX's external data format is not written by resdsl yet",
            )
        )
    last = values[graph_net.root.output]
    _rename_output(onnx, builder, last)
    helper, tensor = onnx.helper, onnx.TensorProto
    out_shape = network.output_shape
    assert out_shape is not None
    graph = helper.make_graph(
        builder.nodes,
        network.name,
        [helper.make_tensor_value_info(INPUT, tensor.FLOAT, [batch_dim, *network.input_shape])],
        [helper.make_tensor_value_info(OUTPUT, tensor.FLOAT, [batch_dim, *out_shape])],
        builder.initializers,
        doc_string=_doc(network, source),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="resdsl", ir_version=IR_VERSION
    )
    from resdsl._version import __version__

    model.producer_version = __version__
    model.doc_string = graph.doc_string
    helper.set_model_props(model, _metadata(network, source, batch_dim))
    return model


def _folded(onnx: Any, network: Network, source: WeightSource) -> tuple[Network, _Builder]:
    """The folded network and a builder of its graph whose weights are ``source``'s, folded.

    A dry run over the training network asks ``source`` for every tensor, in the order and
    with the checks of an unfolded export (E822), so random weights are the same draws; the
    batchnorms are folded in float64."""
    _Builder(onnx, network, source, dry=True).run()
    folded, plan = fold_network(network)
    training = {key: np.asarray(value, dtype=np.float64) for key, value in source.served.items()}
    return folded, _Builder(onnx, folded, WeightSource(fold_state_dict(training, plan), origin=source.origin))


def _rename_output(onnx: Any, builder: _Builder, last: str) -> None:
    """The network's output tensor is called ``output`` (an Identity when no node makes it)."""
    producers = [node for node in builder.nodes if last in node.output]
    if not producers:
        builder.nodes.append(onnx.helper.make_node("Identity", [last], [OUTPUT], name=OUTPUT))
        return
    for node in builder.nodes:
        for i, name in enumerate(node.input):
            if name == last:
                node.input[i] = OUTPUT
    producers[0].output[0] = OUTPUT


def _doc(network: Network, weights: WeightSource) -> str:
    from resdsl._version import __version__

    where = f" from {network.source_file}" if network.source_file else ""
    made = (
        "random weights (seeded numpy draws from build_model's initial distributions; not a trained model)"
        if weights.random
        else f"weights from {weights.origin or 'a state_dict'}"
    )
    return (
        f"{network.name}{where}: {network.weighted_layers} weighted layers, {network.num_params:,} parameters; "
        f"{made}; written by resdsl {__version__} from the checked IR"
    )


def _metadata(network: Network, weights: WeightSource, batch_dim: int | str) -> dict[str, str]:
    """metadata_props: the spec's meta entries (mean, std, dataset...) as JSON, and the input."""
    props = {key: value if isinstance(value, str) else json.dumps(value) for key, value in network.meta.items()}
    props.update(
        {
            "input_size": "x".join(str(d) for d in network.input_shape),
            "input_shape": json.dumps([batch_dim if isinstance(batch_dim, int) else None, *network.input_shape]),
            "network": network.name,
            "source": Path(network.source_file).name,
            "parameters": json.dumps({k: v for k, v in network.params.items() if _plain(v)}),
            "weights": "random" if weights.random else (weights.origin or "state_dict"),
        }
    )
    return props


def _plain(value: Any) -> bool:
    """A parameter value JSON can hold (a layer-valued one, such as a norm, is left out)."""
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def export(
    network: Network,
    path: str | Path,
    weights: Mapping[str, Any] | None = None,
    batch: int | str = "dynamic",
    seed: int = 0,
    force: bool = False,
    fold: bool = True,
    origin: str = "",
) -> onnx.ModelProto:
    """Write ``network`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    target = Path(path)
    _refuse_foreign(target, force)
    model = onnx_model(network, weights, batch, seed, fold, origin)
    data = model.SerializeToString()
    write_atomic(target, data)
    return model


def _refuse_foreign(path: Path, force: bool) -> None:
    """Never replace a file that ``resdsl export`` did not write, unless told to (E824).

    Protobuf writes fields in number order, so a model resdsl wrote starts with its IR
    version (field 1) and then ``producer_name`` (field 2) "resdsl".
    """
    if force or not path.exists():
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError:
        head = b""
    if path.is_file() and b"\x12\x06resdsl" in head:
        return
    raise ResdslError(
        error(
            "E824",
            f"refusing to overwrite {path}: resdsl export did not write it",
            Span(str(path), 0, 0, 0, 0),
            help="choose another -o path, or pass --force to replace it",
        )
    )
