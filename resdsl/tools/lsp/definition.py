"""Go to definition: blocks and networks (across files, into the shipped library), imports,
parameters, values and layers (``project_from`` targets) of the enclosing definition."""

from __future__ import annotations

from lsprotocol import types

from resdsl.syntax import ast
from resdsl.syntax.loader import resolve_import
from resdsl.tools.lsp.convert import path_to_uri
from resdsl.tools.lsp.locate import Place, body_names, params_of, place_at
from resdsl.tools.lsp.workspace import Analysis, Workspace


def definition(ws: Workspace, analysis: Analysis, position: types.Position) -> types.Location | None:
    source = ws.parsed.get(analysis.uri)
    module = source.module if source is not None else None
    if source is None or module is None:
        return None
    line, column = ws.lines(source, source.file).column(position)
    place = place_at(module, line, column)
    span = target(place, source)
    if isinstance(span, types.Location):
        return span
    return ws.location(source, span) if span is not None else None


def target(place: Place, analysis: Analysis) -> ast.Span | types.Location | None:
    """Where the thing under the cursor is defined."""
    program = analysis.result.program
    definitions = program.definitions(analysis.file) if program is not None else {}
    node = place.innermost
    if isinstance(node, ast.Import):
        found = resolve_import(node, analysis.path)
        if found is None:
            return None
        return types.Location(path_to_uri(found), types.Range(types.Position(0, 0), types.Position(0, 0)))
    called = place.call_name()
    if called is not None:
        found_def = definitions.get(called.func)
        return found_def.name_span if found_def is not None else None
    arg = place.argument_name()
    if arg is not None:
        callee = definitions.get(arg[0].func)
        param = params_of(callee).get(arg[1].name or "")
        return name_only(param.span, param.name) if param is not None else None
    if isinstance(node, ast.Name):
        return _name(node.id, place, definitions)
    return None


def _name(name: str, place: Place, definitions: dict[str, ast.Definition]) -> ast.Span | None:
    """A name used as a value: a parameter, then a value or layer of the same body (what
    ``project_from=`` names), then a block or network."""
    param = params_of(place.definition).get(name)
    if param is not None:
        return name_only(param.span, name)
    assigned = body_names(place.definition).get(name)
    if assigned is not None:
        return assigned.name_span
    found = definitions.get(name)
    return found.name_span if found is not None else None


def name_only(span: ast.Span, name: str) -> ast.Span:
    """The part of a ``name = default`` span that is the name."""
    return ast.Span(span.file, span.line, span.column, span.line, span.column + len(name))
