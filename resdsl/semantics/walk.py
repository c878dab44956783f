"""One walk of the language: how a body's statements are read and how each kind of layer is
entered, written once for everything that walks a network.

Two visitors walk a network body: the :class:`~resdsl.semantics.place.Placer` places IR nodes,
the :class:`~resdsl.semantics.count.LayerCounter` counts them without unrolling (memoised). As
jinja2's ``NodeVisitor`` dispatches on node classes, :meth:`Walker.walk` dispatches a layer on
its kind to ``walk_op``, ``walk_block``, ``walk_sequential``, ``walk_gate`` and ``walk_stage``;
a visitor supplies what it does with each (place a node, or count one), and takes the rules
from here: which statements bind what (:class:`Frame`), how a block call is entered
(:meth:`Walker.entering`), what a sequential group and a gate hold, and the stage rule
(:class:`~resdsl.semantics.stage_rule.StageRule`, which :class:`Walker` extends: the first block
gets the stage's stride and shortcut, each block its instance values). A change to any of them
is made once, and both visitors follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from resdsl.diagnostics import Collector, error
from resdsl.ops import OPS, OpDef
from resdsl.semantics.limits import MAX_BLOCK_DEPTH
from resdsl.semantics.stage_rule import R, S, StageRule, StageWalk, W
from resdsl.semantics.values import (
    POISON,
    CallKind,
    Failed,
    LayerCall,
    suggest,
    type_name,
    typo_fixes,
)
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.syntax.names import FreshNames, bad_layer_name, layer_name_problem

__all__ = ["Frame", "StageWalk", "Walker"]


class Frame:
    """One body being read: the names its statements have bound so far (values and layers,
    which share one namespace: E206) and the layer names among them (what ``project_from``
    may name). The static checks of unused blocks keep one too."""

    def __init__(self, body: Sequence[ast.Stmt], network: bool) -> None:
        self.network = network  # a network's body (input and meta belong there)
        self.names: dict[str, ast.Span] = {}
        self.layers: dict[str, Any] = {}  # layer name -> what the visitor made of it (the placer: its node)
        # attributes of the body's module that an op sets (res2_hierarchy's convs): no layer may take them
        self.own_attrs: dict[str, ast.Span] = {}
        self.fresh = FreshNames(self.names, {s.name for s in body if isinstance(s, ast.Assign)})

    def bound_before(self, name: str) -> ast.Span | None:
        """Where ``name`` was bound earlier in this body, if it was."""
        return self.names.get(name)


F = TypeVar("F", bound=Frame)


class Walker(StageRule[S, R, W], Generic[F, S, R, W]):
    """Reads bodies and enters layers by the language's rules; subclasses say what each does."""

    _walks: ClassVar[dict[CallKind, Callable[..., Any]]]  # per class: see __init_subclass__
    # what abandons a statement (its error node, or one counted node)
    failures: tuple[type[BaseException], ...] = (Failed,)

    def __init__(self, program: Program, collector: Collector) -> None:
        super().__init__(program, collector)
        self.block_stack: list[tuple[str, ast.Span]] = []

    # -- bodies ---------------------------------------------------------------------------

    def read_body(self, body: Sequence[ast.Stmt], env: dict[str, Any], frame: F) -> None:
        """Every statement of ``body`` in order; a statement that fails is walked as failed."""
        for stmt in body:
            if isinstance(stmt, (ast.InputStmt, ast.MetaStmt)):
                if not frame.network:
                    word = "input" if isinstance(stmt, ast.InputStmt) else "meta"
                    self.diags.add(error("E217", f"'{word}' belongs in a network, not in a block", stmt.span))
                continue
            try:
                self._statement(stmt, env, frame)
            except self.failures:
                local = frame.fresh("error")
                frame.names[local] = stmt.span
                self.walk_failed(stmt, local, frame)

    def _statement(self, stmt: ast.Assign | ast.LayerStmt, env: dict[str, Any], frame: F) -> None:
        if isinstance(stmt, ast.Assign):
            try:
                value = self.eval(stmt.value, env)
            except Failed:
                env.setdefault(stmt.name, POISON)
                raise
            self._bind_name(stmt, frame)
            if isinstance(value, LayerCall):
                problem = layer_name_problem(stmt.name)
                if problem is not None:  # reported, and checking goes on past it
                    self.diags.add(bad_layer_name(stmt.name, problem, stmt.name_span))
                self._refuse_own_attr(stmt, frame)
                self._bind_own_modules(value, frame)
                self.merge_tap(value, frame)  # E201 where it names no layer before it
                frame.layers[stmt.name] = self.walk_statement(value, stmt.name, False, frame)
            else:
                env[stmt.name] = value
                self.walk_value(stmt, frame)
            return
        made = self.statement_value(stmt, env)
        if isinstance(made, ast.Call):
            self.walk_residual(made, env, frame)
            return
        self._bind_own_modules(made, frame)
        self.merge_tap(made, frame)
        local = frame.fresh(getattr(made.target, "name", None) or made.kind.value)  # a stage, gate or group: its kind
        frame.names[local] = stmt.span
        frame.layers[local] = self.walk_statement(made, local, True, frame)

    def _bind_own_modules(self, call: LayerCall, frame: F) -> None:
        """E206 where an op whose modules are its block's (res2_hierarchy's convs, bns, pool)
        would set an attribute that the body names already; those names are then taken."""
        op = call.target if call.kind == "op" else None
        if not isinstance(op, OpDef) or op.own_modules is None:
            return
        for attr in op.own_modules.attrs:
            first = frame.own_attrs.get(attr) or (frame.names.get(attr) if attr in frame.layers else None)
            if first is not None:
                self.diags.add(
                    error(
                        "E206",
                        f"{op.name} sets the attribute '{attr}' of {self.body_name(frame)}, a name defined already",
                        call.span,
                        notes=[f"first defined at {first}", f"{op.name} sets {', '.join(op.own_modules.attrs)}"],
                        help=f"rename that layer, or write {op.name} in a block of its own",
                    )
                )
                raise Failed
        for attr in op.own_modules.attrs:
            frame.own_attrs[attr] = call.span

    def _refuse_own_attr(self, stmt: ast.Assign, frame: F) -> None:
        """E206 for a layer named like an attribute that an op before it set (a value may: it
        is a local of the constructor, not an attribute)."""
        first = frame.own_attrs.get(stmt.name)
        if first is not None:
            self.diags.add(
                error(
                    "E206",
                    f"'{stmt.name}' is already an attribute of {self.body_name(frame)}",
                    stmt.name_span,
                    notes=[f"set by the op at {first}"],
                    help="layer names become module names and must be unique within a block",
                )
            )
            raise Failed

    def _bind_name(self, stmt: ast.Assign, frame: F) -> None:
        """E206 for a name the body bound before (layer names become module names)."""
        first = frame.bound_before(stmt.name)
        if first is not None:
            where = self.body_name(frame)
            self.diags.add(
                error(
                    "E206",
                    f"'{stmt.name}' is already defined in {where}",
                    stmt.name_span,
                    notes=[f"first defined at {first}"],
                    help="layer names become module names and must be unique within a block",
                )
            )
            raise Failed
        frame.names[stmt.name] = stmt.name_span

    def statement_value(self, stmt: ast.LayerStmt, env: dict[str, Any]) -> LayerCall | ast.Call:
        """The layer an anonymous statement makes, or its ``residual(...)`` call (E211: not a layer)."""
        expr = stmt.value
        if isinstance(expr, ast.Call) and expr.func == "residual" and "residual" not in env:
            return expr
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

    def read_residual(self, call: ast.Call, env: dict[str, Any], frame: F) -> tuple[LayerCall, Any]:
        """A ``residual(...)`` statement's arguments, and what its ``project_from=`` names (what
        the visitor made of that layer; None without one). Its shortcut kind ``none`` (a plain
        network) ends the unit with no addition."""
        op = OPS["residual"]
        bound = self._bind(op.name, op.params, call, env)
        source = self._named_layer(bound, "project_from", frame.layers, "the projection branches off after")
        self._residual_norm(bound, call)
        return bound, source

    def merge_tap(self, value: LayerCall, frame: F) -> Any:
        """What the layer a merge's tap parameter names made (``radix_combine(2, splits=act0)``:
        act0's node, for the placer), or None where the merge has no tap or it is not given."""
        op = value.target if value.kind == "op" else None
        if not isinstance(op, OpDef) or op.tap is None:
            return None
        return self._named_layer(value, op.tap, frame.layers, "the merge reads")

    def _named_layer(self, bound: LayerCall, param: str, layers: dict[str, Any], what: str) -> Any:
        """What the layer a ``project_from=`` (or a merge's tap) names made; E201 where no layer
        of that name came before."""
        target = bound.args.get(param)
        if target is None:
            return None
        if target not in layers:
            span = bound.arg_spans[param]
            where = "residual" if param == "project_from" else getattr(bound.target, "name", "merge")
            self.diags.add(
                error(
                    "E201",
                    f"no layer named '{target}' before this {where}",
                    span,
                    help=suggest(target, layers) or f"name the layer {what}",
                    fixes=typo_fixes(target, layers, _tail(span, target)),
                )
            )
            raise Failed
        return layers[target]

    def _residual_norm(self, bound: LayerCall, call: ast.Call) -> None:
        """``norm=``: true, false, or a normalization layer (kept as its op name and arguments)."""
        norm = bound.args.get("norm", True)
        if isinstance(norm, LayerCall) and norm.kind == "op" and getattr(norm.target, "normalizes", False):
            bound.args["norm"] = (norm.target.name, dict(norm.args))  # type: ignore[union-attr]
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

    # what a visitor does with a body's statements
    def body_name(self, frame: F) -> str:
        """The body in messages ("block 'layer1.0'")."""
        return "this body"

    def walk_statement(self, value: LayerCall, name: str, anonymous: bool, frame: F) -> Any:
        """A statement that makes a layer; gives what ``frame.layers`` records for its name."""
        raise NotImplementedError

    def walk_value(self, stmt: ast.Assign, frame: F) -> None:
        """A statement that binds a value (already in the environment)."""

    def walk_residual(self, call: ast.Call, env: dict[str, Any], frame: F) -> None:
        raise NotImplementedError

    def walk_failed(self, stmt: ast.Stmt, name: str, frame: F) -> None:
        """A statement that failed (its diagnostics are reported), named ``name``."""
        raise NotImplementedError

    # -- layers ---------------------------------------------------------------------------

    def walk(self, call: LayerCall, site: S) -> R:
        """Dispatch a layer on its kind: ``walk_op``, ``walk_block``, ``walk_stage``, ..."""
        return self._walks[call.kind](self, call, site)  # type: ignore[no-any-return]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each visitor's ``walk_<kind>`` methods, looked up once per class rather than by
        name for every layer of the network."""
        super().__init_subclass__(**kwargs)
        cls._walks = _walk_methods(cls)

    def walk_op(self, call: LayerCall, site: S) -> R:
        raise NotImplementedError

    def walk_block(self, call: LayerCall, site: S) -> R:
        raise NotImplementedError

    def walk_sequential(self, call: LayerCall, site: S) -> R:
        raise NotImplementedError

    def walk_gate(self, call: LayerCall, site: S) -> R:
        raise NotImplementedError

    @staticmethod
    def gate_branch(call: LayerCall) -> LayerCall:
        """A gate's side branch: a block or a sequential group (a single op gets a group of its own)."""
        branch: LayerCall = call.args["branch"]
        if branch.kind == "op":
            return LayerCall(CallKind.SEQUENTIAL, None, {"layers": [branch]}, {}, {}, branch.span)
        return branch

    def sequential_item(self, item: LayerCall) -> LayerCall:
        """An item of ``sequential(...)``, refused (E217) where it cannot be a numbered module."""
        op = item.target if item.kind == "op" else None
        if isinstance(op, OpDef) and (op.own_param or op.own_modules or op.merge):
            what = (
                "is a tensor of its block, not a module"
                if op.own_param
                else "makes modules of its block, not one of its own"
                if op.own_modules
                else "merges with the block input"
            )
            self.diags.add(
                error(
                    "E217",
                    f"{op.name} {what}: it cannot be an item of sequential(...), whose items are numbered modules",
                    item.span,
                    help=f"write {op.name} in a block, on a line of its own",
                )
            )
            raise Failed
        return item

    @contextmanager
    def entering(self, call: LayerCall) -> Iterator[dict[str, Any]]:
        """Enter a block call: refuse nesting past :data:`MAX_BLOCK_DEPTH` (E602) and a block
        that uses itself (E207); gives its parameters' values, defaults evaluated where the
        block is defined."""
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
            message = f"block '{block.name}' uses itself: {chain}"
            self.diags.add(error("E207", message, call.span, help="blocks cannot be recursive"))
            raise Failed
        env = self._block_env(call, block)
        self.block_stack.append((block.name, call.span))
        try:
            yield env
        finally:
            self.block_stack.pop()

    def _block_env(self, call: LayerCall, block: ast.BlockDef) -> dict[str, Any]:
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


def _walk_methods(cls: type) -> dict[CallKind, Callable[..., Any]]:
    """A visitor class's ``walk_<kind>`` method for each kind of layer."""
    return {kind: getattr(cls, f"walk_{kind.value}") for kind in CallKind}


Walker._walks = _walk_methods(Walker)


def _tail(span: ast.Span, text: str) -> ast.Span:
    """Where ``text`` is written at the end of ``span`` (the value of ``name=value``)."""
    return ast.Span(span.file, span.end_line, span.end_column - len(text), span.end_line, span.end_column)
