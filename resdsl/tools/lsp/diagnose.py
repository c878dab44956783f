"""Diagnostics for the editor, and their fixes as code actions.

A document's diagnostics are what ``resdsl check`` reports for it, with the same codes, notes
and ranges. One found in another file (a library block instantiated wrongly, an error in an
imported file) is shown at the place in this document that leads there (the call that made
the block instance, or the import), with the original place as related information.
"""

from __future__ import annotations

from lsprotocol import types

from resdsl.diagnostics import Diagnostic
from resdsl.diagnostics.fixes import Fix, in_library
from resdsl.syntax import ast
from resdsl.syntax.loader import display_path, resolve_import
from resdsl.tools.lsp.workspace import Analysis, Workspace

SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def anchor(analysis: Analysis, d: Diagnostic) -> ast.Span:
    """Where in the analysed document ``d`` is shown."""
    if d.span.file == analysis.file:
        return d.span
    for related in d.related:  # innermost first: the call that made the failing instance
        if related.span.file == analysis.file and related.span.line:
            return related.span
    module = analysis.module
    if module is not None:
        for imp in module.imports:
            if d.span.file in _imported(analysis, imp):
                return imp.span
    return ast.Span(analysis.file, 0, 0, 0, 0)


def _imported(analysis: Analysis, imp: ast.Import) -> set[str]:
    """The files an import brings in, itself and everything it imports (display names)."""
    program = analysis.result.program
    first = resolve_import(imp, analysis.path)
    if program is None or first is None:
        return set()
    seen: set[str] = set()
    todo = [first]
    while todo:
        path = todo.pop()
        name = display_path(path)
        if name in seen:
            continue
        seen.add(name)
        module = program.modules.get(name)
        for inner in module.imports if module is not None else ():
            found = resolve_import(inner, path)
            if found is not None:
                todo.append(found)
    return seen


def to_lsp(ws: Workspace, analysis: Analysis, d: Diagnostic) -> types.Diagnostic:
    at = anchor(analysis, d)
    lines = [d.message]
    if at is not d.span and d.span.line:
        lines.append(f"at {d.span}")
    lines += list(d.notes)
    if d.help:
        lines.append(f"help: {d.help}")
    related = [types.DiagnosticRelatedInformation(ws.location(analysis, r.span), r.message) for r in d.related]
    if at is not d.span and d.span.line:
        related.insert(0, types.DiagnosticRelatedInformation(ws.location(analysis, d.span), "reported here"))
    return types.Diagnostic(
        range=ws.lines(analysis, analysis.file).range(at),
        message="\n".join(lines),
        severity=SEVERITY.get(d.severity, types.DiagnosticSeverity.Error),
        code=d.code,
        source="resdsl",
        related_information=[r for r in related if r.location.range.end.line or r.location.range.end.character] or None,
    )


def diagnostics(ws: Workspace, analysis: Analysis) -> list[types.Diagnostic]:
    return [to_lsp(ws, analysis, d) for d in analysis.result.diagnostics]


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and (
        b.start.line,
        b.start.character,
    ) <= (a.end.line, a.end.character)


def code_actions(ws: Workspace, analysis: Analysis, wanted: types.Range) -> list[types.CodeAction]:
    """A quick fix for each fix of each diagnostic shown in ``wanted``."""
    actions: list[types.CodeAction] = []
    for d in analysis.result.diagnostics:
        if not d.fixes:
            continue
        shown = to_lsp(ws, analysis, d)
        if not _overlaps(shown.range, wanted):
            continue
        for fix in d.fixes:
            edit = workspace_edit(ws, analysis, fix)
            if edit is not None:
                actions.append(
                    types.CodeAction(
                        title=fix.title,
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[shown],
                        edit=edit,
                        is_preferred=fix.safe and fix is d.fixes[0],
                    )
                )
    return actions


def workspace_edit(ws: Workspace, analysis: Analysis, fix: Fix) -> types.WorkspaceEdit | None:
    """The fix as LSP text edits; None when it would edit the shipped library."""
    if any(in_library(f) for f in fix.files):
        return None
    changes: dict[str, list[types.TextEdit]] = {}
    for e in fix.edits:
        lines = ws.lines(analysis, e.span.file)
        changes.setdefault(ws.uri(e.span.file), []).append(types.TextEdit(lines.range(e.span), e.text))
    return types.WorkspaceEdit(changes=changes)
