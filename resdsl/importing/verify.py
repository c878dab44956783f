"""The spec is built and compared with the model before anyone sees it: state_dict keys, shapes
and order, then float64 outputs in eval and train mode on one random input. Where the outputs
differ, every module's output is compared (forward hooks on both models, matched by module
path) and the first that differs is named, with both shapes or values."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from resdsl.diagnostics import ResdslError, error

TOLERANCE = 1e-9  # float64; the two compute the same ops, so only summation order may differ


def verify(model: nn.Module, source: str, shape: tuple[int, int, int]) -> None:
    """Raises E905 naming the first key or layer that differs; returns when the spec is exact."""
    built = _build(source, shape)
    _same_state(model.state_dict(), built.state_dict())
    original = copy.deepcopy(model).double()
    built.load_state_dict(original.state_dict())
    built = built.double()
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode in ("eval", "train"):
        original.train(mode == "train")
        built.train(mode == "train")
        theirs, ours = _outputs(original, x), _outputs(built, x)
        if not _equal(theirs[""], ours[""]):
            _fail(f"outputs differ in {mode} mode; " + _first_difference(theirs, ours))


def input_size(model: nn.Module) -> tuple[int, int, int]:
    """The size a model says it takes: timm's ``pretrained_cfg``/``default_cfg`` ``input_size``, or
    the ``INPUT_SIZE`` of its class's module (resdsl's generated modules); else 3 x 224 x 224."""
    import sys

    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict) and _is_shape(cfg.get("input_size")):
            return tuple(cfg["input_size"])  # type: ignore[return-value]
    size = getattr(sys.modules.get(type(model).__module__), "INPUT_SIZE", None)
    return tuple(size) if _is_shape(size) else (3, 224, 224)  # type: ignore[return-value,arg-type]


def _is_shape(value: object) -> bool:
    return isinstance(value, tuple | list) and len(value) == 3 and all(isinstance(v, int) and v > 0 for v in value)


def _build(source: str, shape: tuple[int, int, int]) -> nn.Module:
    """The spec's model; a spec that does not check is the importer's mistake (E905)."""
    from resdsl.api import build_model

    try:
        return build_model(source, input_shape=shape)
    except ResdslError as exc:
        first = exc.diagnostics[0]
        _fail(f"the written spec does not check: {first.code}: {first.message}")
        raise  # unreachable: _fail raises


def _same_state(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> None:
    for (k1, v1), (k2, v2) in zip(theirs.items(), ours.items(), strict=False):
        if k1 != k2 or v1.shape != v2.shape:
            _fail(f"state_dict differs at `{k1}` {tuple(v1.shape)}: the spec has `{k2}` {tuple(v2.shape)}")
    if len(theirs) != len(ours):
        longer = theirs if len(theirs) > len(ours) else ours
        extra = list(longer)[min(len(theirs), len(ours))]
        _fail(f"state_dict has {len(theirs)} entries, the spec's {len(ours)} (first unmatched: `{extra}`)")


def _outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every module's output (a copy: later in-place ops change the tensor), in the order the
    modules finish; the model's own under ""."""
    found: dict[str, torch.Tensor] = {}
    with _hooks(model, found), torch.no_grad():
        torch.manual_seed(0)
        model(x)
    return found


@contextmanager
def _hooks(model: nn.Module, found: dict[str, torch.Tensor]) -> Iterator[None]:
    def keep(path: str):  # type: ignore[no-untyped-def]
        def hook(_module: nn.Module, _args: object, output: object) -> None:
            if isinstance(output, torch.Tensor) and path not in found:
                found[path] = output.detach().clone()

        return hook

    handles = [m.register_forward_hook(keep(path)) for path, m in model.named_modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def _first_difference(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> str:
    """The first module (in the order the model runs them) whose output the spec's module of the
    same path does not reproduce: its path, and both shapes or the values where they differ most."""
    for path, a in theirs.items():
        b = ours.get(path)
        if b is None or _equal(a, b):
            continue
        name = f"`{path or '(the model)'}`"
        if a.shape != b.shape:
            return f"first at {name}: the model's is {_shape(a)}, the spec's {_shape(b)}"
        where = int((a - b).abs().argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(where), a.shape))
        return (
            f"first at {name} ({_shape(a)}): at {index} the model's is {a.flatten()[where].item():.12g}, "
            f"the spec's {b.flatten()[where].item():.12g}"
        )
    return "no module's output differs on its own"


def _shape(t: torch.Tensor) -> str:
    return " x ".join(str(d) for d in t.shape)


def _fail(message: str) -> None:
    raise ResdslError(
        error(
            "E905",
            "the imported spec does not rebuild the model: " + message,
            help="nothing was written; the model uses a form the importer misreads",
        )
    )
