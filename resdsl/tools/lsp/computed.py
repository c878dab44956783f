"""What a value expression computes where it stands: ``make_divisible(c * 0.75) = 24``.

A builtin call in a block is evaluated once per instance of the block in the checked networks
(with that instance's arguments), in a network with the network's parameters; the values the
body binds before the statement are evaluated first, in order, as elaboration does. A call
that reads nothing but constants has one value wherever it stands. The evaluator is the
language's own (:class:`~resdsl.semantics.evaluate.Evaluator`), its diagnostics dropped: the
check reported them already.
"""

from __future__ import annotations

from typing import Any

from resdsl.diagnostics import Collector
from resdsl.semantics.evaluate import Evaluator
from resdsl.semantics.values import POISON, Failed, show_value
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.tools.lsp.locate import Place
from resdsl.tools.lsp.workspace import Workspace

MAX_ROWS = 12  # distinct values shown


def value_rows(
    ws: Workspace, uri: str, file: str, place: Place, expr: ast.Expr, program: Program, label: str
) -> str | None:
    """``label = value`` (``label`` is ``expr`` as written), one line per distinct value with
    the instances that give it; None where no instance evaluates it."""
    found: dict[str, list[str]] = {}
    for env, where in _environments(ws, uri, file, place.definition):
        value = _evaluate(program, file, place, expr, env)
        if value is not _NONE:
            found.setdefault(_shown(value), []).append(where)
    if not found:
        return None
    if len(found) == 1:
        return f"```\n{label} = {next(iter(found))}\n```"
    rows = []
    for value, places in list(found.items())[:MAX_ROWS]:
        shown = ", ".join(places[:4]) + (f", ... ({len(places)} in all)" if len(places) > 4 else "")
        rows.append(f"{label} = {value}: {shown}")
    return "```\n" + "\n".join(rows) + "\n```"


_NONE = object()  # no value: the expression failed to evaluate there


def _environments(
    ws: Workspace, uri: str, file: str, definition: ast.Definition | None
) -> list[tuple[dict[str, Any], str]]:
    """The parameter values of each instance of ``definition`` in the checked networks, with
    where it stands; a definition no network instantiates gets no parameters."""
    out: list[tuple[dict[str, Any], str]] = []
    for net, _spec in ws.networks_seeing(uri, file):
        if isinstance(definition, ast.BlockDef):
            for scope in net.root.scopes():
                if scope.kind == "block" and scope.block is not None and scope.block.name_span == definition.name_span:
                    out.append((dict(scope.args), scope.path))
        elif net.definition is not None and definition is not None and net.definition.name_span == definition.name_span:
            out.append((dict(net.params), net.name))
    return out or [({}, "")]


def _evaluate(program: Program, file: str, place: Place, expr: ast.Expr, params: dict[str, Any]) -> Any:
    """``expr`` evaluated after the body's statements before the one it stands in."""
    evaluator = Evaluator(program, Collector())
    evaluator.globals = program.definitions(file)
    env = dict(params)
    body = place.definition.body if isinstance(place.definition, (ast.BlockDef, ast.NetworkDef)) else ()
    for stmt in body:
        if stmt is place.statement:
            break
        if isinstance(stmt, ast.Assign):
            try:
                env[stmt.name] = evaluator.eval(stmt.value, env)
            except Failed:
                env[stmt.name] = POISON
    try:
        return evaluator.eval(expr, env)
    except Failed:
        return _NONE


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return show_value(value)
