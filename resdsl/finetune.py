"""Fine-tuning a built model: the three modes of the ResNet notes.

1. Load the weights and train everything: ``build_model(spec, weights=PATH)``.
2. Load the weights and train only the last layers: ``freeze=["conv1", "bn1", "layer1"]``
   (module paths) or ``freeze_until="layer3"`` (every top-level module before ``layer3``);
   ``freeze_bn=True`` keeps the batchnorm layers inside frozen modules in eval mode, so that
   ``model.train()`` no longer moves their running statistics (as detection backbones do).
3. Load the weights, then replace the classifier (``num_classes=10``) or add a fully connected
   layer on top (``head=10``) and train only that (``freeze_until="fc"`` / ``"head"``). The old
   classifier's tensors load where their shapes fit and are otherwise kept at initialisation
   with a warning naming them (see :mod:`resdsl.weights`).

:func:`freeze` works on any ``nn.Module`` (a generated one too); :func:`add_head` needs a
model built by resdsl, whose ``forward`` it extends.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from torch import nn

from resdsl import ast
from resdsl.backends.torch import _scope_class
from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Network
from resdsl.weights import Weights, load_weights

__all__ = ["EvalBatchNorm1d", "EvalBatchNorm2d", "EvalSyncBatchNorm", "add_head", "freeze", "prepare"]


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


def add_head(model: nn.Module, network: Network, outputs: int) -> nn.Linear:
    """Put a fully connected layer ``head`` (outputs ``outputs``) on top of a built network
    whose output is a vector; its ``forward`` ends with ``x = self.head(x)``. Returns the layer."""
    shape = network.output_shape
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise ResdslError(error("E708", f"head must be a positive number of outputs, got {outputs!r}", _span("head")))
    if shape is None or len(shape) != 1:
        raise ResdslError(
            error("E708", f"head adds a linear layer on a vector; {network.name} outputs {shape}", _span("head"))
        )
    if "head" in dict(model.named_children()):
        raise ResdslError(
            error(
                "E708",
                f"{network.name} already has a module named 'head'",
                _span("head"),
                help="replace the classifier instead: num_classes=N",
            )
        )
    source: str = type(model).resdsl_source  # type: ignore[attr-defined]
    body, end = source.rsplit("    return x\n", 1)
    model.__class__ = _scope_class(f"{body}    x = self.head(x)\n    return x\n{end}")
    layer = nn.Linear(shape[0], outputs)
    model.add_module("head", layer)
    model.resdsl_classifiers = (*getattr(model, "resdsl_classifiers", ()), "head")  # type: ignore[assignment]
    return layer


def prepare(
    model: nn.Module,
    network: Network,
    *,
    weights: Weights | None = None,
    strip_prefix: str | None = None,
    head: int | None = None,
    freeze_modules: Sequence[str] = (),
    freeze_until: str | None = None,
    freeze_bn: bool = False,
) -> nn.Module:
    """``build_model``'s fine-tuning options, in order: add the head, load the weights (the
    report is kept as ``model.resdsl_load_report``), freeze."""
    if strip_prefix and weights is None:
        raise ResdslError(error("E706", "strip_prefix applies to weights, but none are given", _span("strip_prefix")))
    if head is not None:
        add_head(model, network, head)
    if weights is not None:
        model.resdsl_load_report = load_weights(model, weights, strip_prefix=strip_prefix)  # type: ignore[assignment]
    if freeze_modules or freeze_until is not None or freeze_bn:
        freeze(model, freeze_modules, freeze_until, freeze_bn)
    return model
