"""What is under the cursor: the chain of syntax nodes around a position, and the names a
place can see (parameters, values and layers of the enclosing definition)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from resdsl.syntax import ast
from resdsl.tools.lsp.convert import contains


def children(node: object) -> Iterator[object]:
    """The syntax nodes directly inside ``node`` (every AST node is a dataclass with a span)."""
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            yield from (v for v in value if hasattr(v, "span"))
        elif dataclasses.is_dataclass(value) and hasattr(value, "span") and not isinstance(value, ast.Span):
            yield value


def chain_at(module: ast.Module, line: int, column: int) -> list[object]:
    """The nodes containing (line, column), outermost first."""
    found: list[object] = []
    nodes: list[object] = [*module.imports, *module.definitions]
    while True:
        inner = next((n for n in nodes if contains(n.span, line, column)), None)  # type: ignore[attr-defined]
        if inner is None:
            return found
        found.append(inner)
        nodes = list(children(inner))


@dataclass
class Place:
    """A position in a module, with what a hover or a jump needs to know about it."""

    chain: list[object]
    line: int
    column: int

    @property
    def definition(self) -> ast.Definition | None:
        first = self.chain[0] if self.chain else None
        return first if isinstance(first, (ast.BlockDef, ast.NetworkDef, ast.NetworkAlias)) else None

    @property
    def innermost(self) -> object | None:
        return self.chain[-1] if self.chain else None

    @property
    def statement(self) -> ast.Assign | ast.LayerStmt | None:
        """The body statement around the position."""
        for node in self.chain:
            if isinstance(node, (ast.Assign, ast.LayerStmt)):
                return node
        return None

    def call_name(self) -> ast.Call | None:
        """The call whose function name is under the cursor."""
        node = self.innermost
        if isinstance(node, ast.Call) and contains(node.func_span, self.line, self.column):
            return node
        return None

    def argument_name(self) -> tuple[ast.Call, ast.Arg] | None:
        """``(call, arg)`` when the cursor is on the ``name`` of ``name=value``."""
        if len(self.chain) >= 2 and isinstance(self.chain[-1], ast.Arg) and isinstance(self.chain[-2], ast.Call):
            arg = self.chain[-1]
            if arg.name is not None and not contains(arg.value.span, self.line, self.column):
                return self.chain[-2], arg
        return None

    def enclosing_call(self) -> ast.Call | None:
        """The innermost call around the cursor (the one whose argument it is in)."""
        for node in reversed(self.chain):
            if isinstance(node, ast.Call):
                return node
        return None


def place_at(module: ast.Module, line: int, column: int) -> Place:
    return Place(chain_at(module, line, column), line, column)


def body_names(definition: ast.Definition | None) -> dict[str, ast.Assign]:
    """The layers and values a definition's body names (the first assignment of each)."""
    names: dict[str, ast.Assign] = {}
    if isinstance(definition, (ast.BlockDef, ast.NetworkDef)):
        for stmt in definition.body:
            if isinstance(stmt, ast.Assign):
                names.setdefault(stmt.name, stmt)
    return names


def params_of(definition: ast.Definition | None) -> dict[str, ast.Param]:
    if isinstance(definition, (ast.BlockDef, ast.NetworkDef)):
        return {p.name: p for p in definition.params}
    return {}


def definition_at_line(module: ast.Module, line: int) -> ast.Definition | None:
    """The definition whose text spans ``line`` (for completion in text that does not parse)."""
    for definition in module.definitions:
        if definition.span.line <= line <= definition.span.end_line:
            return definition
    return None


def doc_comment(text: str | None, line: int) -> str:
    """The comment lines right above ``line`` (1-based): a definition's documentation."""
    if not text:
        return ""
    lines = text.lstrip("\ufeff").split("\n")
    out: list[str] = []
    i = line - 2
    while 0 <= i < len(lines) and lines[i].lstrip().startswith("#"):
        out.append(lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(reversed(out))
