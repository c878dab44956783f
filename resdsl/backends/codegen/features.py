"""Feature outputs and gradient checkpointing in generated code.

The emitter writes the network's forward as usual (from the cut network of a
:class:`~resdsl.ir.features.Plan`); this pass then adds a ``features[...] = x`` line after each
requested layer, returns the dict, and writes runs of checkpointed stages as one branch
taken only when ``self.grad_checkpointing`` is on and the module is not being scripted
(``checkpoint`` cannot be scripted; timm guards its ``checkpoint_seq`` the same way), the
other branch being the plain calls, so a scripted module runs them.
"""

from __future__ import annotations

from collections.abc import Sequence

from resdsl.backends.codegen.emit import ClassDef, Step
from resdsl.backends.codegen.expr import attr_name, fresh, py_str
from resdsl.ir import Layer, Scope
from resdsl.ir.features import Plan, group_runs

__all__ = ["apply", "extra_args", "feature_info_source"]


def apply(plan: Plan, cls: ClassDef, item_steps: Sequence[tuple[Layer | Scope, int]]) -> None:
    """Rewrite the network class's forward for ``plan``; ``item_steps`` says where each
    top-level item's steps start in ``cls.forward``."""
    capture = plan.capture
    checkpointed = set(plan.checkpoint)
    steps: list[Step] = []
    kinds: list[str] = []
    bounds = [*(start for _, start in item_steps), len(cls.forward)]
    head = cls.forward[: bounds[0]]
    steps += head
    kinds += ["passive"] * len(head)
    var = ""
    marked: set[str] = set()
    if capture:
        var = fresh("features", cls.locals)
        cls.locals.add(var)
        steps.insert(0, Step("features", var))
        kinds.insert(0, "passive")
    for (item, start), end in zip(item_steps, bounds[1:], strict=True):
        segment = cls.forward[start:end]
        name = item.name if isinstance(item, Scope) or not item.anonymous else None
        attr = attr_name(item.name if isinstance(item, Scope) else item.module, item.span)
        for step in segment:
            if name in checkpointed and step.kind == "call" and step.module == attr:
                stage = isinstance(item, Scope) and item.kind == "stage"
                step.checkpointed = f"self.{attr}" if stage else f"[self.{attr}]"
                marked.add(name)
                kinds.append("checkpoint")
            else:
                kinds.append("passive" if step.kind == "save" else "other")
            steps.append(step)
        output = item.output if isinstance(item, Scope) else item.id
        if output in capture:
            feature = capture[output]
            value = f"{cls.main}.clone()" if feature.copy else cls.main
            steps.append(Step("feature", var, py_str(feature.name), value))
            kinds.append("passive")
    if checkpointed - marked:
        raise AssertionError(f"codegen: checkpointed layers {sorted(checkpointed - marked)} have no call")
    out: list[Step] = []
    runs = dict(group_runs(kinds))
    i = 0
    while i < len(steps):
        end = runs.get(i, i + 1)
        if i in runs:
            out.append(Step("checkpoint", steps=steps[i:end]))
        else:
            out.append(steps[i])
        i = end
    cls.forward = out
    if capture:
        cls.main = var
        cls.returns = "dict[str, Tensor]"
        cls.init.append(("attr", ("feature_info", "[dict(info) for info in FEATURE_INFO]")))
    if checkpointed:
        cls.params.append(("grad_checkpointing", "bool", "True"))
        cls.init.append(("attr", ("grad_checkpointing", "grad_checkpointing")))
        cls.params.append(("checkpoint_reentrant", "bool", "True"))
        cls.init.append(("attr", ("checkpoint_reentrant", "checkpoint_reentrant")))


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
