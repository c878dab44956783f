"""Elaboration: from loaded files to one IR :class:`~resdsl.ir.Network` per network.

This stage resolves network aliases and parameters, the input shape and the size limits, and
adds the fine-tuning head; placing each statement's layers in the graph is :mod:`resdsl.semantics.place`'s
job, evaluation :mod:`resdsl.semantics.evaluate`'s, loading files :mod:`resdsl.syntax.loader`'s. Problems are
collected, not raised, so one run reports them all; a statement that fails leaves an ``error``
node whose shape is unknown, which keeps the checker from piling follow-on errors onto it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resdsl.diagnostics import Collector, error
from resdsl.diagnostics.fixes import span_text
from resdsl.ir import Network, Scope, ScopeKind
from resdsl.ir.init import DEFAULT_SCHEME, SCHEMES
from resdsl.ir.lower import finish
from resdsl.semantics.count import LayerCounter
from resdsl.semantics.limits import Limits
from resdsl.semantics.place import Placer, TooLarge
from resdsl.semantics.values import SHORTCUTS, Failed, LayerCall, ShortcutKind, show_value, suggest
from resdsl.syntax import ast
from resdsl.syntax.loader import Program, definition_params, display_path, load, network_params

__all__ = [
    "SHORTCUTS",
    "Elaborator",
    "Failed",
    "LayerCall",
    "Program",
    "ShortcutKind",
    "display_path",
    "load",
    "network_params",
]

# -- the elaborator -----------------------------------------------------------------------


class Elaborator(Placer):
    """Turns one network definition (with its visible blocks) into an IR network."""

    def __init__(self, program: Program, collector: Collector, limits: Limits | None = None) -> None:
        super().__init__(program, collector)
        self.limits = limits or Limits()

    # entry point
    def network(
        self,
        definition: ast.NetworkDef | ast.NetworkAlias,
        overrides: dict[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
        head: int | None = None,
    ) -> Network | None:
        """``head=N`` adds ``head = linear(N)`` after the network's last statement (fine-tuning
        mode 3), so every back end, the summary and the checker see it as a layer of the spec."""
        self.globals = self.program.definitions(definition.span.file)
        name = definition.name
        target, alias_args = self._resolve_alias(definition)
        if target is None:
            return None
        body = target.body
        if head is not None:
            extra = self._head(target, head)
            if extra is None:
                return None
            body = (*body, extra)
        params = self._network_params(target, alias_args, overrides or {})
        if params is None:
            return None
        root = Scope(ScopeKind.NETWORK, name, "", target.span)
        read = self._input_and_meta(name, target, params, input_shape)
        if read is None:
            return None
        shape, declared, meta = read
        if not self._count(definition, body, params):
            return None
        inp = self._node("input", "input", {}, {}, "input", "", target.span, None)
        inp.shape = tuple(shape)
        root.input = inp.id
        try:
            root.output = self._body(body, root, dict(params), inp.id)
        except TooLarge:
            return None
        finish(self.graph, root)
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
            alias=definition if isinstance(definition, ast.NetworkAlias) else None,
            overridden=frozenset(overrides or {}),
            head=head,
            declared_input=declared,
        )

    def _input_and_meta(
        self, name: str, target: ast.NetworkDef, params: dict[str, Any], input_shape: Sequence[int] | None
    ) -> tuple[tuple[int, ...], tuple[int, ...] | None, dict[str, Any]] | None:
        """The input shape (``input_shape``, else the declared one: E215 without either, E213 for
        a bad one), the declared one (the ``input`` statement's sizes with these parameters) and
        the evaluated ``meta`` entries of a network."""
        meta: dict[str, Any] = {}
        declared: tuple[int, ...] | None = None
        seen = False
        for stmt in target.body:
            if isinstance(stmt, ast.InputStmt):
                if seen:
                    self.diags.add(error("E217", "input is declared twice", stmt.span))
                seen = True
                declared = self._input_sizes(name, stmt, params)
                if declared is None:
                    return None
            elif isinstance(stmt, ast.MetaStmt):
                for entry in stmt.entries:
                    try:
                        meta[entry.name] = self.eval(entry.value, dict(params))
                    except Failed:
                        continue
                    if entry.name == "init" and not self._known_scheme(meta["init"], entry.value.span):
                        return None
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
        return shape, declared, meta

    def _known_scheme(self, name: object, span: ast.Span) -> bool:
        """Whether ``meta { init = name }`` names a scheme of resdsl.ir.init (E213 if not)."""
        if isinstance(name, str) and (name == DEFAULT_SCHEME or name in SCHEMES):
            return True
        known = ", ".join(repr(s) for s in [DEFAULT_SCHEME, *SCHEMES])
        message = f"init {show_value(name)} names no initialisation scheme; the schemes: {known}"
        self.diags.add(error("E213", message, span))
        return False

    def _input_sizes(self, name: str, stmt: ast.InputStmt, params: dict[str, Any]) -> tuple[int, ...] | None:
        """The sizes of ``input``, each evaluated with the network's parameters (E205 for one
        that is not a whole number, E213 for one below 1, at that size); None after an error."""
        sizes: list[int] = []
        for dim in stmt.dims:
            try:
                value = self.eval(dim, dict(params))
            except Failed:
                return None
            shown = span_text(self.program.sources.get(dim.span.file), dim.span) or "the size"
            if isinstance(value, bool) or not isinstance(value, int):
                message = f"input size {shown} of network '{name}' is {show_value(value)}, not a whole number"
                help = "sizes are whole numbers: use // for a division that rounds down"
                self.diags.add(error("E205", message, dim.span, help=help))
                return None
            if value < 1:
                message = f"input size {shown} of network '{name}' is {value}; sizes must be at least 1"
                self.diags.add(error("E213", message, dim.span))
                return None
            sizes.append(value)
        return tuple(sizes)

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

    def _count(self, definition: ast.Definition, body: Sequence[ast.Stmt], params: dict[str, Any]) -> bool:
        """Count the network before placing it: E601 past the layer limit (False), and the
        stage blocks per depth that ``net_count`` gives."""
        counted = LayerCounter(self.program, self.limits.max_layers).network(body, params, self.globals)
        limit = self.limits.max_layers
        if counted.nodes > limit:
            size = f"more than {limit:,}" if counted.partial else f"{counted.nodes:,}"
            self.diags.add(
                error(
                    "E601",
                    f"network '{definition.name}' would have {size} layers after unrolling; the limit is {limit:,}",
                    definition.name_span,
                    help="check the repeat counts; raise the limit with --max-layers"
                    + ("" if counted.partial else f" {counted.nodes} (API: max_layers={counted.nodes})")
                    + " if this is meant",
                )
            )
            return False
        self.net_totals, self.net_unsure = counted.stage_blocks, counted.unsure
        if counted.unsure is not None:  # some block arguments read in_channels: sized while placing
            self.node_limit = limit
        return True

    def _head(self, target: ast.NetworkDef, outputs: int) -> ast.Assign | None:
        """The statement ``head = linear(outputs)``, or None with E708 reported."""
        span = ast.Span("<head>", 0, 0, 0, 0)
        clash = next((s for s in target.body if isinstance(s, ast.Assign) and s.name == "head"), None)
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            self.diags.add(error("E708", f"head must be a positive number of outputs, got {outputs!r}", span))
            return None
        if clash is not None:
            self.diags.add(
                error(
                    "E708",
                    f"{target.name} already defines 'head', so head={outputs} cannot add a layer of that name",
                    clash.name_span,
                    help="rename it in the spec, or leave out --head (head=)",
                )
            )
            return None
        call = ast.Call("linear", (ast.Arg(None, ast.IntLit(outputs, span), span),), span, span)
        return ast.Assign("head", call, span, span)
