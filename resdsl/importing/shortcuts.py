"""Merges as the language writes them: a residual's shortcut module as one of its kinds
(identity, projection, ResNet-D's average pool, option A's zero padding), with ``name=``,
``project_from=`` and ``norm=false`` where the model's module needs them."""

from __future__ import annotations

import torch
from torch import nn

from resdsl.diagnostics import ResdslError
from resdsl.importing.layers import is_leaf
from resdsl.importing.norms import plain_batchnorm
from resdsl.importing.trace import Step, refuse, trace

_HINT = (
    "identity, a 1x1 conv (+ batchnorm) (projection), avgpool + 1x1 conv (+ batchnorm) (ResNet-D), "
    "or a stateless module that subsamples and appends zero channels (option A)"
)


def residual_args(module: nn.Module, step: Step, path: str) -> dict[str, object]:
    """The arguments of ``residual(...)`` for a residual step of ``module``: kind, name,
    project_from and norm (the last three only where they are not the defaults)."""
    args: dict[str, object] = {"kind": shortcut_kind(module, step.target, path)}
    if step.target and step.target != "downsample" and args["kind"] != "identity":
        args["name"] = step.target
    if step.source:
        args["project_from"] = step.source
    if step.target and args["kind"] not in ("zero_pad", "identity"):
        names = [name for name, _ in _parts(module.get_submodule(step.target))]
        if names != [str(i) for i in range(len(names))]:
            args["step_names"] = names
        shortcut = [part for _, part in _parts(module.get_submodule(step.target))]
        norm = _norm(shortcut[-1])
        if norm != "batchnorm":
            args["norm"] = norm
        conv = shortcut[1] if args["kind"] == "avgpool_projection" else shortcut[0]
        assert isinstance(conv, nn.Conv2d)
        # a projection where the shapes agree: the block's residual is projection_all (option C)
        args["same"] = conv.in_channels == conv.out_channels and conv.stride == (1, 1)
        if args["kind"] == "avgpool_projection":
            args["same"] = args["same"] and isinstance(shortcut[0], nn.Identity)
    return args


def render_residual(args: dict[str, object]) -> str:
    """``residual(projection, name="shortcut", project_from=relu1, norm=false)``."""
    parts = [str(args["kind"])]
    if "name" in args:
        parts.append(f'name="{args["name"]}"')
    if "project_from" in args:
        parts.append(f"project_from={args['project_from']}")
    if "norm" in args:
        parts.append(f"norm={args['norm']}")
    if "step_names" in args:
        names = ", ".join(f'"{n}"' for n in args["step_names"])  # type: ignore[attr-defined]
        parts.append(f"step_names=[{names}]")
    return f"residual({', '.join(parts)})"


def _norm(last: nn.Module) -> str:
    """The projection's norm as ``residual(norm=...)`` says it: batchnorm, false or groupnorm(G)."""
    if plain_batchnorm(last) and (last.eps, last.momentum) == (1e-5, 0.1):  # type: ignore[union-attr]
        return "batchnorm"
    if isinstance(last, nn.GroupNorm) and last.eps == 1e-5 and last.affine:
        return f"groupnorm({last.num_groups})"
    return "false"


def shortcut_kind(module: nn.Module, attr: str, path: str) -> str:
    """identity, projection (1x1 conv [+ bn]), avgpool_projection (ResNet-D) or zero_pad (option A)."""
    if not attr or type(module.get_submodule(attr)) is nn.Identity:  # timm's nn.Identity() shortcut
        return "identity"
    shortcut = module.get_submodule(attr)
    members = [part for _, part in _parts(shortcut)]
    parts = [type(m) for m in members]
    if members and (plain_batchnorm(members[-1]) or isinstance(members[-1], nn.BatchNorm2d | nn.GroupNorm)):
        parts = parts[:-1]
    if parts == [nn.Conv2d] and _one_by_one(members[0]):
        return "projection"
    if not parts and _pads_channels(shortcut):
        return "zero_pad"
    pooled = len(parts) == 2 and parts[0] in (nn.AvgPool2d, nn.Identity)
    if pooled and parts[1] is nn.Conv2d and _one_by_one(members[1]):
        return "avgpool_projection"
    kind = f"{type(shortcut).__module__}.{type(shortcut).__qualname__}"
    message = f"shortcut `{path}.{attr}` ({kind}) is no kind the language has"
    raise refuse("E904", message, module, path, _HINT)


def _parts(shortcut: nn.Module) -> list[tuple[str, nn.Module]]:
    """The named steps of a shortcut: an nn.Sequential's members, or the children of a module
    that calls each once in order (timm's ConvNormAct: conv, bn); none for anything else."""
    if isinstance(shortcut, nn.Sequential):
        return list(shortcut.named_children())
    children = chain(shortcut)
    return children if children and all(is_leaf(m) for _, m in children) else []


def chain(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The children of a module that is not torch's and whose forward calls each once, in order
    (timm's ConvNormAct, RegStage); [] for any other module."""
    children = list(module.named_children())
    if not children or is_leaf(module) or isinstance(module, nn.Sequential):
        return []
    try:
        steps = trace(module, "").steps
    except ResdslError:
        return []
    return children if [(s.kind, s.target) for s in steps] == [("module", n) for n, _ in children] else []


def _one_by_one(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1 and conv.padding == (0, 0)


def _pads_channels(shortcut: nn.Module) -> bool:
    """Whether a module without state is option A: every ``s``-th position, zero channels appended
    (``pad_channels``); found by running it on a probe, since such modules are written many ways."""
    if shortcut.state_dict() or any(True for _ in shortcut.children()):
        return False
    probe = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = shortcut(probe)
    except Exception:
        return False
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] < 4 or not out.shape[2]:
        return False
    stride = 8 // out.shape[2]
    expected = torch.nn.functional.pad(probe[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, out.shape[1] - 4))
    return out.shape == expected.shape and torch.equal(out, expected)


def shortcut_order(module: nn.Module, steps: list[Step], path: str) -> None:
    """E911 where a residual's shortcut module is registered before a layer with state of the
    branch it is added to (torchvision's RegNet: ``self.proj`` before ``self.f``): a spec makes
    the shortcut where the residual stands, after its branch, so the state_dict's order differs."""
    order = list(module._modules)
    called: list[str] = []
    for step in steps:
        if step.kind == "residual" and step.target in order:
            later = [t for t in called if order.index(t) > order.index(step.target)]
            later = [t for t in later if module.get_submodule(t).state_dict()]
            if later:
                raise refuse(
                    "E911",
                    f"`{path + '.' if path else ''}{step.target}`, a shortcut, is registered before "
                    f"`{later[0]}`, a layer of the branch it is added to",
                    module,
                    path,
                    "a spec makes a residual's shortcut where the residual stands, after the branch's layers, "
                    "so its state_dict would list them in another order: register the shortcut last",
                )
        elif step.kind in ("module", "gate") and step.target.split(".")[0] in order:
            called.append(step.target.split(".")[0])
