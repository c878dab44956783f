"""Placing layers in the graph: the statements of network and block bodies become IR nodes.

The half of elaboration that walks bodies: it unrolls stages into block instances, binds block
arguments, realises residuals and gates, and records every layer as a node of the graph with
the scope it belongs to. :mod:`resdsl.semantics.elaborate` drives it for one network (aliases,
parameters, the input, the size limits). Problems are collected, not raised; a statement that
fails leaves an ``error`` node whose shape is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import networkx as nx

from resdsl.diagnostics import Collector, error, warning
from resdsl.ir import Layer, Scope, ScopeKind, instance_note
from resdsl.ir.repairs import move_stride
from resdsl.ops import OPS, OpDef
from resdsl.semantics.channels import PlacedShapes
from resdsl.semantics.evaluate import Evaluator, first_block
from resdsl.semantics.limits import MAX_BLOCK_DEPTH
from resdsl.semantics.values import (
    POISON,
    CallKind,
    Failed,
    LayerCall,
    PerInstance,
    show_value,
    suggest,
    type_name,
    typo_fixes,
)
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.syntax.names import bad_layer_name, layer_name_problem

__all__ = ["Placer", "TooLarge"]


class TooLarge(Exception):
    """Abandons a network whose unrolling passed the layer limit (E601 was reported)."""


class Placer(Evaluator):
    """Builds the graph and module tree of one network, statement by statement."""

    def __init__(self, program: Program, collector: Collector) -> None:
        super().__init__(program, collector)
        self.graph: nx.DiGraph = nx.DiGraph()
        self.order: list[str] = []
        self.block_stack: list[tuple[str, ast.Span]] = []
        # instance values: stage blocks enclosing the statement placed now, blocks placed so far
        # and in all (counted before placing) per depth, the first depth whose total is unsure
        self.stage_depth = 0
        self.net_running: dict[int, int] = {}
        self.net_totals: dict[int, int] = {}
        self.net_unsure: int | None = None
        self.node_limit: int | None = None  # the layer limit, where counting could not check it
        self.shapes = PlacedShapes(self.graph, self.order)  # what in_channels reads

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
                        problem = layer_name_problem(stmt.name)
                        if problem is not None:  # reported, and checking goes on past it
                            self.diags.add(bad_layer_name(stmt.name, problem, stmt.name_span))
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
        value = self._layer_value(expr, env)
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

    def _layer_value(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        """What a statement's expression makes. A statement is a layer, so a bare ``identity``
        there is the identity op (in a value it is the shortcut kind, as in ``residual(identity)``),
        also as the chosen side of ``relu if act else identity``."""
        if isinstance(expr, ast.Cond):
            return self._layer_value(self.chosen(expr, env), env)
        if isinstance(expr, ast.Name) and expr.id == "identity" and expr.id not in env:
            return self._call(ast.Call(expr.id, (), expr.span, expr.span), env)
        return self.eval(expr, env)

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
            if op.merge is not None:  # concat(): the main branch and the block input, as a residual
                self._connect(branch, layer.id, 1)
                return layer.id, layer.id
            return layer.id, branch
        if value.kind == "block":
            sub = self._block(value, name, path, scope, cur)
            return sub.output, branch
        if value.kind == "sequential":
            return self._sequential(value, name, path, scope, cur), branch
        if value.kind == "gate":
            return self._gate(value, name, path, scope, cur), branch
        return self._stage(value, name, path, scope, cur), branch

    # -- stages -----------------------------------------------------------------------------

    def _stage(self, value: LayerCall, name: str, path: str, scope: Scope, cur: str) -> str:
        """``stage(block(...), repeat=N)``: N instances named ``path.0`` ... ``path.N-1``, the
        first with the stage's stride and shortcut; a block argument that reads instance values
        (:data:`~resdsl.semantics.values.INSTANCE_NAMES`) is evaluated for each block with its own."""
        stage = Scope(ScopeKind.STAGE, name, path, value.span, input=cur)
        stage.repeat = value.args["repeat"]
        stage.repeat_expr = value.exprs.get("repeat")
        depth = self.stage_depth
        stage.depth, stage.net_start = depth, self.net_running.get(depth, 0)
        stage.net_count = self.net_totals.get(depth, 0)
        if isinstance(value.args["block"], PerInstance):
            stage.instance_names = value.args["block"].names
        block = self._stage_block(value, stage, 0, cur)
        assert isinstance(block.target, ast.BlockDef)
        stage.block, stage.arg_exprs = block.target, dict(block.exprs)  # what blocks after the first get
        self._check_stage(value, block, name, stage)
        scope.items.append(stage)
        out = cur
        for i in range(stage.repeat):
            call = first_block(value, block) if i == 0 else self._stage_block(value, stage, i, out)
            if call.target is not stage.block:
                self.diags.add(
                    error(
                        "E205",
                        f"a stage repeats one block: block {i} of {path} is {show_value(call)}, "
                        f"block 0 is {stage.block.name}",
                        value.exprs["block"].span,
                        help="choose arguments by index (expand=1 if index == 0 else 6), not the block itself",
                    )
                )
                raise Failed
            self.net_running[depth] = self.net_running.get(depth, 0) + 1
            self.stage_depth += 1
            try:
                out = self._block(call, str(i), _join(path, str(i)), stage, out).output
            finally:
                self.stage_depth -= 1
            stage.output = out
            self._check_size(value.span)
        return out

    def _stage_block(self, value: LayerCall, stage: Scope, i: int, source: str) -> LayerCall:
        """The block call for block ``i`` of a stage, its instance values bound; ``source``: the
        node that feeds it (in_channels are its channels)."""
        block = value.args["block"]
        if not isinstance(block, PerInstance):
            return block
        values: dict[str, int | Callable[[ast.Name], int]] = {
            "index": i,
            "count": stage.repeat,
            "net_index": self.net_running.get(stage.depth, 0),
            "net_count": partial(self._net_count, stage.depth),
            "in_channels": partial(self._in_channels, source),
        }
        note = f"evaluated for block {stage.path}.{i} (index {i}, net_index {values['net_index']})"
        with self.diags.within("block", "", note, value.span):
            return self.instance_block(block, values)

    def _check_stage(self, value: LayerCall, block: LayerCall, name: str, stage: Scope) -> None:
        """W404 for a stride given to every block (not one chosen per block by instance values);
        E203 for a stride or shortcut the block lacks."""
        assert isinstance(block.target, ast.BlockDef)
        given, repeat = block.args.get("stride"), stage.repeat
        written = block.exprs.get("stride")
        chosen = written is not None and any(
            isinstance(n, ast.Name) and n.id in stage.instance_names for n in ast.walk(written)
        )
        if repeat > 1 and isinstance(given, int) and given != 1 and "stride" in block.arg_spans and not chosen:
            self.diags.add(
                warning(
                    "W404",
                    f"stride={given} given to {block.target.name} inside a stage strides all {repeat} blocks",
                    block.arg_spans["stride"],
                    notes=["a stage's stride= applies to its first block only, as the paper downsamples once"],
                    help=f"move it to the stage: {name} = stage({block.target.name}(...), repeat={repeat}, "
                    f"stride={given})",
                    fixes=move_stride(self.program.sources, value.span, value.arg_spans, block.arg_spans, given),
                )
            )
        block_params = {p.name for p in block.target.params}
        for key in ("stride", "shortcut"):
            if value.args.get(key) is not None and key not in block_params:
                self.diags.add(
                    error(
                        "E203",
                        f"block '{block.target.name}' has no parameter '{key}' for the stage to set",
                        value.arg_spans[key],
                        help=f"add a '{key}' parameter to block {block.target.name}",
                    )
                )
                raise Failed

    def _net_count(self, depth: int, name: ast.Name) -> int:
        if self.net_unsure is not None and depth >= self.net_unsure:
            self.diags.add(
                error(
                    "E218",
                    "net_count is not known here: how many blocks the stages at this depth have depends on the "
                    "in_channels of an enclosing stage's block, which is known only while placing",
                    name.span,
                    help="give the stage sizes without in_channels, or pass the total as a parameter",
                )
            )
            raise Failed
        return self.net_totals.get(depth, 0)

    def _in_channels(self, source: str, name: ast.Name) -> int:
        shape = self.shapes.of(source)
        if shape is None:
            raise Failed  # a layer before it has no shape: its error is reported (here or by the checker)
        return shape[0]

    def _check_size(self, span: ast.Span) -> None:
        """E601 while placing, where counting could not size the network (in_channels was read)."""
        if self.node_limit is not None and len(self.order) > self.node_limit:
            self.diags.add(
                error(
                    "E601",
                    f"this network would have more than {self.node_limit:,} layers after unrolling",
                    span,
                    notes=["block arguments that read in_channels are sized while placing"],
                    help="check the repeat counts; raise the limit with --max-layers if this is meant",
                )
            )
            raise TooLarge

    def _sequential(self, value: LayerCall, name: str, path: str, parent: Scope, cur: str) -> str:
        """Layers numbered by position, like an ``nn.Sequential`` (``conv1.0``, ``conv1.3``)."""
        group = Scope(ScopeKind.SEQUENTIAL, name, path, value.span, input=cur)
        parent.items.append(group)
        out = cur
        for i, item in enumerate(value.args["layers"]):
            op = item.target if item.kind == "op" else None
            if isinstance(op, OpDef) and (op.own_param is not None or op.merge is not None):
                what = "is a tensor of its block, not a module" if op.own_param else "merges with the block input"
                self.diags.add(
                    error(
                        "E217",
                        f"{op.name} {what}: it cannot be an item of sequential(...), whose items are numbered modules",
                        item.span,
                        help=f"write {op.name} in a block, on a line of its own",
                    )
                )
                raise Failed
            out, _ = self._place(item, str(i), False, group, out, out, {})
        group.output = out
        return out

    def _gate(self, value: LayerCall, name: str, path: str, parent: Scope, cur: str) -> str:
        """The input times what a side branch computes from it (squeeze-excitation): the branch
        is a child named ``name``, the multiply a merge node checked like an addition."""
        branch: LayerCall = value.args["branch"]
        if branch.kind == "op":  # a single op as the branch: give it a group of its own
            branch = LayerCall(CallKind.SEQUENTIAL, None, {"layers": [branch]}, {}, {}, branch.span)
        gate_out, _ = self._place(branch, name, False, parent, cur, cur, {})
        side = parent.items[-1]
        assert isinstance(side, Scope), "a gate's branch is a block or a sequential group"
        side.side = True
        mul = self._node(
            "mul", f"{name}_mul", {}, {}, f"{name}_mul", _join(parent.path, f"{name}_mul"), value.span, parent, True
        )
        self._connect(cur, mul.id, 0)
        self._connect(gate_out, mul.id, 1)
        return mul.id

    def _block(self, call: LayerCall, name: str, path: str, parent: Scope, cur: str) -> Scope:
        block = call.target
        assert isinstance(block, ast.BlockDef)
        if len(self.block_stack) >= MAX_BLOCK_DEPTH:
            self.diags.add(
                error(
                    "E602",
                    f"blocks nested more than {MAX_BLOCK_DEPTH} deep (block '{block.name}' in "
                    f"{' -> '.join(b for b, _ in self.block_stack[:3])} -> ...)",
                    call.span,
                    help="flatten the chain of blocks; real networks nest two or three deep",
                )
            )
            raise Failed
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
            ScopeKind.BLOCK, name, path, call.span, input=cur, block=block, args=dict(env), arg_exprs=dict(call.exprs)
        )
        parent.items.append(scope)
        self.block_stack.append((block.name, call.span))
        try:
            with self.diags.within("block", call.span.file, instance_note(scope), call.span):
                scope.output = self._body(block.body, scope, env, cur)
        finally:
            self.block_stack.pop()
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
                        help=suggest(target, layer_ids) or "name the layer the projection branches off after",
                        fixes=typo_fixes(target, layer_ids, _tail(bound.arg_spans["project_from"], target)),
                    )
                )
                raise Failed
            source = layer_ids[target]
        norm = attrs.get("norm", True)
        if isinstance(norm, LayerCall) and norm.kind == "op" and getattr(norm.target, "normalizes", False):
            attrs["norm"] = (norm.target.name, dict(norm.args))  # type: ignore[union-attr]
        elif not isinstance(norm, bool):
            self.diags.add(
                error(
                    "E205",
                    f"residual argument 'norm' must be true, false or a normalization layer, got {type_name(norm)}",
                    bound.arg_spans.get("norm", call.span),
                    help="e.g. norm=groupnorm(32), or norm=false for a bare 1x1 projection",
                )
            )
            raise Failed
        if kind == "none":  # a plain network: no addition, but the unit still ends here
            scope.plain.append((len(scope.items), exprs["shortcut"]))
            return cur, cur
        local = attrs["name"]
        problem = layer_name_problem(local)
        if problem is not None:
            self.diags.add(bad_layer_name(local, problem, bound.arg_spans.get("name", call.span)))
            raise Failed
        written = exprs.get("shortcut")
        # residual(identity) as written makes no module in any instance, so it takes no name
        moduleless = kind == "identity" and isinstance(written, ast.Name) and written.id == "identity"
        if local in names and not moduleless:
            self.diags.add(
                error(
                    "E206",
                    f"'{local}' is already defined in this block",
                    call.span,
                    notes=[f"first defined at {names[local]}"],
                    help='name the shortcut module: residual(..., name="shortcut2")',
                )
            )
            raise Failed
        if not moduleless:
            names[local] = call.span
        layer = self._node("residual", local, attrs, exprs, local, _join(scope.path, local), call.span, scope)
        self._connect(cur, layer.id, 0)
        self._connect(branch, layer.id, 1)
        if source is not None:
            self._connect(source, layer.id, 2)
        return layer.id, layer.id


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _tail(span: ast.Span, text: str) -> ast.Span:
    """Where ``text`` is written at the end of ``span`` (the value of ``name=value``)."""
    return ast.Span(span.file, span.end_line, span.end_column - len(text), span.end_line, span.end_column)
