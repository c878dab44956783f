"""Evaluating expressions and binding call arguments against op and block signatures.

The evaluator computes with exact integers (``/`` must divide exactly), lists, booleans and
shortcut kinds; a call to an op, a block or ``stage`` evaluates to a :class:`LayerCall` that
elaboration later places in the graph. Problems become diagnostics and abandon the statement
(:class:`Failed`), so one run reports every independent mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from resdsl.diagnostics import Collector, Diagnostic, error
from resdsl.ir.repairs import floor_division
from resdsl.ops import OPS, OpDef, P
from resdsl.semantics.arith import Refused, arith, compare
from resdsl.semantics.hints import forgotten_import, kind_error, unknown_kind
from resdsl.semantics.values import (
    INSTANCE_HELP,
    INSTANCE_NAMES,
    POISON,
    SHORTCUTS,
    STAGE_PARAMS,
    TYPE_WORDS,
    CallKind,
    Failed,
    LayerCall,
    PerInstance,
    check_type,
    show_value,
    suggest,
    type_name,
    typo_fixes,
)
from resdsl.syntax import ast
from resdsl.syntax.ast import BUILTIN_FORMS
from resdsl.syntax.loader import Program, definition_params

# built-in forms that make a layer of layers (stage is bound like an op, residual is a statement)
FORMS = tuple(f for f in BUILTIN_FORMS if f not in ("stage", "residual"))

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


class Evaluator:
    """Evaluates expressions in an environment; binds arguments of calls."""

    def __init__(self, program: Program, collector: Collector) -> None:
        self.program = program
        self.diags = collector
        self.int_divisions: set[ast.BinOp] = set()
        self.globals: dict[str, ast.Definition] = {}
        self._tables: dict[int, tuple[ast.BlockDef, tuple[P, ...]]] = {}  # the key object is kept alive
        self._indexes: dict[int, tuple[Sequence[P], dict[str, P]]] = {}
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
            if expr.op == "/" and isinstance(value, int):  # an exact division of whole numbers
                self.int_divisions.add(expr)
            return value
        if isinstance(expr, ast.Cond):
            return self.eval(self.chosen(expr, env), env)  # only the chosen branch
        if isinstance(expr, ast.Call):
            return self._call(expr, env)
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
        if name.id in env:
            value = env[name.id]
            if value is POISON:
                raise Failed
            if isinstance(value, LayerCall):  # a layer held by a name is placed where it is used
                return replace(value, span=name.span)
            return value
        if name.id in SHORTCUTS:
            return SHORTCUTS[name.id]
        if name.id in OPS or isinstance(self.globals.get(name.id), ast.BlockDef):
            return self._call(ast.Call(name.id, (), name.span, name.span), env)
        if self.instance is not None and name.id in self.instance:
            value = self.instance[name.id]
            return value(name) if callable(value) else value
        options = list(env) + list(SHORTCUTS) + list(OPS) + list(self.globals)
        hint, fixes = forgotten_import(self.program, name.id, name.span) or (
            suggest(name.id, options),
            typo_fixes(name.id, options, name.span),
        )
        if name.id in INSTANCE_NAMES:
            hint, fixes = INSTANCE_HELP, ()
        self.diags.add(error("E201", f"unknown name '{name.id}'", name.span, help=hint, fixes=fixes))
        raise Failed

    def _shadowed(self, name: str, env: dict[str, Any]) -> bool:
        """Whether ``name`` means something other than an instance value where ``env`` is seen."""
        return name in env or name in SHORTCUTS or name in OPS or isinstance(self.globals.get(name), ast.BlockDef)

    def instance_reads(self, expr: ast.Expr, env: dict[str, Any]) -> frozenset[str]:
        """The instance values a stage's block argument reads (names nothing else defines)."""
        return frozenset(
            n.id
            for n in ast.walk(expr)
            if isinstance(n, ast.Name) and n.id in INSTANCE_NAMES and not self._shadowed(n.id, env)
        )

    def instance_block(self, deferred: PerInstance, values: InstanceValues) -> LayerCall:
        """A stage's block argument evaluated for one block, with that block's instance values."""
        saved = self.globals, self.instance
        self.globals, self.instance = deferred.globals, values
        try:
            value = self.eval(deferred.expr, dict(deferred.env))
        finally:
            self.globals, self.instance = saved
        if not isinstance(value, LayerCall) or value.kind != "block":
            self.diags.add(_not_a_block(value, deferred.expr.span))
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
        options = [
            *OPS,
            *(n for n, d in self.globals.items() if isinstance(d, ast.BlockDef)),
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
            if not isinstance(value, LayerCall) or value.kind not in ("op", "block", "sequential"):
                nested = isinstance(value, LayerCall)  # a stage or a gate: a layer, but not one that nests
                got = f"a {value.kind}" if nested else type_name(value)
                problems.append(
                    error(
                        "E205",
                        f"{call.func} takes ops, blocks or sequential groups, not {got}",
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
            return replace(base, span=call.span)  # placed here: diagnostics point at this call
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
                    hint = suggest(arg.name, list(by_name))
                    known = ", ".join(p.name for p in params) or "none"
                    problems.append(
                        error(
                            "E203",
                            f"{what} has no parameter '{arg.name}'",
                            arg.span,
                            help=hint or f"parameters: {known}",
                            fixes=typo_fixes(arg.name, list(by_name), arg.span),
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
            if unknown_kind(param, arg.value, env, self.globals):
                problems.append(kind_error(arg.value, env))  # type: ignore[arg-type]
                continue
            if per_instance and param.name == "block":  # evaluated block by block when placed
                args[param.name] = PerInstance(arg.value, dict(env), self.globals, per_instance)
                exprs[param.name], spans[param.name] = arg.value, arg.span
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
                            f"{what} argument '{param.name}' must be {TYPE_WORDS.get(param.type, param.type)}, "
                            f"got {type_name(value)} ({show_value(value)})",
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
            if param.maximum is not None and check_type(value, "float") and value > param.maximum:
                problems.append(
                    error(
                        "E213",
                        f"{what} argument '{param.name}' must be at most {param.maximum}, got {value}",
                        arg.value.span,
                    )
                )
                continue
            if param.choices and value not in param.choices:
                problems.append(
                    error(
                        "E213",
                        f"{what} argument '{param.name}' must be one of {', '.join(map(repr, param.choices))}, "
                        f"got {show_value(value)}",
                        arg.value.span,
                    )
                )
                continue
            if kind == "stage" and param.name == "block" and getattr(value, "kind", None) != "block":
                problems.append(_not_a_block(value, arg.value.span))
                continue
            args[param.name] = value
            exprs[param.name] = arg.value
            spans[param.name] = arg.span
        for param in params:
            if param.name in given:
                continue
            if param.required and not partial:
                problems.append(
                    error(
                        "E204",
                        f"{what} needs argument '{param.name}'",
                        call.span,
                        help=f"e.g. {what}({', '.join(p.name + '=...' for p in params if p.required)})",
                    )
                )
            elif fill_defaults and param.default_from:
                if param.default_from in args:  # else the missing argument it copies is reported
                    args[param.name] = args[param.default_from]
            elif fill_defaults:
                args[param.name] = param.default
        if problems:
            self.diags.extend(problems)
            raise Failed
        if broken:  # an argument failed to evaluate (already reported)
            raise Failed
        return LayerCall(kind, None, args, exprs, spans, call.span)

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
                hint = suggest(call.func, [n for n, d in self.globals.items() if not isinstance(d, ast.BlockDef)])
                self.diags.add(error("E104", f"no network named '{call.func}'", call.func_span, help=hint))
                return None, {}
            given: dict[str, Any] = {}
            params = definition_params(target, self.globals)
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
                            help=suggest(key, params),
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


def _not_a_block(value: Any, span: ast.Span) -> Diagnostic:
    return error(
        "E205",
        f"stage repeats a block, got {type_name(value)} ({show_value(value)})",
        span,
        help="define a block (block name(...) { ... }) and pass it: stage(name(64), repeat=2)",
    )
