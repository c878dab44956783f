"""Feature outputs and gradient checkpointing in generated code.

The emitter writes the network's forward as usual (from the cut network of a
:class:`~resdsl.ir.features.Plan`); :func:`resdsl.ir.planning.planned`, the function that
build_model's forward goes through too, then adds a ``features[...] = x`` step after each
requested layer, returns the dict, and writes runs of checkpointed stages as one branch
taken only when ``self.grad_checkpointing`` is on and the module is not being scripted
(``checkpoint`` cannot be scripted; timm guards its ``checkpoint_seq`` the same way), the
other branch being the plain calls, so a scripted module runs them. This module adds what
the class needs besides: its attributes and constructor arguments, and FEATURE_INFO.
"""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.backends.codegen.emit import ClassDef
from resdsl.backends.codegen.expr import attr_name, fresh, py_str
from resdsl.ir import Layer, Scope
from resdsl.ir.features import Plan
from resdsl.ir.planning import Segment, planned

__all__ = ["apply", "extra_args", "feature_info_source"]


def apply(plan: Plan, cls: ClassDef, item_steps: Sequence[tuple[Layer | Scope, int]]) -> None:
    """Rewrite the network class's forward for ``plan`` (with :func:`resdsl.ir.planning.planned`,
    as build_model's); ``item_steps`` says where each top-level item's steps start in
    ``cls.forward``."""
    bounds = [*(start for _, start in item_steps), len(cls.forward)]
    segments = [
        Segment.of(
            item, cls.forward[start:end], attr_name(item.name if isinstance(item, Scope) else item.module, item.span)
        )
        for (item, start), end in zip(item_steps, bounds[1:], strict=True)
    ]
    var = ""
    if plan.capture:
        var = fresh("features", cls.locals)
        cls.locals.add(var)
    forward = planned(cls.forward[: bounds[0]], segments, plan, cls.main, var)
    cls.forward, cls.main, cls.returns = list(forward.steps), forward.result, forward.returns
    if plan.capture:
        cls.init.append(("attr", ("feature_info", "[dict(info) for info in FEATURE_INFO]")))
    if plan.checkpoint:
        cls.params.append(("grad_checkpointing", "bool", "True"))
        cls.init.append(("attr", ("grad_checkpointing", "grad_checkpointing")))
        cls.params.append(("checkpoint_reentrant", "bool", "True"))
        cls.init.append(("attr", ("checkpoint_reentrant", "checkpoint_reentrant")))


def _attr(item: Layer | Scope) -> str:
    return item.name if isinstance(item, Scope) else item.module


def feature_info_source(plan: Plan) -> str:
    """The FEATURE_INFO constant: timm's ``feature_info`` for the generated network."""
    entries = (
        f"{{{py_str('module')}: {py_str(f.name)}, {py_str('num_chs')}: {f.channels}, "
        f"{py_str('reduction')}: {f.stride}}}"
        for f in plan.features
    )
    return f"[{', '.join(entries)}]"


def extra_args(plan: Plan | None) -> list[str]:
    """The ``resdsl build`` options that write this plan again."""
    if plan is None:
        return []
    args = []
    if plan.features:
        args += ["--features", ",".join(f.name for f in plan.features)]
    if plan.checkpoint:
        args += ["--checkpoint", ",".join(plan.checkpoint)]
    return args
