"""Folding eval-mode batchnorm into the convolution before it: an IR pass plus the weight maths.

In eval mode a batchnorm is a fixed per-channel affine map, so ``bn(conv(x))`` is one conv
with weight ``w * g / sqrt(var + eps)`` and bias ``beta + (b - mean) * g / sqrt(var + eps)``.
:func:`fold_network` rewrites a checked :class:`~resdsl.ir.Network` into the inference
network (those batchnorms gone, their convs with a bias, projection shortcuts' batchnorms
folded too, option A shortcuts marked to add into the first channels instead of padding),
so every back end builds the inference model from it;
:class:`FoldPlan` says which training state_dict entries become which, and
:func:`fold_state_dict` applies it to torch tensors and numpy arrays alike.

A batchnorm that does not follow a conv whose output only it reads stays (pre-activation
networks normalise the sum of a residual addition; those are listed in
``FoldPlan.kept``). Nothing here imports torch.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Layer, Network, Scope, ScopeKind
from resdsl.ops import OPS
from resdsl.syntax import ast

__all__ = ["FoldPlan", "fold_batchnorm", "fold_network", "fold_state_dict"]

Fold = tuple[str, str, str, float]  # (training conv, its batchnorm, inference conv, eps): module paths


@dataclass(frozen=True)
class FoldPlan:
    """How a training state_dict becomes the inference model's.

    ``folds``: one ``(conv, batchnorm, folded conv, eps)`` per folded pair, as module paths;
    ``renames``: ``(training path, inference path)`` of other modules that moved (the
    position-numbered layers of a sequential group after a batchnorm left it); ``kept``: the
    batchnorms left in because no conv feeds them alone.
    """

    folds: tuple[Fold, ...]
    renames: tuple[tuple[str, str], ...] = ()
    kept: tuple[str, ...] = ()


def fold_state_dict(state: Mapping[str, Any], plan: FoldPlan) -> dict[str, Any]:
    """The inference state_dict for a training one (torch tensors or numpy arrays); a
    batchnorm entry the plan needs but the state lacks is error E801."""
    if not isinstance(state, Mapping):
        raise _refused(f"weights must be a state_dict (a mapping), not {type(state).__name__}")
    try:
        return fold_batchnorm(state, plan.folds, plan.renames)
    except ValueError as exc:
        raise _refused(str(exc)) from None


def refuse_folded(keys: Iterable[str], plan: FoldPlan, name: str = "<weights>") -> None:
    """E801 for weights that are an inference model's already: every batchnorm the plan folds
    is absent and its conv has the bias that folding gives it. ``name``: the file, for the message."""
    have = set(keys)
    if plan.folds and all(
        f"{norm}.running_mean" not in have and f"{conv}.bias" in have for _, norm, conv, _ in plan.folds
    ):
        raise _refused("these weights are folded already (an inference model's state_dict)", name)


def _refused(why: str, name: str = "<weights>") -> ResdslError:
    return ResdslError(
        error(
            "E801",
            f"cannot fold batchnorm: {why}",
            ast.Span(name, 0, 0, 0, 0),
            help="pass model.state_dict() of the training model built from the same spec",
        )
    )


def _module_path(layer: Layer) -> str:
    scope = layer.scope.path if layer.scope is not None else ""
    return f"{scope}.{layer.module}" if scope else layer.module


def fold_network(network: Network) -> tuple[Network, FoldPlan]:
    """The inference network for ``network`` and the plan that folds its weights; the
    network given is left as it is."""
    net = copy.deepcopy(network)
    before = {layer.id: _module_path(layer) for layer in net.layers() if OPS.get(layer.op, None) is not None}
    pending: list[tuple[str, str, Layer, float]] = []  # folded conv paths known once renumbered
    folds: list[Fold] = []
    kept: list[str] = []
    for layer in list(net.layers()):
        if layer.op == "batchnorm":
            conv = _foldable_conv(net, layer)
            if conv is None:
                kept.append(before[layer.id])
                continue
            _remove_norm(net, layer, conv)
            pending.append((before[conv.id], before[layer.id], conv, float(layer.attrs["eps"])))
        elif layer.op in OPS and OPS[layer.op].own_modules is not None and layer.attrs.get("norm"):
            folds.extend(_fold_own_modules(layer))  # attributes of its block: paths stay
        elif layer.shortcut is not None and layer.shortcut.norm and layer.shortcut.norm_op == "batchnorm":
            folds.extend(_fold_shortcut(layer, before[layer.id]))  # inside a shortcut: paths stay
        if layer.shortcut is not None and layer.shortcut.kind == "zero_pad":
            layer.shortcut = replace(layer.shortcut, add_into=True)
    _renumber(net.root)
    after = {layer.id: _module_path(layer) for layer in net.layers()}
    folds = [(conv, norm, after[layer.id], eps) for conv, norm, layer, eps in pending] + folds
    moved = tuple((before[i], after[i]) for i in before if i in after and before[i] != after[i])
    return net, FoldPlan(tuple(folds), moved, tuple(kept))


def _foldable_conv(net: Network, norm: Layer) -> Layer | None:
    """The conv ``norm`` can fold into: its only reader, in the same scope or ending a
    sequential group just before it (timm's deep stem, then ``bn1``), spatial."""
    source = net.port(norm.id, 0)
    if source is None:
        return None
    conv = net.layer(source)
    if conv.op != "conv" or net.graph.out_degree(source) != 1 or norm.shape is None or len(norm.shape) != 3:
        return None
    home = conv.scope
    if home is norm.scope:
        return conv
    ends_group = home is not None and home.kind == ScopeKind.SEQUENTIAL and home.output == conv.id
    return conv if ends_group and norm.scope is not None and home in norm.scope.items else None


def _remove_norm(net: Network, norm: Layer, conv: Layer) -> None:
    """Take ``norm`` out of the graph and its scope; ``conv`` gets a bias and its readers."""
    g = net.graph
    for succ, edge in list(g.succ[norm.id].items()):
        g.add_edge(conv.id, succ, **edge)
    g.remove_node(norm.id)
    net.order.remove(norm.id)
    scope = norm.scope
    assert scope is not None
    at = next(i for i, item in enumerate(scope.items) if item is norm)
    del scope.items[at]
    scope.let_at = [n - 1 if n > at else n for n in scope.let_at]
    scope.plain = [(n - 1 if n > at else n, kind) for n, kind in scope.plain]
    for other in net.root.scopes():
        other.input = conv.id if other.input == norm.id else other.input
        other.output = conv.id if other.output == norm.id else other.output
    if not conv.attrs.get("bias"):
        conv.attrs["bias"] = True
        conv.exprs["bias"] = ast.BoolLit(True)
        conv.params += conv.attrs["out"]


def _fold_own_modules(layer: Layer) -> list[Fold]:
    """Fold the batchnorms of an op whose modules are its block's (res2_hierarchy's ``bns``)
    into the convs before them: a list of batchnorms that follows a list of convs of the same
    length folds pairwise; the op is rebuilt with ``norm=false`` (convs with a bias, no norms)."""
    form = OPS[layer.op].own_modules
    assert form is not None and layer.in_shapes
    scope = layer.scope.path if layer.scope is not None else ""
    owns = form.modules(layer.attrs, layer.in_shapes[0], lambda a, b: a - b)
    folds: list[Fold] = []
    for conv, norm in itertools.pairwise(owns):
        if conv.op == "conv" and norm.op == "batchnorm" and conv.count == norm.count and conv.count is not None:
            at = [f"{scope}.{own.attr}" if scope else own.attr for own in (conv, norm)]
            eps = float(norm.args["eps"])
            folds += [(f"{at[0]}.{i}", f"{at[1]}.{i}", f"{at[0]}.{i}", eps) for i in range(conv.count)]
    layer.attrs["norm"] = False
    layer.exprs["norm"] = ast.BoolLit(False)
    layer.params = OPS[layer.op].param_count(layer.in_shapes[0], layer.shape or (), layer.attrs)
    return folds


def _fold_shortcut(residual: Layer, path: str) -> list[Fold]:
    """Fold a projection shortcut's batchnorm into its 1x1 conv (nn.Sequential children:
    [avgpool,] conv, batchnorm). Every instance of the block is marked, also those whose
    shortcut is an identity, so a block class written from any of them says the same."""
    s = residual.shortcut
    assert s is not None
    eps = float(s.norm_attrs.get("eps", 1e-5))
    names = s.step_names[:-1] if s.norm and s.step_names else s.step_names  # the norm's name goes with it
    folded = replace(s, norm=False, norm_op="batchnorm", norm_args=(), bias=True, step_names=names)
    residual.shortcut = folded
    residual.attrs["norm"] = False
    residual.exprs["norm"] = ast.BoolLit(False)
    residual.params = folded.params
    steps = {step.op: step.key for step in s.steps()}  # where the shortcut's description puts them
    if "conv" not in steps:
        return []
    conv, norm = f"{path}.{steps['conv']}", f"{path}.{steps['batchnorm']}"
    return [(conv, norm, conv, eps)]


def _renumber(root: Scope) -> None:
    """Sequential groups number their layers by position: renumber those that lost one."""
    for scope in root.scopes():
        if scope.kind != ScopeKind.SEQUENTIAL:
            continue
        for i, item in enumerate(scope.items):
            if isinstance(item, Layer) and item.module.isdigit() and item.module != str(i):
                item.name = item.module = str(i)
                item.path = f"{scope.path}.{i}" if scope.path else str(i)


# --- copied into generated inference modules from here ---
def fold_batchnorm(
    state_dict: Mapping[str, Any],
    folds: Iterable[tuple[str, str, str, float]],
    renames: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A training state_dict with each batchnorm folded into the conv before it.

    ``folds``: ``(conv, batchnorm, folded conv, eps)`` module paths; ``renames``: modules
    that moved. Works on torch tensors and numpy arrays alike: in eval mode
    ``bn(conv(x)) = conv'(x)`` with ``w' = w * s`` and ``b' = beta + (b - mean) * s``,
    ``s = gamma / sqrt(var + eps)``. Raises ValueError naming the entries a fold needs that
    the state_dict lacks.
    """
    folds = list(folds)
    needed = [f"{conv}.weight" for conv, _, _, _ in folds]
    needed += [f"{norm}.{key}" for _, norm, _, _ in folds for key in ("running_mean", "running_var")]
    lacking = [key for key in needed if key not in state_dict]
    if lacking:
        shown = ", ".join(lacking[:8]) + (f" and {len(lacking) - 8} more" if len(lacking) > 8 else "")
        raise ValueError(
            f"not a training state_dict of this network (folded already, or another one); it lacks {shown}"
        )
    moved = dict(renames)
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for conv, norm, target, eps in folds:
        weight = state_dict[f"{conv}.weight"]
        mean, var = state_dict[f"{norm}.running_mean"], state_dict[f"{norm}.running_var"]
        scale = (var + eps) ** -0.5
        gamma, beta = state_dict.get(f"{norm}.weight"), state_dict.get(f"{norm}.bias")
        if gamma is not None:  # affine=False batchnorms have no gamma and beta
            scale = scale * gamma
        bias = state_dict.get(f"{conv}.bias")
        shift = -mean * scale if bias is None else (bias - mean) * scale
        out[f"{target}.weight"] = weight * scale.reshape((-1,) + (1,) * (len(weight.shape) - 1))
        out[f"{target}.bias"] = shift if beta is None else shift + beta
        dropped.update(f"{conv}.{k}" for k in ("weight", "bias"))
        dropped.update(f"{norm}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))
    for key, value in state_dict.items():
        if key in dropped:
            continue
        module, _, name = key.rpartition(".")
        out[f"{moved[module]}.{name}" if module in moved else key] = value
    return out
