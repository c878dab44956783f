"""Realising a residual's shortcut from the two branch shapes: the checker's half of the
``residual`` op-table entry (its ``realise`` hook), which needs the network around the layer.

Whether a shortcut maps anything is decided by the block input against the main branch; when
it does, a ``project_from`` tap is what it maps (see :meth:`Network.shortcut_source`). The
stride is the main branch's own where it explains the shapes (``Network.path_stride``).
"""

from __future__ import annotations

from collections.abc import Iterable

from resdsl import ast
from resdsl.diagnostics import Related
from resdsl.fixes import Edit, Fix, in_library, span_text
from resdsl.ir import Layer, Network
from resdsl.ops import ShapeError, fmt_shape
from resdsl.shortcut import SHORTCUT_HELP, SHORTCUT_KINDS, realise_shortcut

# Kinds a failing addition can be repaired with, best first: option B, then option A.
REPAIRS = {
    "projection": "option B: a 1x1 conv and norm where the shape changes",
    "zero_pad": "option A: subsample and pad channels with zeros",
}


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
    layer.shortcut = shortcut
    layer.shape = main.shape
    layer.params = shortcut.params
    layer.macs = shortcut.macs(main.shape)


def _origin(layer: Layer) -> str:
    return f"{layer.name} at {layer.span}" if layer.op != "input" else "the network input"


def _from(source: Layer, residual: Layer) -> str:
    scope = residual.scope
    if scope is not None and source.id == scope.input:
        return ", the block input"
    return f", from {source.name}"


def kind_fixes(network: Network, layer: Layer, kinds: list[str]) -> list[Fix]:
    """Edits that give a residual another shortcut kind, where the kind is written: in the
    ``residual(...)`` call itself, as the block argument the caller passed (a stage's
    ``shortcut=``), or, when the block's default was used, as a new argument of the call
    that made the instance. Never an edit of the shipped library; the first kind is the one
    ``check --fix`` applies."""
    written = layer.exprs.get("shortcut")
    scope = layer.scope
    params = {p.name for p in scope.block.params} if scope is not None and scope.block is not None else set()
    edit: tuple[ast.Span, str] | None = None  # (span, "{kind}" template)
    if isinstance(written, ast.Name) and written.id in SHORTCUT_KINDS and written.id not in params:
        edit = (written.span, "{kind}")
    elif isinstance(written, ast.Name) and scope is not None and written.id in params:
        given = scope.arg_exprs.get(written.id)
        if isinstance(given, ast.Name) and given.id in SHORTCUT_KINDS:
            edit = (given.span, "{kind}")
        elif given is None:
            edit = _new_argument(network, scope.span, scope.arg_exprs.values(), written.id)
    if edit is None or in_library(edit[0].file):
        return []
    span, template = edit
    return [
        Fix(f"use shortcut={kind} ({REPAIRS[kind]})", (Edit(span, template.format(kind=kind)),), safe=i == 0)
        for i, kind in enumerate(kinds)
    ]


def _new_argument(
    network: Network, call: ast.Span, exprs: Iterable[ast.Expr], param: str
) -> tuple[ast.Span, str] | None:
    """An insertion of ``param={kind}`` before the closing parenthesis of ``call``."""
    text = span_text(network.sources.get(call.file), call)
    if text is None or not text.rstrip().endswith(")"):
        return None  # a block named without parentheses: nothing certain to edit
    inside = [e for e in exprs if e.span.file == call.file and _contains(call, e.span)]
    at = ast.Span(call.file, call.end_line, call.end_column - 1, call.end_line, call.end_column - 1)
    return at, (", " if inside else "") + f"{param}={{kind}}"


def _contains(outer: ast.Span, inner: ast.Span) -> bool:
    return (outer.line, outer.column) <= (inner.line, inner.column) and (inner.end_line, inner.end_column) <= (
        outer.end_line,
        outer.end_column,
    )
