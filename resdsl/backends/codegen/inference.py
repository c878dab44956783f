"""What a generated inference module adds to a training one: the network with batchnorm
folded (:func:`resdsl.ir.fold.fold_network`), the plan as constants (``FOLDS``, ``RENAMED``),
and the pure-torch ``fold_batchnorm`` (copied from :mod:`resdsl.ir.fold`, the one definition
``build_model`` runs too) behind a ``from_trained(state_dict)`` that folds a training
checkpoint without resdsl, and packs the conv weights for oneDNN and fuses the convs with
the ReLUs and additions after them (:mod:`packed` and :mod:`fusion`, copied too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resdsl.backends.codegen.copied import bias_source, fold_source, fusion_source, packed_source
from resdsl.backends.codegen.expr import free_names
from resdsl.ir import Network
from resdsl.ir.fold import FoldPlan, fold_network


@dataclass(frozen=True)
class InferenceParts:
    """The template's inference data: each entry already Python source."""

    folds: list[str]  # one tuple literal per folded pair
    renames: list[str]  # one tuple literal per moved module
    channels_last: bool
    fold_source: str  # fold_batchnorm's definition
    bias_source: str  # with_bias's definition
    packed_source: str  # PackedConv2d and pack_convolutions
    fusion_source: str  # FusedConv, FusedCall and fuse_convolutions
    kept: int  # batchnorms left in (they follow no conv)
    eps_vary: bool = False  # some folded batchnorm's eps is computed from names: from_trained takes no parameters


def fold_for_codegen(network: Network, channels_last: bool = True) -> tuple[Network, InferenceParts]:
    """The folded network to generate from, and what the template writes about the fold."""
    folded, plan = fold_network(network)
    return folded, parts(plan, channels_last, eps_varies(network, plan))


def eps_varies(network: Network, plan: FoldPlan) -> bool:
    """Whether the eps of a batchnorm the plan folds is written as an expression of names (a
    parameter, or a value computed from one): FOLDS then holds it for the generated values
    only, and other values cannot be told from the layers the module builds."""
    folded = {norm for _, norm, _, _ in plan.folds}
    for layer in network.layers():
        scope = layer.scope.path if layer.scope is not None else ""
        path = f"{scope}.{layer.module}" if scope else layer.module
        if path in folded and free_names(layer.exprs.get("eps")):
            return True
    return False


def parts(plan: FoldPlan, channels_last: bool, eps_vary: bool = False) -> InferenceParts:
    return InferenceParts(
        [f"({conv!r}, {norm!r}, {target!r}, {eps!r})" for conv, norm, target, eps in plan.folds],
        [f"({old!r}, {new!r})" for old, new in plan.renames],
        channels_last,
        fold_source(),
        bias_source(),
        packed_source(),
        fusion_source(),
        len(plan.kept),
        eps_vary,
    )


def template_names(inference: InferenceParts | None) -> dict[str, Any]:
    """Extra exports and imports an inference module needs."""
    if inference is None:
        return {"exports": [], "abc": [], "typing": []}
    exports = ["FOLDS", *(["RENAMED"] if inference.renames else []), "FusedCall", "FusedConv", "PackedConv2d"]
    exports += ["compile_frozen", "fold_batchnorm", "from_trained", "fuse_convolutions"]
    exports += ["CompiledCall", "missing_compiler", "pack_convolutions", "packing_available"]
    return {"exports": exports, "abc": ["Iterable", "Mapping"], "typing": ["Any", "Final"]}
