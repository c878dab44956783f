"""Elaboration: from parsed files to one IR :class:`~resdsl.ir.Network` per network.

This stage resolves imports (relative to the importing file, then the shipped library,
with cycle detection), evaluates parameters and integer arithmetic, binds arguments against
the op table and block signatures, unrolls stages into block instances and records every
layer as a graph node. Problems are collected, not raised, so one run reports them all; a
statement that fails leaves an ``error`` node whose shape is unknown, which keeps the
checker from piling follow-on errors onto it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx

from resdsl import ast
from resdsl.diagnostics import Collector, Diagnostic, ResdslError, error
from resdsl.ir import Layer, Network, Scope
from resdsl.ops import OPS, SHORTCUT_KINDS, OpDef, P
from resdsl.parser import parse
from resdsl.resources import library_dir


class ShortcutKind(str):
    """A shortcut kind value (``projection``, ``zero_pad``...): a name, not a string literal."""


SHORTCUTS = {kind: ShortcutKind(kind) for kind in SHORTCUT_KINDS}

# The built-in forms that are not ops: how they are called.
STAGE_PARAMS = (
    P("block", "layer"),
    P("repeat", "int", 1, minimum=1),
    P("stride", "int", None, minimum=1),
    P("shortcut", "shortcut", None),
)


@dataclass(frozen=True)
class LayerCall:
    """The value of ``conv(64, k=3)`` or ``bottleneck(128)``: a layer not yet placed."""

    kind: str  # op | block | stage
    target: OpDef | ast.BlockDef | None
    args: dict[str, Any]
    exprs: dict[str, ast.Expr]
    arg_spans: dict[str, ast.Span]
    span: ast.Span


# -- loading files ------------------------------------------------------------------------


@dataclass
class Program:
    """The files reachable from one root file, and the names each one can see."""

    root: str
    sources: dict[str, str] = field(default_factory=dict)
    modules: dict[str, ast.Module] = field(default_factory=dict)
    visible: dict[str, dict[str, ast.Definition]] = field(default_factory=dict)

    def definitions(self, file: str | None = None) -> dict[str, ast.Definition]:
        return self.visible.get(file or self.root, {})

    def own_networks(self) -> list[ast.NetworkDef | ast.NetworkAlias]:
        module = self.modules.get(self.root)
        if module is None:
            return []
        return [d for d in module.definitions if isinstance(d, (ast.NetworkDef, ast.NetworkAlias))]


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load(path: str | Path | None, collector: Collector, text: str | None = None, name: str = "<string>") -> Program:
    """Parse ``path`` (or ``text``) and everything it imports."""
    root = display_path(Path(path)) if path is not None else name
    program = Program(root)
    _load_file(program, root, Path(path).resolve() if path is not None else None, text, collector, [])
    return program


def _load_file(
    program: Program,
    file: str,
    real: Path | None,
    text: str | None,
    collector: Collector,
    stack: list[str],
) -> dict[str, ast.Definition]:
    if file in program.visible:
        return program.visible[file]
    if text is None:
        assert real is not None
        try:
            text = real.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            collector.add(error("E004", f"cannot read {file}: {reason}", ast.Span(file, 0, 0, 0, 0)))
            program.visible[file] = {}
            return {}
    program.sources[file] = text
    try:
        module = parse(text, file)
    except ResdslError as exc:
        collector.extend(exc.diagnostics)
        program.visible[file] = {}
        return {}
    program.modules[file] = module
    visible: dict[str, ast.Definition] = {}
    owners: dict[str, str] = {}
    stack = [*stack, file]
    for imp in module.imports:
        target = _resolve_import(imp, real)
        if target is None:
            searched = [str((real.parent if real else Path.cwd()) / imp.path), str(library_dir() / imp.path)]
            collector.add(
                error(
                    "E101",
                    f'import "{imp.path}" not found',
                    imp.span,
                    notes=[f"looked in {s}" for s in searched],
                    help="paths are relative to the importing file, or to the shipped library (std/...)",
                )
            )
            continue
        shown = display_path(target)
        if shown in stack:
            cycle = " -> ".join([*stack[stack.index(shown) :], shown])
            collector.add(
                error("E102", f"import cycle: {cycle}", imp.span, help="move shared blocks into a third file")
            )
            continue
        for name, definition in _load_file(program, shown, target, None, collector, stack).items():
            _define(visible, owners, name, definition, shown, collector)
    for definition in module.definitions:
        _define(visible, owners, definition.name, definition, file, collector)
    program.visible[file] = visible
    return visible


def _resolve_import(imp: ast.Import, importer: Path | None) -> Path | None:
    base = importer.parent if importer is not None else Path.cwd()
    for candidate in (base / imp.path, library_dir() / imp.path):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _define(
    visible: dict[str, ast.Definition],
    owners: dict[str, str],
    name: str,
    definition: ast.Definition,
    file: str,
    collector: Collector,
) -> None:
    previous = visible.get(name)
    if previous is not None and previous is not definition:
        collector.add(
            error(
                "E103",
                f"'{name}' is defined twice",
                definition.name_span,
                notes=[f"first defined at {previous.name_span}"],
                help="rename one of them",
            )
        )
        return
    if name in OPS or name in ("stage", "residual"):
        collector.add(error("E103", f"'{name}' is a built-in op and cannot be redefined", definition.name_span))
        return
    visible[name] = definition
    owners[name] = file


# -- values -------------------------------------------------------------------------------


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, ShortcutKind):
        return "a shortcut kind"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, LayerCall):
        return "a layer"
    return type(value).__name__


def check_type(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and not isinstance(value, ShortcutKind)
    if kind == "shortcut":
        return isinstance(value, ShortcutKind)
    if kind == "layer":
        return isinstance(value, LayerCall)
    return True


_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "shortcut": f"a shortcut kind ({', '.join(SHORTCUT_KINDS)})",
    "layer": "a block, e.g. basic(64)",
}


def _suggest(name: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


class Failed(Exception):
    """Abandons one statement after its diagnostics were recorded."""


class _Poison:
    """The value of a binding whose expression failed: using it fails without a second message."""


POISON = _Poison()


# -- the elaborator -----------------------------------------------------------------------


class Elaborator:
    """Turns one network definition (with its visible blocks) into an IR network."""

    def __init__(self, program: Program, collector: Collector) -> None:
        self.program = program
        self.diags = collector
        self.graph: nx.DiGraph = nx.DiGraph()
        self.order: list[str] = []
        self.int_divisions: set[ast.BinOp] = set()
        self.block_stack: list[tuple[str, ast.Span]] = []
        self.globals: dict[str, ast.Definition] = {}
        self._tables: dict[int, tuple[ast.BlockDef, tuple[P, ...]]] = {}  # the key object is kept alive
        self._indexes: dict[int, tuple[Sequence[P], dict[str, P]]] = {}

    # entry point
    def network(
        self,
        definition: ast.NetworkDef | ast.NetworkAlias,
        overrides: dict[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> Network | None:
        self.globals = self.program.definitions(definition.span.file)
        name = definition.name
        target, alias_args = self._resolve_alias(definition)
        if target is None:
            return None
        params = self._network_params(target, alias_args, overrides or {})
        if params is None:
            return None
        root = Scope("network", name, "", target.span)
        meta: dict[str, Any] = {}
        declared: tuple[int, ...] | None = None
        for stmt in target.body:
            if isinstance(stmt, ast.InputStmt):
                if declared is not None:
                    self.diags.add(error("E217", "input is declared twice", stmt.span))
                declared = stmt.dims
            elif isinstance(stmt, ast.MetaStmt):
                for entry in stmt.entries:
                    try:
                        meta[entry.name] = self.eval(entry.value, dict(params))
                    except Failed:
                        pass
        shape = tuple(input_shape) if input_shape else declared
        if shape is None:
            self.diags.add(
                error(
                    "E215",
                    f"network '{name}' declares no input shape",
                    target.name_span,
                    help="add a line such as 'input 3 x 224 x 224' or pass --input",
                )
            )
            return None
        if len(shape) not in (1, 3) or any(d < 1 for d in shape):
            self.diags.add(error("E213", f"input shape {shape} must be C x H x W with positive sizes", target.span))
            return None
        inp = self._node("input", "input", {}, {}, "input", "", target.span, None)
        inp.shape = tuple(shape)
        root.input = inp.id
        root.output = self._body(target.body, root, dict(params), inp.id)
        self._finish(root)
        return Network(
            name=name,
            file=target.span.file,
            span=definition.span,
            params=params,
            input_shape=tuple(shape),
            meta=meta,
            graph=self.graph,
            root=root,
            order=self.order,
            int_divisions=self.int_divisions,
            definition=target,
        )

    def _resolve_alias(self, definition: ast.Definition) -> tuple[ast.NetworkDef | None, dict[str, Any]]:
        args: dict[str, Any] = {}
        seen: list[str] = []
        while isinstance(definition, ast.NetworkAlias):
            if definition.name in seen:
                self.diags.add(
                    error("E207", f"network aliases refer to each other: {' -> '.join(seen)}", definition.span)
                )
                return None, {}
            seen.append(definition.name)
            call = definition.target
            target = self.globals.get(call.func)
            if not isinstance(target, (ast.NetworkDef, ast.NetworkAlias)):
                hint = _suggest(call.func, [n for n, d in self.globals.items() if not isinstance(d, ast.BlockDef)])
                self.diags.add(error("E104", f"no network named '{call.func}'", call.func_span, help=hint))
                return None, {}
            given: dict[str, Any] = {}
            params = _definition_params(target, self.globals)
            for i, arg in enumerate(call.args):
                key = arg.name if arg.name is not None else (params[i] if i < len(params) else None)
                if key is None:
                    self.diags.add(error("E210", f"too many positional arguments for network '{call.func}'", arg.span))
                    continue
                if key not in params:
                    self.diags.add(
                        error(
                            "E203",
                            f"network '{call.func}' has no parameter '{key}'",
                            arg.span,
                            help=_suggest(key, params),
                        )
                    )
                    continue
                try:
                    given[key] = self.eval(arg.value, {})
                except Failed:
                    continue
            args = {**given, **args}  # the outer alias wins
            definition = target
        return definition, args  # type: ignore[return-value]

    def _network_params(
        self, target: ast.NetworkDef, alias_args: dict[str, Any], overrides: dict[str, Any]
    ) -> dict[str, Any] | None:
        env: dict[str, Any] = {}
        for param in target.params:
            if param.name in overrides:
                env[param.name] = overrides[param.name]
            elif param.name in alias_args:
                env[param.name] = alias_args[param.name]
            elif param.default is not None:
                try:
                    env[param.name] = self.eval(param.default, dict(env))
                except Failed:
                    return None
            else:
                self.diags.add(
                    error(
                        "E204",
                        f"network '{target.name}' parameter '{param.name}' has no value",
                        param.span,
                        help=f"give it a default or pass --set {param.name}=VALUE",
                    )
                )
                return None
        return env

    # graph building
    def _node(
        self,
        op: str,
        name: str,
        attrs: dict[str, Any],
        exprs: dict[str, ast.Expr],
        module: str,
        path: str,
        span: ast.Span,
        scope: Scope | None,
        anonymous: bool = False,
    ) -> Layer:
        node_id = path or name
        if node_id in self.graph:
            node_id = f"{node_id}#{len(self.order)}"
        layer = Layer(node_id, op, attrs, exprs, name, module, path, span, scope, anonymous)
        self.graph.add_node(node_id, layer=layer)
        self.order.append(node_id)
        if scope is not None:
            scope.items.append(layer)
        return layer

    def _connect(self, src: str, dst: str, port: int = 0) -> None:
        self.graph.add_edge(src, dst, port=port)

    def _body(self, body: Sequence[ast.Stmt], scope: Scope, env: dict[str, Any], cur: str) -> str:
        branch = cur  # what the next residual's shortcut starts from
        names: dict[str, ast.Span] = {}
        layer_ids: dict[str, str] = {}
        declared = {s.name for s in body if isinstance(s, ast.Assign)}
        counters: dict[str, int] = {}

        def fresh(base: str) -> str:
            n = counters.get(base, 0)
            while True:
                candidate = base if n == 0 else f"{base}_{n}"
                n += 1
                if candidate not in names and candidate not in declared:
                    counters[base] = n
                    return candidate

        for stmt in body:
            if isinstance(stmt, (ast.InputStmt, ast.MetaStmt)):
                if scope.kind != "network":
                    word = "input" if isinstance(stmt, ast.InputStmt) else "meta"
                    self.diags.add(error("E217", f"'{word}' belongs in a network, not in a block", stmt.span))
                continue
            try:
                if isinstance(stmt, ast.Assign):
                    try:
                        value = self.eval(stmt.value, env)
                    except Failed:
                        env.setdefault(stmt.name, POISON)
                        raise
                    if stmt.name in names:
                        self.diags.add(
                            error(
                                "E206",
                                f"'{stmt.name}' is already defined in {scope.kind} '{scope.path or scope.name}'",
                                stmt.name_span,
                                notes=[f"first defined at {names[stmt.name]}"],
                                help="layer names become module names and must be unique within a block",
                            )
                        )
                        raise Failed
                    names[stmt.name] = stmt.name_span
                    if isinstance(value, LayerCall):
                        cur, branch = self._place(value, stmt.name, False, scope, cur, branch, layer_ids)
                        layer_ids[stmt.name] = cur
                    else:
                        env[stmt.name] = value
                        scope.lets.append((stmt.name, stmt.value))
                        scope.let_at.append(len(scope.items))
                else:
                    value = self._statement_value(stmt, env)
                    if isinstance(value, tuple):  # residual
                        cur, branch = self._residual(value, scope, env, cur, branch, layer_ids, names)
                        continue
                    base = value.target.name if value.kind != "stage" else "stage"  # type: ignore[union-attr]
                    local = fresh(base)
                    names[local] = stmt.span
                    cur, branch = self._place(value, local, True, scope, cur, branch, layer_ids)
                    layer_ids[local] = cur
            except Failed:
                local = fresh("error")
                names[local] = stmt.span
                bad = self._node("error", local, {}, {}, local, _join(scope.path, local), stmt.span, scope, True)
                self._connect(cur, bad.id)
                cur = bad.id
        return cur

    def _statement_value(self, stmt: ast.LayerStmt, env: dict[str, Any]) -> LayerCall | tuple:
        expr = stmt.value
        if isinstance(expr, ast.Call) and expr.func == "residual" and "residual" not in env:
            return ("residual", expr)
        value = self.eval(expr, env)
        if not isinstance(value, LayerCall):
            self.diags.add(
                error(
                    "E211",
                    f"this statement computes {type_name(value)}, not a layer",
                    stmt.span,
                    help="name a value with 'name = ...'; a statement on its own must be a layer such as relu",
                )
            )
            raise Failed
        return value

    def _place(
        self,
        value: LayerCall,
        name: str,
        anonymous: bool,
        scope: Scope,
        cur: str,
        branch: str,
        layer_ids: dict[str, str],
    ) -> tuple[str, str]:
        path = _join(scope.path, name)
        if value.kind == "op":
            op = value.target
            assert isinstance(op, OpDef)
            layer = self._node(op.name, name, value.args, value.exprs, name, path, value.span, scope, anonymous)
            self._connect(cur, layer.id)
            return layer.id, branch
        if value.kind == "block":
            sub = self._block(value, name, path, scope, cur)
            return sub.output, branch
        stage = Scope("stage", name, path, value.span, input=cur)
        block: LayerCall = value.args["block"]
        stage.repeat = value.args["repeat"]
        stage.repeat_expr = value.exprs.get("repeat")
        assert isinstance(block.target, ast.BlockDef)
        stage.block, stage.arg_exprs = block.target, dict(block.exprs)  # what blocks after the first get
        block_params = {p.name for p in block.target.params}
        first_args, first_exprs = dict(block.args), dict(block.exprs)
        for key in ("stride", "shortcut"):
            if value.args.get(key) is None:
                continue
            if key not in block_params:
                self.diags.add(
                    error(
                        "E203",
                        f"block '{block.target.name}' has no parameter '{key}' for the stage to set",
                        value.arg_spans[key],
                        help=f"add a '{key}' parameter to block {block.target.name}",
                    )
                )
                raise Failed
            first_args[key] = value.args[key]
            first_exprs[key] = value.exprs[key]
        scope.items.append(stage)
        out = cur
        for i in range(stage.repeat):
            call = (
                block if i else LayerCall("block", block.target, first_args, first_exprs, block.arg_spans, block.span)
            )
            sub = self._block(call, str(i), _join(path, str(i)), stage, out)
            out = sub.output
        stage.output = out
        return out, branch

    def _block(self, call: LayerCall, name: str, path: str, parent: Scope, cur: str) -> Scope:
        block = call.target
        assert isinstance(block, ast.BlockDef)
        if any(b == block.name for b, _ in self.block_stack):
            chain = " -> ".join([b for b, _ in self.block_stack] + [block.name])
            self.diags.add(
                error(
                    "E207", f"block '{block.name}' uses itself: {chain}", call.span, help="blocks cannot be recursive"
                )
            )
            raise Failed
        env = self._bind_block(call)
        scope = Scope(
            "block", name, path, call.span, input=cur, block=block, args=dict(env), arg_exprs=dict(call.exprs)
        )
        parent.items.append(scope)
        self.block_stack.append((block.name, call.span))
        before = len(self.diags.items)
        try:
            scope.output = self._body(block.body, scope, env, cur)
        finally:
            self.block_stack.pop()
        for i in range(before, len(self.diags.items)):  # say where a library block went wrong from
            d = self.diags.items[i]
            if d.span.file != call.span.file and not any(n.startswith("in ") for n in d.notes):
                note = f"in {scope.path}, a {block.name} made at {call.span}"
                self.diags.items[i] = replace(d, notes=(*d.notes, note))
        return scope

    def _bind_block(self, call: LayerCall) -> dict[str, Any]:
        block = call.target
        assert isinstance(block, ast.BlockDef)
        env: dict[str, Any] = {}
        saved = self.globals
        self.globals = self.program.definitions(block.span.file)
        try:
            for param in block.params:
                if param.name in call.args:
                    env[param.name] = call.args[param.name]
                elif param.default is not None:
                    env[param.name] = self.eval(param.default, dict(env))
        finally:
            self.globals = saved
        return env

    def _residual(
        self,
        value: tuple,
        scope: Scope,
        env: dict[str, Any],
        cur: str,
        branch: str,
        layer_ids: dict[str, str],
        names: dict[str, ast.Span],
    ) -> tuple[str, str]:
        call: ast.Call = value[1]
        op = OPS["residual"]
        bound = self._bind(op.name, op.params, call, env)
        attrs, exprs = bound.args, bound.exprs
        kind = attrs["shortcut"]
        source: str | None = None
        target = attrs.get("project_from")
        if target is not None:
            if target not in layer_ids:
                self.diags.add(
                    error(
                        "E201",
                        f"no layer named '{target}' before this residual",
                        bound.arg_spans["project_from"],
                        help=_suggest(target, layer_ids) or "name the layer the projection branches off after",
                    )
                )
                raise Failed
            source = layer_ids[target]
        if kind == "none":  # a plain network: no addition, but the unit still ends here
            scope.plain.append((len(scope.items), exprs["shortcut"]))
            return cur, cur
        local = attrs["name"]
        if local in names:
            self.diags.add(
                error(
                    "E206",
                    f"'{local}' is already defined in this block",
                    call.span,
                    help='name the shortcut module: residual(..., name="shortcut2")',
                )
            )
            raise Failed
        names[local] = call.span
        layer = self._node("residual", local, attrs, exprs, local, _join(scope.path, local), call.span, scope)
        self._connect(cur, layer.id, 0)
        self._connect(branch, layer.id, 1)
        if source is not None:
            self._connect(source, layer.id, 2)
        return layer.id, layer.id

    def _finish(self, root: Scope) -> None:
        """Decide in-place activations and which anonymous modules can be shared."""
        g = self.graph
        for scope in root.scopes():
            own = {item.id for item in scope.items if isinstance(item, Layer)}
            shared: dict[tuple, str] = {}
            taken = {item.name for item in scope.items if isinstance(item, Layer) and not item.anonymous}
            taken |= {item.name for item in scope.items if isinstance(item, Scope)}
            for item in scope.items:
                if not isinstance(item, Layer):
                    continue
                op = OPS.get(item.op)
                if op is not None and (op.can_inplace or item.op == "residual"):
                    # overwrite the input only if nothing else reads it, and it is not the scope's input
                    main = [p for p, e in g.pred[item.id].items() if e["port"] == 0]
                    item.inplace = len(main) == 1 and main[0] in own and g.out_degree(main[0]) == 1
                if not item.anonymous or op is None or op.stateful:
                    continue
                key = (item.op, item.inplace, tuple(sorted(item.attrs.items())))
                if key in shared:
                    item.module = shared[key]
                    continue
                module, n = item.op, 0
                while module in taken:
                    n += 1
                    module = f"{item.op}_{n}"
                taken.add(module)
                shared[key] = item.module = module

    # binding tables, built once per definition: a deep network binds the same op or block
    # thousands of times, and hashing its whole AST on every call would cost more than binding
    def _block_params(self, block: ast.BlockDef) -> tuple[P, ...]:
        key = id(block)
        if key not in self._tables:
            params = tuple(P(p.name, "any") if p.default is None else P(p.name, "any", None) for p in block.params)
            self._tables[key] = (block, params)
        return self._tables[key][1]

    def _param_index(self, params: Sequence[P]) -> dict[str, P]:
        key = id(params)
        if key not in self._indexes:
            self._indexes[key] = (params, {n: p for p in params for n in (p.name, *p.aliases)})
        return self._indexes[key][1]

    # expressions
    def eval(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        if isinstance(expr, (ast.IntLit, ast.FloatLit, ast.StrLit, ast.BoolLit)):
            return expr.value
        if isinstance(expr, ast.Name):
            return self._lookup(expr, env)
        if isinstance(expr, ast.ListExpr):
            return [self.eval(item, env) for item in expr.items]
        if isinstance(expr, ast.Index):
            return self._index(expr, self.eval(expr.value, env), self.eval(expr.index, env))
        if isinstance(expr, ast.Neg):
            value = self.eval(expr.operand, env)
            if not check_type(value, "float"):
                self.diags.add(error("E212", f"cannot negate {type_name(value)}", expr.span))
                raise Failed
            return -value
        if isinstance(expr, ast.BinOp):
            return self._arith(expr, self.eval(expr.left, env), self.eval(expr.right, env))
        if isinstance(expr, ast.Call):
            return self._call(expr, env)
        raise AssertionError(expr)

    def _lookup(self, name: ast.Name, env: dict[str, Any]) -> Any:
        if name.id in env:
            if env[name.id] is POISON:
                raise Failed
            return env[name.id]
        if name.id in SHORTCUTS:
            return SHORTCUTS[name.id]
        if (name.id in OPS and name.id != "residual") or isinstance(self.globals.get(name.id), ast.BlockDef):
            return self._call(ast.Call(name.id, (), name.span, name.span), env)
        options = list(env) + list(SHORTCUTS) + list(OPS) + list(self.globals)
        self.diags.add(error("E201", f"unknown name '{name.id}'", name.span, help=_suggest(name.id, options)))
        raise Failed

    def _index(self, expr: ast.Index, value: Any, index: Any) -> Any:
        if not isinstance(value, list) or not check_type(index, "int"):
            self.diags.add(error("E212", f"cannot index {type_name(value)} with {type_name(index)}", expr.span))
            raise Failed
        if not -len(value) <= index < len(value):
            self.diags.add(error("E213", f"index {index} is out of range for a list of {len(value)}", expr.index.span))
            raise Failed
        return value[index]

    def _arith(self, expr: ast.BinOp, left: Any, right: Any) -> Any:
        op = expr.op
        if not (check_type(left, "float") and check_type(right, "float")):
            if op == "+" and isinstance(left, list) and isinstance(right, list):
                return left + right
            self.diags.add(error("E212", f"cannot compute {type_name(left)} {op} {type_name(right)}", expr.span))
            raise Failed
        if op in ("/", "//", "%") and right == 0:
            self.diags.add(error("E209", f"division by zero in '{_show(expr)}'", expr.span))
            raise Failed
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "//":
            return left // right
        if op == "%":
            return left % right
        if isinstance(left, int) and isinstance(right, int):
            if left % right:
                self.diags.add(
                    error(
                        "E208",
                        f"{left} / {right} is not a whole number ({_show(expr)})",
                        expr.span,
                        help="'/' on whole numbers must divide exactly; use '//' to round down",
                    )
                )
                raise Failed
            self.int_divisions.add(expr)
            return left // right
        return left / right

    def _call(self, call: ast.Call, env: dict[str, Any]) -> LayerCall:
        if call.func == "stage":
            return self._bind("stage", STAGE_PARAMS, call, env, kind="stage")
        if call.func == "residual":
            self.diags.add(
                error(
                    "E217",
                    "residual(...) is a statement of its own, not a value",
                    call.span,
                    help="write it on its own line",
                )
            )
            raise Failed
        op = OPS.get(call.func)
        if op is not None:
            bound = self._bind(op.name, op.params, call, env)
            return LayerCall("op", op, bound.args, bound.exprs, bound.arg_spans, call.span)
        target = self.globals.get(call.func)
        if isinstance(target, ast.BlockDef):
            params = self._block_params(target)
            bound = self._bind(call.func, params, call, env, fill_defaults=False)
            return LayerCall("block", target, bound.args, bound.exprs, bound.arg_spans, call.span)
        if isinstance(target, (ast.NetworkDef, ast.NetworkAlias)):
            self.diags.add(
                error(
                    "E202",
                    f"'{call.func}' is a network and cannot be used as a layer",
                    call.func_span,
                    help="define the repeated part as a block",
                )
            )
            raise Failed
        options = (
            list(OPS) + [n for n, d in self.globals.items() if isinstance(d, ast.BlockDef)] + ["stage", "residual"]
        )
        self.diags.add(
            error("E202", f"unknown op or block '{call.func}'", call.func_span, help=_suggest(call.func, options))
        )
        raise Failed

    def _bind(
        self,
        what: str,
        params: Sequence[P],
        call: ast.Call,
        env: dict[str, Any],
        kind: str = "op",
        fill_defaults: bool = True,
    ) -> LayerCall:
        args: dict[str, Any] = {}
        exprs: dict[str, ast.Expr] = {}
        spans: dict[str, ast.Span] = {}
        problems: list[Diagnostic] = []
        broken = False
        given: set[str] = set()
        by_name = self._param_index(params)
        for i, arg in enumerate(call.args):
            if arg.name is None:
                if i and call.args[i - 1].name is not None:
                    problems.append(error("E001", "a positional argument cannot follow a named one", arg.span))
                    continue
                if i >= len(params):
                    problems.append(
                        error(
                            "E210",
                            f"{what} takes at most {len(params)} positional argument{'s' * (len(params) != 1)}",
                            arg.span,
                            help=f"parameters: {', '.join(p.name for p in params) or 'none'}",
                        )
                    )
                    continue
                param = params[i]
            else:
                found = by_name.get(arg.name)
                if found is None:
                    hint = _suggest(arg.name, list(by_name))
                    known = ", ".join(p.name for p in params) or "none"
                    problems.append(
                        error(
                            "E203",
                            f"{what} has no parameter '{arg.name}'",
                            arg.span,
                            help=hint or f"parameters: {known}",
                        )
                    )
                    continue
                param = found
            if param.name in given:
                problems.append(error("E214", f"{what} argument '{param.name}' is given twice", arg.span))
                continue
            given.add(param.name)
            if param.type == "name":  # a layer's name, not a value: kept as written
                if not isinstance(arg.value, ast.Name):
                    problems.append(
                        error("E205", f"{what} argument '{param.name}' takes the name of a layer", arg.span)
                    )
                    continue
                args[param.name] = arg.value.id
                spans[param.name] = arg.value.span
                continue
            try:
                value = self.eval(arg.value, env)
            except Failed:
                exprs[param.name] = arg.value
                broken = True
                continue
            if param.type not in ("any", "name") and not check_type(value, param.type):
                if param.type == "shortcut" and isinstance(value, str) and value in SHORTCUTS:
                    value = SHORTCUTS[value]
                elif param.type == "float" and check_type(value, "int"):
                    value = float(value)
                else:
                    problems.append(
                        error(
                            "E205",
                            f"{what} argument '{param.name}' must be {_TYPE_WORDS.get(param.type, param.type)}, "
                            f"got {type_name(value)} ({_show_value(value)})",
                            arg.value.span,
                        )
                    )
                    continue
            if param.minimum is not None and check_type(value, "float") and value < param.minimum:
                problems.append(
                    error(
                        "E213",
                        f"{what} argument '{param.name}' must be at least {param.minimum}, got {value}",
                        arg.value.span,
                    )
                )
                continue
            if kind == "stage" and param.name == "block" and getattr(value, "kind", None) != "block":
                problems.append(
                    error(
                        "E205",
                        f"stage repeats a block, got {type_name(value)} ({_show_value(value)})",
                        arg.value.span,
                        help="define a block (block name(...) { ... }) and pass it: stage(name(64), repeat=2)",
                    )
                )
                continue
            args[param.name] = value
            exprs[param.name] = arg.value
            spans[param.name] = arg.span
        for param in params:
            if param.name in given:
                continue
            if param.required:
                problems.append(
                    error(
                        "E204",
                        f"{what} needs argument '{param.name}'",
                        call.span,
                        help=f"e.g. {what}({', '.join(p.name + '=...' for p in params if p.required)})",
                    )
                )
            elif fill_defaults:
                args[param.name] = args[param.default_from] if param.default_from else param.default
        if problems:
            self.diags.extend(problems)
            raise Failed
        if broken:  # an argument failed to evaluate (already reported)
            raise Failed
        return LayerCall(kind, None, args, exprs, spans, call.span)


def _definition_params(definition: ast.Definition, globals: dict[str, ast.Definition]) -> list[str]:
    seen = set()
    while isinstance(definition, ast.NetworkAlias):
        if definition.name in seen:
            return []
        seen.add(definition.name)
        target = globals.get(definition.target.func)
        if target is None:
            return []
        definition = target
    return [p.name for p in definition.params]


def network_params(program: Program, definition: ast.Definition) -> list[str]:
    return _definition_params(definition, program.definitions(definition.span.file))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(expr: ast.Expr, parent: int = 0, right: bool = False) -> str:
    """An expression as the user wrote it (for messages), parenthesised where needed."""
    if isinstance(expr, ast.BinOp):
        prec = ast.PRECEDENCE[expr.op]
        text = f"{_show(expr.left, prec)} {expr.op} {_show(expr.right, prec, True)}"
        return f"({text})" if prec < parent or (right and prec == parent) else text
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, (ast.IntLit, ast.FloatLit)):
        return repr(expr.value)
    if isinstance(expr, ast.Neg):
        return f"-{_show(expr.operand, 3)}"
    if isinstance(expr, ast.Index):
        return f"{_show(expr.value, 3)}[{_show(expr.index)}]"
    if isinstance(expr, ast.Call):
        return f"{expr.func}(...)"
    return "..."


def _show_value(value: Any) -> str:
    if isinstance(value, LayerCall):
        return getattr(value.target, "name", value.kind)
    if isinstance(value, ShortcutKind):
        return str(value)
    return repr(value)
