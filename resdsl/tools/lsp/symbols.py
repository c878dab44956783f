"""Document symbols for the editor's outline: networks, blocks, and the stages in them."""

from __future__ import annotations

from lsprotocol import types

from resdsl.syntax import ast
from resdsl.tools.lsp.convert import Lines


def symbols(module: ast.Module, lines: Lines) -> list[types.DocumentSymbol]:
    out: list[types.DocumentSymbol] = []
    for d in module.definitions:
        if isinstance(d, ast.BlockDef):
            kind, detail = types.SymbolKind.Class, f"block ({', '.join(p.name for p in d.params)})"
        elif isinstance(d, ast.NetworkDef):
            kind, detail = types.SymbolKind.Module, f"network ({', '.join(p.name for p in d.params)})"
        else:
            kind, detail = types.SymbolKind.Module, f"network = {d.target.func}(...)"
        children = [
            types.DocumentSymbol(
                name=stmt.name,
                kind=types.SymbolKind.Array,
                range=lines.range(stmt.span),
                selection_range=lines.range(stmt.name_span),
                detail=f"stage of {_stage_block(stmt.value)}",
            )
            for stmt in getattr(d, "body", ())
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) and stmt.value.func == "stage"
        ]
        out.append(
            types.DocumentSymbol(
                name=d.name,
                kind=kind,
                range=lines.range(d.span),
                selection_range=lines.range(d.name_span),
                detail=detail,
                children=children or None,
            )
        )
    return out


def _stage_block(call: ast.Call) -> str:
    first = call.args[0].value if call.args else None
    if isinstance(first, ast.Call):
        return first.func
    return first.id if isinstance(first, ast.Name) else "?"
