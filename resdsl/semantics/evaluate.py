"""Evaluating expressions and binding call arguments against op and block signatures.

The evaluator computes with exact integers (``/`` must divide exactly), lists, booleans and
shortcut kinds; a call to an op, a block or ``stage`` evaluates to a :class:`LayerCall` that
elaboration later places in the graph. Problems become diagnostics and abandon the statement
(:class:`Failed`), so one run reports every independent mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from resdsl.diagnostics import Collector, Diagnostic, error
from resdsl.ir.repairs import floor_division
from resdsl.ops import OPS, OpDef, P
from resdsl.semantics.arith import Refused, arith, compare
from resdsl.semantics.bind import Plan, fill_missing, not_a_block, plan_args, suits
from resdsl.semantics.builtins import BUILTINS
from resdsl.semantics.computing import Computing
from resdsl.semantics.hints import forgotten_import, kind_error, unknown_kind
from resdsl.semantics.values import (
    INSTANCE_HELP,
    INSTANCE_NAMES,
    POISON,
    SHORTCUTS,
    STAGE_PARAMS,
    CallKind,
    Failed,
    LayerCall,
    Meaning,
    PerInstance,
    check_type,
    instance_reads,
    meaning,
    name_options,
    show_value,
    suggest,
    type_name,
    typo_fixes,
)
from resdsl.syntax import ast
from resdsl.syntax.ast import BUILTIN_FORMS
from resdsl.syntax.loader import Program

# built-in forms that make a layer of layers (stage is bound like an op, residual is a statement)
FORMS = tuple(f for f in BUILTIN_FORMS if f not in ("stage", "residual"))

# what a call without arguments plans, and the literals whose value binding cannot change
_NO_ARGS: Plan = ((), frozenset())
LITERALS = (ast.IntLit, ast.FloatLit, ast.StrLit, ast.BoolLit)

# One block's instance values while its stage's block argument is evaluated: a number, or a
# function of the name as written that computes it when read (in_channels needs the shapes so
# far) and may raise Failed
InstanceValues = Mapping[str, int | Callable[[ast.Name], int]]


def first_block(stage: LayerCall, block: LayerCall) -> LayerCall:
    """The stage rule: its first block gets the stage's ``stride`` and ``shortcut`` (where
    given), the others the block as written. Elaboration and the layer counter both use it."""
    args, exprs = dict(block.args), dict(block.exprs)
    for key in ("stride", "shortcut"):
        if stage.args.get(key) is not None:
            args[key] = stage.args[key]
            exprs[key] = stage.exprs[key]
    return LayerCall(CallKind.BLOCK, block.target, args, exprs, block.arg_spans, block.span)


class Evaluator(Computing):
    """Evaluates expressions in an environment; binds arguments of calls (the booleans, builtin
    functions and comprehensions are :class:`~resdsl.semantics.computing.Computing`'s)."""

    def __init__(self, program: Program, collector: Collector) -> None:
        self.program = program
        self.diags = collector
        self.int_divisions: set[ast.BinOp] = set()
        self.true_divisions: set[ast.BinOp] = set()  # "/" that gave a decimal somewhere
        self.globals: dict[str, ast.Definition] = {}
        self._tables: dict[int, tuple[ast.BlockDef, tuple[P, ...]]] = {}  # the key object is kept alive
        self._indexes: dict[int, tuple[Sequence[P], dict[str, P]]] = {}
        self._plans: dict[tuple[int, int], tuple[ast.Call, Sequence[P], Plan, dict[str, Any]]] = {}
        self.instance: InstanceValues | None = None  # set while a stage's block argument is evaluated

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

    def _plan(self, what: str, params: Sequence[P], call: ast.Call) -> tuple[Plan, dict[str, Any]]:
        """:func:`plan_args` of a call site, kept once it has no mistake (one with a mistake is
        planned anew each time, so each report gets diagnostics of its own), and the values its
        literal arguments were bound to (``k=3`` is 3 in every block instance)."""
        if not call.args:
            return _NO_ARGS, {}
        key = (id(call), id(params))
        if key in self._plans:
            return self._plans[key][2:]
        plan = plan_args(what, params, self._param_index(params), call)
        known: dict[str, Any] = {}
        if not any(isinstance(param, Diagnostic) for param, _ in plan[0]):
            self._plans[key] = (call, params, plan, known)  # the key objects are kept alive
        return plan, known

    # expressions: one method per node class (ast.ExprVisitor dispatches)
    def visit_IntLit(self, expr: ast.IntLit | ast.FloatLit | ast.StrLit | ast.BoolLit, env: dict[str, Any]) -> Any:
        return expr.value

    visit_FloatLit = visit_StrLit = visit_BoolLit = visit_IntLit

    def visit_Name(self, expr: ast.Name, env: dict[str, Any]) -> Any:
        return self._lookup(expr, env)

    def visit_ListExpr(self, expr: ast.ListExpr, env: dict[str, Any]) -> list[Any]:
        return [self.eval(item, env) for item in expr.items]

    def visit_Index(self, expr: ast.Index, env: dict[str, Any]) -> Any:
        return self._index(expr, self.eval(expr.value, env), self.eval(expr.index, env))

    def visit_Neg(self, expr: ast.Neg, env: dict[str, Any]) -> Any:
        value = self.eval(expr.operand, env)
        if not check_type(value, "float"):
            self.diags.add(error("E212", f"cannot negate {type_name(value)}", expr.span))
            raise Failed
        return -value

    def visit_BinOp(self, expr: ast.BinOp, env: dict[str, Any]) -> Any:
        if expr.op in ast.BOOLEAN_OPS:
            return self._boolean(expr, env)
        left, right = self.eval(expr.left, env), self.eval(expr.right, env)
        try:
            if expr.op in ast.COMPARISONS:
                return compare(expr, left, right)
            value = arith(expr, left, right)
        except Refused as refused:
            found = refused.diagnostic
            if found.code == "E208":  # an inexact whole-number division: '//' is the repair
                found = replace(found, fixes=floor_division(self.program.sources, expr))
            self.diags.add(found)
            raise Failed from None
        if expr.op == "/":
            self._division(expr, value)
        return value

    def _division(self, expr: ast.BinOp, value: Any) -> None:
        """Record where ``/`` divided whole numbers exactly (generated code writes ``//`` there),
        unless the same ``/`` also gave a decimal (an item of ``[x / 2 for x in [4, 3.0]]``, or
        another instance of a block): Python's ``/`` is the one spelling right for both."""
        if not isinstance(value, int):
            self.true_divisions.add(expr)
            self.int_divisions.discard(expr)
        elif expr not in self.true_divisions:
            self.int_divisions.add(expr)

    def visit_Cond(self, expr: ast.Cond, env: dict[str, Any]) -> Any:
        return self.eval(self.chosen(expr, env), env)  # only the chosen branch

    def visit_Call(self, expr: ast.Call, env: dict[str, Any]) -> LayerCall:
        return self._call(expr, env)

    def generic_visit(self, expr: ast.Expr, env: dict[str, Any]) -> Any:
        raise AssertionError(expr)

    def chosen(self, expr: ast.Cond, env: dict[str, Any]) -> ast.Expr:
        """The side of ``then if test else orelse`` that the test picks (the other is never evaluated)."""
        test = self.eval(expr.test, env)
        if not isinstance(test, bool):
            self.diags.add(
                error(
                    "E212",
                    f"a condition must be true or false, got {type_name(test)} ({show_value(test)})",
                    expr.test.span,
                    help="compare it: 'x if stride == 2 else y'",
                )
            )
            raise Failed
        return expr.then if test else expr.orelse

    def _lookup(self, name: ast.Name, env: dict[str, Any]) -> Any:
        found = meaning(name.id, env, self.globals, self.instance or ())
        if found is Meaning.BOUND:
            value = env[name.id]
            if value is POISON:
                raise Failed
            if isinstance(value, LayerCall):  # a layer held by a name is placed where it is used
                return value.at(name.span)
            return value
        if found is Meaning.SHORTCUT:
            return SHORTCUTS[name.id]
        if found is Meaning.LAYER:
            return self._call(ast.Call(name.id, (), name.span, name.span), env)
        if found is Meaning.INSTANCE:
            assert self.instance is not None
            value = self.instance[name.id]
            return value(name) if callable(value) else value
        options = name_options(env, self.globals)
        hint, fixes = forgotten_import(self.program, name.id, name.span) or (
            suggest(name.id, options),
            typo_fixes(name.id, options, name.span),
        )
        if name.id in INSTANCE_NAMES:
            hint, fixes = INSTANCE_HELP, ()
        self.diags.add(error("E201", f"unknown name '{name.id}'", name.span, help=hint, fixes=fixes))
        raise Failed

    def instance_reads(self, expr: ast.Expr, env: dict[str, Any]) -> frozenset[str]:
        """The instance values a stage's block argument reads (names nothing else defines)."""
        return instance_reads(expr, env, self.globals)

    def instance_block(self, deferred: PerInstance, values: InstanceValues) -> LayerCall:
        """A stage's block argument evaluated for one block, with that block's instance values."""
        saved = self.globals, self.instance
        self.globals, self.instance = deferred.globals, values
        try:
            value = self.eval(deferred.expr, dict(deferred.env))
        finally:
            self.globals, self.instance = saved
        if not isinstance(value, LayerCall) or value.kind != "block":
            self.diags.add(not_a_block(value, deferred.expr.span))
            raise Failed
        return value

    def _index(self, expr: ast.Index, value: Any, index: Any) -> Any:
        if not isinstance(value, list) or not check_type(index, "int"):
            self.diags.add(error("E212", f"cannot index {type_name(value)} with {type_name(index)}", expr.span))
            raise Failed
        if not -len(value) <= index < len(value):
            self.diags.add(error("E213", f"index {index} is out of range for a list of {len(value)}", expr.index.span))
            raise Failed
        return value[index]

    def _call(self, call: ast.Call, env: dict[str, Any]) -> LayerCall:
        if call.func == "stage":
            block = next((a for i, a in enumerate(call.args) if a.name == "block" or (i == 0 and a.name is None)), None)
            reads = self.instance_reads(block.value, env) if block is not None else frozenset()
            return self._bind("stage", STAGE_PARAMS, call, env, kind=CallKind.STAGE, per_instance=reads)
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
        if call.func in FORMS:
            return self._form(call, env)
        if isinstance(env.get(call.func), LayerCall):
            return self._recall(env[call.func], call, env)
        op = OPS.get(call.func)
        if op is not None and not op.called:
            self.diags.add(
                error("E217", f"'{call.func}' is made by gate(...) or residual(...), not called", call.func_span)
            )
            raise Failed
        if op is not None:
            bound = self._bind(op.name, op.params, call, env)
            return LayerCall(CallKind.OP, op, bound.args, bound.exprs, bound.arg_spans, call.span)
        target = self.globals.get(call.func)
        if isinstance(target, ast.BlockDef):
            params = self._block_params(target)
            bound = self._bind(call.func, params, call, env, fill_defaults=False)
            return LayerCall(CallKind.BLOCK, target, bound.args, bound.exprs, bound.arg_spans, call.span)
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
        self._unknown_call(call)

    def _unknown_call(self, call: ast.Call) -> NoReturn:
        """E202 for a call of a name that is no op, block or form (an import it forgot, a typo)."""
        options = [
            *OPS,
            *(n for n, d in self.globals.items() if isinstance(d, ast.BlockDef)),
            *BUILTINS,
            "stage",
            "residual",
            *FORMS,
        ]
        hint, fixes = forgotten_import(self.program, call.func, call.func_span) or (
            suggest(call.func, options),
            typo_fixes(call.func, options, call.func_span),
        )
        self.diags.add(error("E202", f"unknown op or block '{call.func}'", call.func_span, help=hint, fixes=fixes))
        raise Failed

    def _form(self, call: ast.Call, env: dict[str, Any]) -> LayerCall:
        """``sequential(a, b, ...)`` (layers numbered like nn.Sequential) and ``gate(branch)``
        (the input scaled by what the branch computes from it): layers made of layers."""
        layers: list[LayerCall] = []
        problems = []
        for arg in call.args:
            if arg.name is not None:
                problems.append(error("E203", f"{call.func} takes layers, not '{arg.name}='", arg.span))
                continue
            value = self.eval(arg.value, env)
            kinds = ("op", "block", "sequential", *(["stage"] if call.func == "sequential" else []))
            if not isinstance(value, LayerCall) or value.kind not in kinds:
                nested = isinstance(value, LayerCall)  # a stage or a gate: a layer, but not one that nests
                got = f"a {value.kind}" if nested else type_name(value)
                problems.append(
                    error(
                        "E205",
                        f"{call.func} takes ops, blocks{' or ' if call.func == 'gate' else ', '}sequential groups"
                        f"{' or stages' if call.func == 'sequential' else ''}, not {got}",
                        arg.value.span,
                        help=f"write the {value.kind} on a line of its own (layer1 = {value.kind}(...)), "
                        f"before or after the {call.func}(...)"
                        if nested
                        else "pass layers such as conv(64, k=3) or relu",
                    )
                )
                continue
            layers.append(value)
        if call.func == "gate" and len(call.args) != 1:
            problems.append(
                error(
                    "E210" if call.args else "E204",
                    "gate takes exactly one branch: gate(squeeze_excite(c)) or gate(sequential(...))",
                    call.span,
                )
            )
        if not call.args and call.func == "sequential":
            problems.append(error("E204", "sequential needs at least one layer", call.span))
        if problems:
            self.diags.extend(problems)
            raise Failed
        args: dict[str, Any] = {"branch": layers[0]} if call.func == "gate" else {"layers": layers}
        return LayerCall(CallKind(call.func), None, args, {}, {}, call.span)

    def _recall(self, base: LayerCall, call: ast.Call, env: dict[str, Any]) -> LayerCall:
        """A layer held by a parameter, called: ``norm()`` is that layer, ``norm(eps=1e-3)``
        that layer with some arguments replaced (a network chooses, its blocks refine)."""
        if not call.args:
            return base.at(call.span)  # placed here: diagnostics point at this call
        if base.kind == "op":
            assert isinstance(base.target, OpDef)
            params: Sequence[P] = base.target.params
        elif base.kind == "block":
            assert isinstance(base.target, ast.BlockDef)
            params = self._block_params(base.target)
        else:
            self.diags.add(error("E205", f"a {base.kind} cannot be called with arguments", call.span))
            raise Failed
        bound = self._bind(call.func, params, call, env, fill_defaults=False, partial=True)
        return LayerCall(
            base.kind,
            base.target,
            {**base.args, **bound.args},
            {**base.exprs, **bound.exprs},
            {**base.arg_spans, **bound.arg_spans},
            call.span,
        )

    def _bind(
        self,
        what: str,
        params: Sequence[P],
        call: ast.Call,
        env: dict[str, Any],
        kind: CallKind = CallKind.OP,
        fill_defaults: bool = True,
        partial: bool = False,
        per_instance: frozenset[str] = frozenset(),
    ) -> LayerCall:
        """Bind ``call``'s arguments to ``params``; ``per_instance``: the instance values a
        stage's block argument reads, which keep it unevaluated (a :class:`PerInstance`)."""
        bound = LayerCall(kind, None, {}, {}, {}, call.span)
        problems: list[Diagnostic] = []
        broken = False
        (plan, given), known = self._plan(what, params, call)
        for param, arg in plan:
            if isinstance(param, Diagnostic):
                problems.append(param)
                continue
            if param.name in known:  # a literal, bound here before
                bound.args[param.name], bound.exprs[param.name], bound.arg_spans[param.name] = (
                    known[param.name],
                    arg.value,
                    arg.span,
                )
                continue
            try:
                problem = self._bind_arg(what, param, arg, env, bound, per_instance)
            except Failed:
                bound.exprs[param.name] = arg.value
                broken = True
                continue
            if problem is not None:
                problems.append(problem)
            elif type(arg.value) in LITERALS and kind != CallKind.STAGE:  # (a stage checks its block)
                known[param.name] = bound.args[param.name]
        problems += fill_missing(what, params, given, bound.args, call, fill_defaults, partial)
        if problems:
            self.diags.extend(problems)
            raise Failed
        if broken:  # an argument failed to evaluate (already reported)
            raise Failed
        return bound

    def _bind_arg(
        self, what: str, param: P, arg: ast.Arg, env: dict[str, Any], bound: LayerCall, per_instance: frozenset[str]
    ) -> Diagnostic | None:
        """Put one argument's value into ``bound`` (raises Failed where evaluating it failed)."""
        if param.type == "name":  # a layer's name, not a value: kept as written
            if not isinstance(arg.value, ast.Name):
                return error("E205", f"{what} argument '{param.name}' takes the name of a layer", arg.span)
            bound.args[param.name], bound.arg_spans[param.name] = arg.value.id, arg.value.span
            return None
        if unknown_kind(param, arg.value, env, self.globals):
            return kind_error(arg.value, env)  # type: ignore[arg-type]
        if per_instance and param.name == "block":  # evaluated block by block when placed
            value: Any = PerInstance(arg.value, dict(env), self.globals, per_instance)
        else:
            value, problem = suits(what, param, self.eval(arg.value, env), arg.value.span)
            if problem is not None:
                return problem
            if bound.kind == "stage" and param.name == "block" and getattr(value, "kind", None) != "block":
                return not_a_block(value, arg.value.span)
        bound.args[param.name], bound.exprs[param.name], bound.arg_spans[param.name] = value, arg.value, arg.span
        return None
