"""Where mechanical fixes come from: the edits that repair a diagnostic, worked out by the
stage that detects it (shapes, realise, elaborate, evaluate call these with what they know).

Each producer finds where the thing to change is written, reads the text there to be sure
the edit is exact, and returns :class:`~resdsl.diagnostics.fixes.Fix` values (none when unsure, or when
the edit would fall in the shipped library). ``safe`` fixes are certain and ``check --fix``
applies them; the others change what the spec computes, and only an editor offers them.
"""

from __future__ import annotations

from collections.abc import Iterable

from resdsl.diagnostics.fixes import Edit, Fix, add_argument, delete_argument, in_library, span_text
from resdsl.ir import Layer, Network, Scope
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.syntax import ast

# Kinds a failing addition can be repaired with, best first: option B, then option A.
REPAIRS = {
    "projection": "option B: a 1x1 conv and norm where the shape changes",
    "zero_pad": "option A: subsample and pad channels with zeros",
}


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
        elif isinstance(given, ast.Name):
            edit = _network_argument(network, scope, given.id)
        elif given is None:
            added = add_argument(network.sources.get(scope.span.file), scope.span, f"{written.id}={{kind}}")
            edit = (added.span, added.text) if added is not None else None
    if edit is None or in_library(edit[0].file):
        return []
    span, template = edit
    return [
        Fix(f"use shortcut={kind} ({REPAIRS[kind]})", (Edit(span, template.format(kind=kind)),), safe=i == 0)
        for i, kind in enumerate(kinds)
    ]


def _network_argument(network: Network, instance: Scope, name: str) -> tuple[ast.Span, str] | None:
    """Where network parameter ``name`` gets the kind literal the block instance got, as an
    edit (span, "{kind}" template): the alias's argument (``network b = a(shortcut=identity)``),
    a new argument of the alias when it passes none, or the network's own default. Only when
    the instance is made in the network's own body (directly or by a stage), the alias names
    the network directly, and no override (``--set``) gives the value."""
    definition = network.definition
    if definition is None or name in network.overridden:  # --set gives it: no edit of the file helps
        return None
    param = next((i for i, p in enumerate(definition.params) if p.name == name), None)
    if param is None:
        return None
    parents = [s for s in network.root.scopes() if any(item is instance for item in s.items)]
    if not parents or not (parents[0] is network.root or any(i is parents[0] for i in network.root.items)):
        return None
    default = definition.params[param].default
    alias = network.alias
    if alias is None:
        written = default
    elif alias.target.func == definition.name:
        args = alias.target.args
        given = next((a for i, a in enumerate(args) if a.name == name or (a.name is None and i == param)), None)
        if given is None and isinstance(default, ast.Name) and default.id in SHORTCUT_KINDS:
            added = add_argument(network.sources.get(alias.target.span.file), alias.target.span, f"{name}={{kind}}")
            return (added.span, added.text) if added is not None else None
        written = given.value if given is not None else None
    else:
        return None
    if not isinstance(written, ast.Name) or written.id not in SHORTCUT_KINDS:
        return None
    return written.span, "{kind}"


def drop_bias(network: Network, layer: Layer) -> list[Fix]:
    """Delete ``, bias=true`` from the conv's call, when it is written there as a literal
    after another argument (a bias passed through a parameter is the caller's choice)."""
    bias = layer.exprs.get("bias")
    if not isinstance(bias, ast.BoolLit) or bias.span.file != layer.span.file or in_library(layer.span.file):
        return []
    before = [
        e.span
        for e in layer.exprs.values()
        if e.span.file == layer.span.file
        and (layer.span.line, layer.span.column) <= (e.span.line, e.span.column)
        and (e.span.end_line, e.span.end_column) < (bias.span.line, bias.span.column)
    ]
    if not before:
        return []
    last = max(before, key=lambda s: (s.end_line, s.end_column))
    span = ast.Span(layer.span.file, last.end_line, last.end_column, bias.span.end_line, bias.span.end_column)
    text = span_text(network.sources.get(span.file), span)
    if text is None or "#" in text or text.replace(" ", "").replace("\n", "") != ",bias=true":
        return []  # a comment or anything unexpected in between: leave it to the author
    return [Fix("drop bias=true (batchnorm cancels it)", (Edit(span, ""),))]


def floor_division(sources: dict[str, str], expr: ast.BinOp) -> tuple[Fix, ...]:
    """``a / b`` -> ``a // b`` for an inexact whole-number division (E208): rounds down, so
    the value changes; offered, never applied by ``check --fix``."""
    between = ast.Span(
        expr.span.file, expr.left.span.end_line, expr.left.span.end_column, expr.right.span.line, expr.right.span.column
    )
    text = span_text(sources.get(expr.span.file), between)
    if text is None or text.strip() != "/" or in_library(expr.span.file):
        return ()
    return (Fix("use // to round down", (Edit(between, text.replace("/", "//")),), safe=False),)


def move_stride(
    sources: dict[str, str], stage: ast.Span, stage_args: Iterable[str], block: dict[str, ast.Span], value: int
) -> tuple[Fix, ...]:
    """W404: the block's ``stride=`` moved to its stage (which strides only the first block).
    It changes the network's shapes, so it is offered, never applied by ``check --fix``."""
    if "stride" in stage_args or in_library(stage.file):
        return ()
    text = sources.get(stage.file)
    deleted = delete_argument(text, block["stride"], [s for k, s in block.items() if k != "stride"])
    added = add_argument(text, stage, f"stride={value}")
    if deleted is None or added is None:
        return ()
    return (Fix(f"move stride={value} to the stage", (deleted, added), safe=False),)


def import_line(sources: dict[str, str], module: ast.Module | None, path: str, safe: bool) -> tuple[Fix, ...]:
    """E202/E201 for a name the shipped library defines: ``import "PATH"`` added to the file that
    uses it, after its last import, or else above its first definition and that definition's
    comment. ``safe`` when the import is certain (one shipped file defines the name and nothing
    it brings clashes with the file's own names)."""
    if module is None or in_library(module.path) or module.path not in sources:
        return ()
    text = sources[module.path].lstrip("\ufeff")
    lines = text.split("\n")
    if module.imports:
        at, added = module.imports[-1].span.end_line + 1, f'import "{path}"\n'
    else:
        first = min((d.span.line for d in module.definitions), default=len(lines) + 1)
        at = first
        while at > 1 and lines[at - 2].lstrip().startswith("#"):  # the definition's doc comment
            at -= 1
        added = f'import "{path}"\n\n'
    if at > len(lines):  # past the last line: the text has no final newline
        at, added = len(lines), ("\n" if lines[-1] else "") + added.rstrip("\n") + "\n"
        span = ast.Span(module.path, at, len(lines[-1]) + 1, at, len(lines[-1]) + 1)
    else:
        span = ast.Span(module.path, at, 1, at, 1)
    return (Fix(f'add import "{path}"', (Edit(span, added),), safe=safe),)
