"""Fine-tuning a built model: the three modes of the ResNet notes.

1. Load the weights and train everything: ``build_model(spec, weights=PATH)``.
2. Load the weights and train only the last layers: ``freeze=["conv1", "bn1", "layer1"]``
   (module paths) or ``freeze_until="layer3"`` (every top-level module before ``layer3``);
   ``freeze_bn=True`` keeps the batchnorm layers inside frozen modules in eval mode, so that
   ``model.train()`` no longer moves their running statistics (as detection backbones do).
3. Load the weights, then replace the classifier (``num_classes=10``) or add a fully connected
   layer on top (``head=10``: a layer of the compiled network, see
   :meth:`resdsl.semantics.elaborate.Elaborator.network`) and train only that (``freeze_until="fc"`` /
   ``"head"``). The old classifier's tensors load where their shapes fit and are otherwise
   kept at initialisation with a warning naming them (see :mod:`resdsl.weights`).

:func:`freeze` works on any ``nn.Module`` (a generated one too).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from torch import nn

from resdsl.diagnostics import ResdslError, error
from resdsl.syntax import ast
from resdsl.weights import Weights, load_weights

__all__ = ["EvalBatchNorm1d", "EvalBatchNorm2d", "EvalSyncBatchNorm", "freeze", "prepare"]


class _StaysInEval(nn.Module):
    """A norm layer whose ``train()`` leaves it in eval mode: its running statistics stay fixed."""

    def train(self, mode: bool = True) -> Any:
        return super().train(False)


class EvalBatchNorm1d(_StaysInEval, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` frozen in eval mode; same state_dict."""


class EvalBatchNorm2d(_StaysInEval, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` frozen in eval mode; same state_dict."""


class EvalSyncBatchNorm(_StaysInEval, nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` frozen in eval mode; same state_dict."""


_EVAL: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: EvalBatchNorm1d,
    nn.BatchNorm2d: EvalBatchNorm2d,
    nn.SyncBatchNorm: EvalSyncBatchNorm,
}


def _span(what: str) -> ast.Span:
    return ast.Span(f"<{what}>", 0, 0, 0, 0)


def freeze(model: nn.Module, modules: Sequence[str] = (), until: str | None = None, bn_eval: bool = False) -> list[str]:
    """Stop training the named modules (dotted paths, e.g. ``"layer4.0.conv1"``) and, with
    ``until``, every top-level module registered before that one. ``bn_eval`` keeps their
    batchnorm layers in eval mode. Returns the names of the parameters frozen."""
    if isinstance(modules, str):
        modules = [modules]
    children = [name for name, _ in model.named_children()]
    paths = list(modules)
    if until is not None:
        if until not in children:
            raise _unknown(until, children, "freeze_until", "a top-level module")
        paths += [c for c in children[: children.index(until)] if c not in paths]
    names = [name for name, _ in model.named_modules() if name]
    for path in paths:
        if path not in names:
            raise _unknown(path, names, "freeze", "a module path")
    if bn_eval and not paths:
        raise ResdslError(
            error(
                "E706",
                "freeze_bn keeps the batchnorm layers of frozen modules in eval mode, but nothing is frozen",
                _span("freeze_bn"),
                help='name the frozen modules too: freeze=["conv1", "bn1", "layer1"] or freeze_until="layer3"',
            )
        )
    frozen: list[str] = []
    for path in paths:
        module = model.get_submodule(path)
        for name, param in module.named_parameters(prefix=path):
            if param.requires_grad:
                param.requires_grad_(False)
                frozen.append(name)
        if bn_eval:
            for norm in module.modules():
                if type(norm) in _EVAL:
                    norm.__class__ = _EVAL[type(norm)]
                    norm.train(False)
    return frozen


def _unknown(name: str, known: list[str], option: str, what: str) -> ResdslError:
    close = difflib.get_close_matches(name, known, n=3)
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return ResdslError(
        error(
            "E705",
            f"{option}: the model has no module '{name}'",
            _span(option),
            help=f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"{what}: {shown}",
        )
    )


def prepare(
    model: nn.Module,
    *,
    weights: Weights | None = None,
    strip_prefix: str | None = None,
    freeze_modules: Sequence[str] = (),
    freeze_until: str | None = None,
    freeze_bn: bool = False,
) -> nn.Module:
    """``build_model``'s fine-tuning options, in order: load the weights (the report is kept as
    ``model.resdsl_load_report``), freeze."""
    if strip_prefix and weights is None:
        raise ResdslError(error("E706", "strip_prefix applies to weights, but none are given", _span("strip_prefix")))
    if weights is not None:
        model.resdsl_load_report = load_weights(model, weights, strip_prefix=strip_prefix)  # type: ignore[assignment]
    if freeze_modules or freeze_until is not None or freeze_bn:
        freeze(model, freeze_modules, freeze_until, freeze_bn)
    return model
