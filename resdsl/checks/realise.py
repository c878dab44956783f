"""Realising a residual's shortcut from the two branch shapes: the checker's half of the
``residual`` op-table entry (a composite op: see :data:`REALISERS`), which needs the network around the layer.

Whether a shortcut maps anything is decided by the block input against the main branch; when
it does, a ``project_from`` tap is what it maps (see :meth:`Network.shortcut_source`). The
stride is the main branch's own where it explains the shapes (``Network.path_stride``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from resdsl.diagnostics import Related
from resdsl.ir import Layer, Network
from resdsl.ir.repairs import REPAIRS, kind_fixes
from resdsl.ops import ShapeError, fmt_shape
from resdsl.ops.shortcut import SHORTCUT_HELP, Shortcut, realise_shortcut


def realise_residual(network: Network, layer: Layer, inputs: list[Layer]) -> None:
    """Fill ``layer.shortcut``, shape, parameters and MACs, or raise a worded ShapeError."""
    main, branch = inputs[0], inputs[1]
    kind = str(layer.attrs["shortcut"])
    assert main.shape is not None and branch.shape is not None
    changes = branch.shape != main.shape
    source = inputs[2] if len(inputs) > 2 and kind != "identity" and (changes or kind == "projection_all") else branch
    assert source.shape is not None
    where = layer.scope.path if layer.scope is not None and layer.scope.path else "the network"
    stride = network.path_stride(source.id, main.id)
    norm = layer.attrs.get("norm", True)
    try:
        shortcut = realise_shortcut(kind, main.shape, source.shape, norm, stride, changes=changes)
    except ShapeError as exc:
        if exc.code == "E301":
            notes = [
                f"main branch  {fmt_shape(main.shape):<14} ({_origin(main)})",
                f"shortcut     {fmt_shape(source.shape):<14} ({kind}{_from(source, layer)})",
            ]
            at_input = layer.scope is not None and source.id == layer.scope.input
            shortcut_at = layer.scope.span if at_input and layer.scope is not None else source.span
            related = [
                Related(main.span, f"main branch: {fmt_shape(main.shape)}"),
                Related(shortcut_at, f"shortcut input: {fmt_shape(source.shape)}"),
            ]
            works = []
            for repair in REPAIRS:
                try:
                    realise_shortcut(repair, main.shape, source.shape, norm, stride, changes=changes)
                except ShapeError:
                    continue
                works.append(repair)
            raise ShapeError(
                "E301",
                f"residual addition in {where}: shapes differ",
                notes,
                exc.help or SHORTCUT_HELP,
                main.shape,
                fixes=kind_fixes(network, layer, works),
                related=[r for r in related if r.span.line],
            ) from None
        raise ShapeError(
            exc.code, f"residual addition in {where}: {exc.message}", exc.notes, exc.help, main.shape
        ) from None
    shortcut = _named(shortcut, layer.attrs.get("step_names"), where)
    layer.shortcut = shortcut
    layer.shape = main.shape
    layer.params = shortcut.params
    layer.macs = shortcut.macs


def _named(shortcut: Shortcut, names: list[str] | None, where: str) -> Shortcut:
    """``shortcut`` with its steps named by ``step_names=`` (E213 where the count differs from
    the steps the realised shortcut has, or a name cannot name a module)."""
    if not names:
        return shortcut
    steps = shortcut.steps()
    if steps and len(names) != len(steps):
        parts = ", ".join(step.op for step in steps)
        raise ShapeError(
            "E213",
            f"residual in {where}: step_names gives {len(names)} names, its {shortcut.kind} shortcut has "
            f"{len(steps)} parts ({parts})",
            help=f"name each part: step_names=[{', '.join(repr(step.op) for step in steps)}]".replace("'", '"'),
        )
    bad = [name for name in names if not name.isidentifier() or len(set(names)) != len(names)]
    if bad:
        raise ShapeError("E213", f"residual in {where}: step_names must be distinct names, got {names}")
    return replace(shortcut, step_names=tuple(names))


def _origin(layer: Layer) -> str:
    return f"{layer.name} at {layer.span}" if layer.op != "input" else "the network input"


def _from(source: Layer, residual: Layer) -> str:
    scope = residual.scope
    if scope is not None and source.id == scope.input:
        return ", the block input"
    return f", from {source.name}"


Realiser = Callable[[Network, Layer, list[Layer]], None]

# The checker's half of each composite op (``OpDef.composite``), keyed by op name; a test
# holds that every composite op of the table has one.
REALISERS: dict[str, Realiser] = {"residual": realise_residual}
