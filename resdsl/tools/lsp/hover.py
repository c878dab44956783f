"""Hover: on a layer line, what each instance of it computes (output shape, parameters,
MACs); on an op, block, network or parameter name its signature, defaults and doc comment;
on a shortcut kind what it does."""

from __future__ import annotations

from lsprotocol import types

from resdsl.diagnostics.fixes import span_text
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, fmt_shape
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.semantics.values import INSTANCE_DOCS, STAGE_PARAMS, show_value
from resdsl.syntax import ast
from resdsl.syntax.ast import BUILTIN_FORMS
from resdsl.tools.lsp.computed import value_rows
from resdsl.tools.lsp.convert import contains
from resdsl.tools.lsp.locate import Place, body_names, params_of, place_at
from resdsl.tools.lsp.signatures import (
    definition_doc,
    definition_signature,
    function_doc,
    function_signature,
    markdown,
    op_doc,
    op_param,
    op_signature,
    param_text,
    shortcut_doc,
)
from resdsl.tools.lsp.workspace import Analysis, Workspace

MAX_INSTANCES = 12  # instance lines shown before "... and N more"


def hover(ws: Workspace, analysis: Analysis, position: types.Position) -> types.Hover | None:
    source = ws.parsed.get(analysis.uri)  # positions from the latest text that parsed
    module = source.module if source is not None else None
    if source is None or module is None:
        return None
    line, column = ws.lines(source, source.file).column(position)
    place = place_at(module, line, column)
    sources = source.result.sources
    definitions = source.result.program.definitions(source.file) if source.result.program else {}
    parts: list[str] = []
    name = _name_info(place, definitions, sources)
    function = _function_under(place)
    if function is not None and source.result.program is not None:  # what the call computes here
        parts.append(markdown(function_signature(function.func), function_doc(function.func)))
        # inside a comprehension the call reads its loop variables: the whole comprehension's value
        shown: ast.Expr = next((n for n in place.chain if isinstance(n, ast.ListComp)), function)
        label = span_text(sources.get(shown.span.file), shown.span) or f"{function.func}(...)"
        values = value_rows(ws, analysis.uri, source.file, place, shown, source.result.program, label)
        if values:
            parts.append(values)
    if name is not None:
        parts.append(name)
        param = _param_under(place)
        values = param_values(ws, analysis.uri, source.file, place.definition, param) if param else None
        if values:
            parts.append(values)
    sizes = input_info(ws, analysis.uri, source.file, place)
    if sizes:
        parts.append(sizes)
    statement = place.statement
    on_layer = statement is not None and (
        name is None
        or (isinstance(statement, ast.Assign) and place.innermost is statement)
        or place.call_name() is statement.value
    )
    if statement is not None and on_layer:
        shapes = layer_info(ws, analysis.uri, source.file, statement)
        if shapes:
            parts.append(shapes)
    if not parts:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, "\n\n---\n\n".join(parts)))


def _name_info(place: Place, definitions: dict[str, ast.Definition], sources: dict[str, str]) -> str | None:
    """The description of the identifier under the cursor, if it names something."""
    node = place.innermost
    if isinstance(node, (ast.BlockDef, ast.NetworkDef, ast.NetworkAlias)):
        return markdown(definition_signature(node, sources), definition_doc(node, sources))
    called = place.call_name()
    if called is not None:
        return _callee(called.func, definitions, sources)
    arg = place.argument_name()
    if arg is not None:
        return _argument(arg[0], arg[1], definitions, sources)
    if isinstance(node, ast.Param):
        return markdown(
            param_text(node, sources), f"parameter of `{place.definition.name}`" if place.definition else ""
        )
    if isinstance(node, ast.Name):
        params = params_of(place.definition)
        if node.id in params:
            owner = place.definition.name if place.definition else ""
            return markdown(param_text(params[node.id], sources), f"parameter of `{owner}`")
        if node.id in SHORTCUT_KINDS and not _layer_position(place, node):
            return shortcut_doc(node.id)
        if node.id in OPS or node.id in definitions:
            return _callee(node.id, definitions, sources)
        if node.id in INSTANCE_DOCS and in_stage_block(place) and node.id not in body_names(place.definition):
            return markdown(
                f"{node.id}: int", f"instance value: {INSTANCE_DOCS[node.id]}, bound for each block of the stage"
            )
    return None


def _function_under(place: Place) -> ast.FuncCall | None:
    """The builtin call whose function name is under the cursor."""
    node = place.innermost
    if isinstance(node, ast.FuncCall) and contains(node.func_span, place.line, place.column):
        return node
    return None


def _layer_position(place: Place, node: ast.Name) -> bool:
    """Whether ``node`` is a statement's layer (``identity``, ``x = identity``, or a side of a
    conditional one): there a bare ``identity`` is the op, elsewhere the shortcut kind."""
    statement = place.statement
    if not isinstance(statement, (ast.Assign, ast.LayerStmt)):
        return False
    value = statement.value
    while isinstance(value, ast.Cond) and value is not node:
        value = value.then if _within(node, value.then) else value.orelse
    return value is node


def _within(node: ast.Name, expr: ast.Expr) -> bool:
    outer, inner = expr.span, node.span
    return (outer.line, outer.column) <= (inner.line, inner.column) and (inner.end_line, inner.end_column) <= (
        outer.end_line,
        outer.end_column,
    )


def in_stage_block(place: Place) -> bool:
    """Whether the position is in the block argument of a ``stage(...)``, where the instance
    values (index, count, net_index, net_count, in_channels) are bound."""
    for outer, inner in zip(place.chain, place.chain[1:], strict=False):
        if isinstance(outer, ast.Call) and outer.func == "stage" and isinstance(inner, ast.Arg):
            position = outer.args.index(inner) if inner in outer.args else -1
            if inner.name == "block" or (inner.name is None and position == 0):
                return True
    return False


def _param_under(place: Place) -> str | None:
    """The name of the enclosing definition's parameter under the cursor, if any."""
    node = place.innermost
    if isinstance(node, ast.Param):
        return node.name
    if isinstance(node, ast.Name) and node.id in params_of(place.definition):
        return node.id
    return None


def param_values(ws: Workspace, uri: str, file: str, definition: ast.Definition | None, name: str) -> str | None:
    """What a parameter is in each instance of its block (or each network): ``128: layer2.0,
    layer2.1, ...``, one line per distinct value."""
    if definition is None:
        return None
    found: dict[str, list[str]] = {}
    for net, _spec in ws.networks_seeing(uri, file):
        if isinstance(definition, ast.BlockDef):
            for scope in net.root.scopes():
                block = scope.block
                if scope.kind == "block" and block is not None and block.name_span == definition.name_span:
                    if name in scope.args:
                        found.setdefault(_shown(scope.args[name]), []).append(scope.path)
        elif net.definition is not None and net.definition.name_span == definition.name_span and name in net.params:
            found.setdefault(_shown(net.params[name]), []).append(net.name)
    if not found:
        return None
    rows = []
    for value, places in list(found.items())[:MAX_INSTANCES]:
        shown = ", ".join(places[:4]) + (f", ... ({len(places)} in all)" if len(places) > 4 else "")
        rows.append(f"{name} = {value}: {shown}")
    return "```\n" + "\n".join(rows) + "\n```"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return show_value(value)


def _callee(func: str, definitions: dict[str, ast.Definition], sources: dict[str, str]) -> str | None:
    if func in OPS or func in BUILTIN_FORMS:
        return markdown(op_signature(func), op_doc(func))
    target = definitions.get(func)
    if target is not None:
        return markdown(definition_signature(target, sources), definition_doc(target, sources))
    return None


def _argument(
    call: ast.Call, arg: ast.Arg, definitions: dict[str, ast.Definition], sources: dict[str, str]
) -> str | None:
    name = arg.name
    op = OPS.get(call.func)
    params = STAGE_PARAMS if call.func == "stage" else (op.params if op is not None else ())
    for p in params:
        if name == p.name or name in p.aliases:
            return markdown(op_param(p), f"parameter of `{call.func}`")
    target = definitions.get(call.func)
    found = params_of(target).get(name or "")
    if found is not None and target is not None:
        return markdown(param_text(found, sources), f"parameter of `{target.name}`")
    return None


def input_info(ws: Workspace, uri: str, file: str, place: Place) -> str | None:
    """On an ``input`` statement, the shape each network it belongs to is checked at, its sizes
    evaluated with that network's parameters: ``efficientnet_b1: 3 x 240 x 240``."""
    stmt = next((n for n in place.chain if isinstance(n, ast.InputStmt)), None)
    definition = place.definition
    if stmt is None or definition is None:
        return None
    rows = [
        f"{net.name}: input {fmt_shape(net.input_shape)}"
        for net, _spec in ws.networks_seeing(uri, file)
        if net.definition is not None and net.definition.name_span == definition.name_span
    ]
    if not rows:
        return None
    shown = rows[:MAX_INSTANCES] + ([f"... and {len(rows) - MAX_INSTANCES} more"] if len(rows) > MAX_INSTANCES else [])
    return "```\n" + "\n".join(dict.fromkeys(shown)) + "\n```"


# -- what a layer line computes -------------------------------------------------------------


def layer_info(ws: Workspace, uri: str, file: str, statement: ast.Assign | ast.LayerStmt) -> str | None:
    """One line per place the statement is instantiated: ``layer2.0: 128 x 28 x 28``."""
    span = statement.value.span
    found: list[tuple[str, str, int, int, str]] = []
    nets = ws.networks_seeing(uri, file)
    several = len({id(n) for n, _ in nets}) > 1
    for net, _spec in nets:
        prefix = f"{net.name} " if several else ""
        found += [(f"{prefix}{label}:", *rest) for label, *rest in instances(net, span)]  # type: ignore[misc]
    if not found:
        return None
    width = [max(len(row[0]) for row in found), max(len(row[1]) for row in found)]
    digits = [max(len(f"{row[i]:,}") for row in found) for i in (2, 3)]
    rows = [
        f"{label:<{width[0]}} {shape:<{width[1]}}   params {params:>{digits[0]},}   MACs {macs:>{digits[1]},}{extra}"
        for label, shape, params, macs, extra in found
    ]
    shown = rows[:MAX_INSTANCES]
    if len(rows) > MAX_INSTANCES:
        shown.append(f"... and {len(rows) - MAX_INSTANCES} more")
    return "```\n" + "\n".join(shown) + "\n```"


def instances(net: Network, span: ast.Span) -> list[tuple[str, str, int, int, str]]:
    """(module path, output shape, params, MACs, note) for each scope or layer made by ``span``."""
    out: list[tuple[str, str, int, int, str]] = []
    for scope in net.root.scopes():
        if scope.kind != "network" and scope.span == span and scope.output:
            out.append(_scope_row(net, scope))
    if out:
        return out
    for layer in net.layers():
        if layer.span == span and layer.op != "input":
            out.append(_layer_row(layer))
    return out


def _scope_row(net: Network, scope: Scope) -> tuple[str, str, int, int, str]:
    layers = list(scope.layers())
    shape = fmt_shape(net.layer(scope.output).shape)
    extra = f"   ({scope.repeat} blocks)" if scope.kind == "stage" else ""
    return scope.path, shape, sum(x.params for x in layers), sum(x.macs for x in layers), extra


def _layer_row(layer: Layer) -> tuple[str, str, int, int, str]:
    extra = ""
    if layer.shortcut is not None:
        s = layer.shortcut
        extra = f"   shortcut {s.kind}" + (
            f" (stride {s.stride}, {s.in_channels} -> {s.out_channels} channels)" if s.kind != "identity" else ""
        )
    return layer.path or layer.name, fmt_shape(layer.shape), layer.params, layer.macs, extra
