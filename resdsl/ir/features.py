"""Feature outputs and per-stage gradient checkpointing, planned on the checked IR.

Detection and segmentation models read a backbone's intermediate maps (timm's
``features_only=True``, torchvision's ``create_feature_extractor``). Here a request names
top-level layers of the network (``layer1`` ... ``layer4``, or a named layer such as ``bn1``),
or an item inside top-level stages, sequential groups and blocks whose layers run in a row
(:func:`is_chain`) by its module path (``blocks.2``, a stage of EfficientNet's ``blocks``;
``layer3.5``, a block of a stage; DenseNet's ``features.denseblock1``): the forward then calls
the children of those groups one by one (:attr:`Plan.unrolled`), as their own forward would.
:func:`plan` checks the names, cuts the network after the last requested one (the
classifier and anything else after it is dropped, inside a group too, so the state_dict is
the full model's minus those keys) and describes every feature: its channels, spatial size
and stride ("reduction" in timm's ``feature_info``). It also resolves which top-level layers
run under gradient checkpointing. Both back ends build from the :class:`Plan` (their forward through
:func:`resdsl.ir.planning.planned`); nothing here imports torch, so ``resdsl check
--features`` stays light.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from resdsl.diagnostics import Diagnostic, ResdslError, error
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, Shape, channels_of, fmt_shape
from resdsl.syntax import ast

Checkpoint = bool | Sequence[str] | None

__all__ = ["Checkpoint", "Feature", "Plan", "plan", "requested", "top_level"]


@dataclass(frozen=True)
class Feature:
    """One requested output: a top-level layer's name, where its value comes from and its map."""

    name: str  # its module path (a top-level name, or blocks.2): the output dict's key and feature_info's module
    node: str  # id of the IR node whose output it is
    shape: Shape  # C x H x W (or N x C tokens) per sample
    stride: int  # input pixels per output pixel (timm's "reduction")
    span: ast.Span
    copy: bool = False  # the next layer overwrites this value in place: the output keeps a copy

    @property
    def channels(self) -> int:
        return channels_of(self.shape)

    def info(self) -> dict[str, int | str]:
        """timm's ``feature_info`` entry: ``module``, ``num_chs``, ``reduction``."""
        return {"module": self.name, "num_chs": self.channels, "reduction": self.stride}

    def describe(self) -> str:
        return f"{self.name}: {fmt_shape(self.shape)}, stride {self.stride}"


@dataclass(frozen=True)
class Plan:
    """What a back end builds: the (possibly cut) network, its feature outputs in network
    order, and the top-level items that run under checkpointing."""

    network: Network
    features: tuple[Feature, ...] = ()
    checkpoint: tuple[str, ...] = ()
    # module paths of the stages and sequential groups whose children the forward calls one by
    # one, because a feature is taken inside them (blocks, blocks.2 for a feature at blocks.2.1)
    unrolled: frozenset[str] = frozenset()

    @property
    def feature_info(self) -> list[dict[str, int | str]]:
        return [f.info() for f in self.features]

    @property
    def capture(self) -> dict[str, Feature]:
        """Features by the node whose output they are."""
        return {f.node: f for f in self.features}


def top_level(network: Network) -> dict[str, Layer | Scope]:
    """The items a feature or checkpoint request may name: named layers and scopes of the
    network body that are on the main path (a gate's side branch is not)."""
    items: dict[str, Layer | Scope] = {}
    for item in network.root.items:
        if isinstance(item, Scope):
            if not item.side:
                items[item.name] = item
        elif not item.anonymous and OPS.get(item.op) is not None:
            items[item.name] = item
    return items


CONTAINERS = ("stage", "sequential")  # groups whose forward is their children in a row (nn.Sequential)


def is_chain(network: Network, scope: Scope) -> bool:
    """Whether a block's forward is its items one after the other, each reading the last one's
    output (no residual, merge, gate or tensor of its own), so its children can be called one
    by one from outside it: DenseNet's ``features``."""
    current = scope.input
    for item in scope.items:
        if isinstance(item, Scope):
            if item.side or item.input != current:
                return False
            current = item.output
            continue
        op = OPS.get(item.op)
        if op is None or op.merge is not None or op.own_param is not None or op.own_modules is not None:
            return False
        if op.composite or network.inputs(item.id) != [current]:
            return False
        current = item.id
    return current == scope.output


def _opens(network: Network, item: Scope) -> bool:
    """Whether the forward can be taken inside ``item``: a stage, a sequential group, or a block
    that is a chain whose block no other scope of the network is an instance of (cutting it
    after a feature must not change the class the others share)."""
    if item.kind in CONTAINERS:
        return True
    if item.kind != "block" or item.block is None or not is_chain(network, item):
        return False
    return sum(1 for s in network.root.scopes() if s.block is item.block) == 1


def child_name(item: Layer | Scope) -> str:
    """An item's name in its group's module path: ``2`` of ``blocks.2``, ``b1`` of ``s1.b1``,
    ``denseblock1`` of ``features.denseblock1``."""
    return item.path.rsplit(".", 1)[-1]


def _inside(network: Network, name: str, items: Mapping[str, Layer | Scope]) -> Layer | Scope | str:
    """The item at module path ``name`` (``blocks.2.0``) through top-level stages and
    sequential groups, or why there is none."""
    head, *rest = name.split(".")
    item = items.get(head)
    if item is None:
        return f"{network.name} has no top-level layer '{head}'"
    walked = head
    for part in rest:
        if not isinstance(item, Scope) or not _opens(network, item):
            what = f"a {item.kind}" if isinstance(item, Scope) else "a single layer"
            return (
                f"'{walked}' is {what}: outputs inside a network are taken in stages, sequential groups and "
                "blocks whose layers run one after the other (no residual or merge), used once"
            )
        children = [child for child in item.items if isinstance(child, Scope) or OPS.get(child.op) is not None]
        found = next((child for child in children if child_name(child) == part), None)
        if found is None:
            names = ", ".join(child_name(child) for child in children)
            return f"'{walked}' has no '{part}' (its children: {names})"
        item, walked = found, f"{walked}.{part}"
    return item


def _position(network: Network, name: str) -> tuple[int, ...]:
    """Where module path ``name`` stands in the forward: its index at each level."""
    head, *rest = name.split(".")
    item: Layer | Scope = top_level(network)[head]
    where = [next(i for i, top in enumerate(network.root.items) if top is item)]
    for part in rest:
        assert isinstance(item, Scope)
        index = next(i for i, child in enumerate(item.items) if child_name(child) == part)
        where.append(index)
        item = item.items[index]
    return tuple(where)


def _output(item: Layer | Scope) -> str:
    return item.output if isinstance(item, Scope) else item.id


def _where(network: Network) -> ast.Span:
    definition = network.definition
    if definition is not None and definition.name_span.line:
        return definition.name_span
    return network.span


def _unknown(network: Network, name: str, what: str, code: str, known: list[str]) -> Diagnostic:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    head = name.split(".", 1)[0]
    if "." in name and head in known:
        hint = f"only top-level layers can be named; '{head}' is the one holding {name}"
    elif close:
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = f"top-level layers of {network.name}: {', '.join(known) or 'none'}"
    return error(code, f"{network.name} has no top-level layer '{name}' {what}", _where(network), help=hint)


def _stride(network: Network, node: str, shape: Shape) -> int:
    stride = network.path_stride(network.root.input, node)
    if stride is None:  # not reached along main inputs: read it off the map sizes
        stride = max(network.input_shape[-1] // max(shape[-1], 1), 1)
    return stride


def _overwritten(network: Network, node: str, kept: set[str]) -> bool:
    """Whether a kept layer overwrites ``node``'s output in place (looking through ops that
    return their input), so a feature holding it needs its own copy."""
    for succ, edge in network.graph.succ[node].items():
        if succ not in kept or edge["port"] != 0:
            continue
        layer = network.layer(succ)
        op = OPS.get(layer.op)
        if layer.inplace or (op is not None and op.returns_input and _overwritten(network, succ, kept)):
            return True
    return False


def _trim(scope: Scope, where: Sequence[int]) -> Scope:
    """``scope`` up to and including its item at ``where`` (an index at each level below): a
    stage keeps that many blocks."""
    index, *below = where
    items = list(scope.items[: index + 1])
    if below:
        inner = items[index]
        assert isinstance(inner, Scope)
        items[index] = _trim(inner, below)
    trimmed = dataclasses.replace(scope, items=items, output=_output(items[-1]))
    if scope.kind == "stage" and len(items) < scope.repeat:
        trimmed = dataclasses.replace(trimmed, repeat=len(items), repeat_expr=None)
    return trimmed


def cut(network: Network, last: str) -> Network:
    """``network`` up to and including the item at module path ``last`` (top-level, or inside
    stages and sequential groups): a shallow copy whose body, graph and order hold only what
    runs before that item's output."""
    root = _trim(network.root, _position(network, last))
    kept_items = root.items
    kept = {network.root.input}
    for item in kept_items:
        kept |= {layer.id for layer in item.layers()} if isinstance(item, Scope) else {item.id}
    return dataclasses.replace(
        network,
        root=root,
        graph=network.graph.subgraph(kept).copy(),
        order=[n for n in network.order if n in kept],
    )


def _checkpoint_names(network: Network, checkpoint: Checkpoint, items: dict[str, Layer | Scope]) -> list[str]:
    if checkpoint is None or checkpoint is False:
        return []
    if checkpoint is True:
        stages = [name for name, item in items.items() if isinstance(item, Scope) and item.kind == "stage"]
        if not stages:
            raise ResdslError(error("E746", _no_stages(network, items), _where(network), help=_no_stages_help(items)))
        return stages
    if checkpoint == "all":  # as the command line says it
        return _checkpoint_names(network, True, items)
    if isinstance(checkpoint, str):
        checkpoint = [checkpoint]
    if not checkpoint:
        raise ResdslError(
            error(
                "E746",
                "checkpoint=[] names no layers to checkpoint",
                _where(network),
                help="pass True (every stage), 'all', or stage names; None builds without checkpointing",
            )
        )
    return list(checkpoint)


def _holding_stages(items: Mapping[str, Layer | Scope]) -> list[str]:
    """The top-level groups whose stages lie inside them (MobileNet's ``blocks``, DenseNet's
    ``features``): checkpointing can name the group, which then runs as one segment."""
    return [
        name
        for name, item in items.items()
        if isinstance(item, Scope) and any(isinstance(s, Scope) and s.kind == "stage" for s in item.items)
    ]


def _no_stages(network: Network, items: Mapping[str, Layer | Scope]) -> str:
    groups = _holding_stages(items)
    if groups:
        return f"{network.name} has no top-level stages to checkpoint; its stages are inside {', '.join(groups)}"
    return f"{network.name} has no stages to checkpoint"


def _no_stages_help(items: Mapping[str, Layer | Scope]) -> str:
    groups = _holding_stages(items)
    if groups:
        named = ", ".join(repr(g) for g in groups)
        return f"name the group to checkpoint it as one segment (checkpoint=[{named}], --checkpoint {','.join(groups)})"
    return f"name the layers to checkpoint: {', '.join(items) or 'none'}"


def requested(network: Network, features: Sequence[str] | None, checkpoint: Checkpoint) -> Plan | None:
    """The plan for a build's ``features``/``checkpoint`` options, or None when neither is asked
    for (``checkpoint=[]`` is asked for, and refused: it names nothing)."""
    if features is None and (checkpoint is None or checkpoint is False):
        return None
    return plan(network, features, checkpoint)


def plan(network: Network, features: Sequence[str] | None = None, checkpoint: Checkpoint = None) -> Plan:
    """Check a feature/checkpoint request against ``network``; raises :class:`ResdslError`
    with every problem found (codes E740-E759)."""
    items = top_level(network)
    problems: list[Diagnostic] = []
    chosen = _chosen_features(network, items, features, problems)
    order = {name: i for i, name in enumerate(items)}
    last = max((order[name.split(".")[0]] for name in chosen), default=len(items))
    built = {name: item for name, item in items.items() if order[name] <= last}  # True: the stages kept
    wanted = _checkpoint_names(network, checkpoint, built if checkpoint is True else items)
    seen = _checkpointed(network, items, wanted, problems)
    if problems:
        raise ResdslError(problems)
    names = sorted(chosen, key=lambda name: _position(network, name))
    cut_net = cut(network, names[-1]) if names else network
    if names:
        dropped = [name for name in wanted if order[name] > order[names[-1].split(".")[0]]]
        _refuse_dropped(items, dropped, names[-1])
    kept = set(cut_net.order)
    out = []
    for name in names:
        node = _output(chosen[name])
        shape = network.layer(node).shape
        assert shape is not None
        copy = _overwritten(network, node, kept)
        out.append(Feature(name, node, shape, _stride(network, node, shape), chosen[name].span, copy))
    unrolled = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
    return Plan(cut_net, tuple(out), tuple(sorted(seen, key=order.__getitem__)), frozenset(unrolled))


def _chosen_features(
    network: Network, items: Mapping[str, Layer | Scope], features: Sequence[str] | None, problems: list[Diagnostic]
) -> dict[str, Layer | Scope]:
    """The feature outputs asked for by module path, each a C x H x W map named once (E740-E743,
    and E708 beside a head); the problems go to ``problems``."""
    chosen: dict[str, Layer | Scope] = {}
    if features is None:
        return chosen
    known = list(items)
    if isinstance(features, str):
        features = [features]
    if not features:
        problems.append(
            error("E743", "no feature outputs were named", _where(network), help=f"name some of: {', '.join(known)}")
        )
    if network.head is not None:
        problems.append(
            error(
                "E708",
                "head adds a linear layer on the network's output, but features (--features) are feature maps",
                ast.Span("<head>", 0, 0, 0, 0),
                help="put a head on the feature maps in your own module, or leave out --head (head=)",
            )
        )
    for name in features:
        found = _inside(network, name, items) if name.split(".")[0] in items else None
        if found is None:
            problems.append(_unknown(network, name, "to return as a feature", "E740", known))
        elif isinstance(found, str):
            at = items[name.split(".")[0]].span
            problems.append(error("E740", f"no feature '{name}': {found}", at, help=_nested_help(name)))
        elif name in chosen:
            problems.append(error("E742", f"feature '{name}' is named twice", found.span))
        else:
            shape = network.layer(_output(found)).shape
            if shape is None or len(shape) not in (2, 3):  # a map, or a transformer's N x C tokens
                problems.append(
                    error(
                        "E741",
                        f"'{name}' gives {fmt_shape(shape)}, not a C x H x W map or N x C tokens, "
                        "so it cannot be a feature",
                        found.span,
                        help="features are maps or tokens: name a stage or a layer before the pooling",
                    )
                )
            chosen[name] = found
    return chosen


def _nested_help(name: str) -> str:
    return (
        f"name a top-level layer ('{name.split('.')[0]}'), or a module path through stages and sequential "
        "groups, as in the state_dict's keys (blocks.2, layer3.5)"
    )


def _checkpointed(
    network: Network, items: Mapping[str, Layer | Scope], wanted: Sequence[str], problems: list[Diagnostic]
) -> set[str]:
    """The stages to checkpoint, each a top-level stage or block named once (E742, E744, E745)."""
    seen: set[str] = set()
    for name in wanted:
        if name not in items:
            problems.append(_unknown(network, name, "to checkpoint", "E745", list(items)))
        elif name in seen:
            problems.append(error("E742", f"'{name}' is named twice to checkpoint", items[name].span))
        elif not isinstance(items[name], Scope):
            stages = [n for n, item in items.items() if isinstance(item, Scope)]
            problems.append(
                error(
                    "E744",
                    f"'{name}' is a single layer; checkpointing recomputes stages and blocks",
                    items[name].span,
                    help=f"name a stage: {', '.join(stages) or 'this network has none'}",
                )
            )
        seen.add(name)
    return seen


def _refuse_dropped(items: Mapping[str, Layer | Scope], dropped: Sequence[str], last: str) -> None:
    """E747: a stage to checkpoint after the last feature output, which the cut network lacks."""
    if dropped:
        raise ResdslError(
            error(
                "E747",
                f"cannot checkpoint {', '.join(dropped)}: the feature outputs end at '{last}', so it is not built",
                items[dropped[0]].span,
                help="drop it from the checkpoint list, or ask for a later feature",
            )
        )
