"""Limits: inputs that would exhaust time or memory are refused before anything is built.

A spec is a program: ``stage(basic(16), repeat=10**9)`` or forty blocks that each use the one
before twice describe networks that no machine holds. Every limit here is checked before the
thing it guards is unrolled or allocated, has its own diagnostic code, and names itself and how
to raise it in its message:

- E601 layers after unrolling, counted by :class:`LayerCounter` without unrolling (block sizes
  are memoised per block and arguments, so a 2**40-layer spec is counted in 40 steps);
- E602 nesting: expressions (the parser), blocks inside blocks, imports inside imports;
- E603 parameters and E604 activation memory per sample, estimated by the checker from the
  inferred shapes (no tensor exists), so ``check`` reports them and ``build`` never starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from resdsl.diagnostics import Collector, Diagnostic, error
from resdsl.ir import Network
from resdsl.semantics.evaluate import Evaluator
from resdsl.semantics.values import CallKind, Failed, LayerCall
from resdsl.syntax import ast
from resdsl.syntax.loader import MAX_IMPORT_DEPTH, Program

MAX_BLOCK_DEPTH = 50  # blocks used inside blocks (the shipped library nests 2 deep)

__all__ = ["MAX_BLOCK_DEPTH", "MAX_IMPORT_DEPTH", "LayerCounter", "Limits", "activation_bytes", "check_budget"]
BYTES_PER_VALUE = 4  # float32, what torch builds by default


@dataclass(frozen=True)
class Limits:
    """Default ceilings; each can be raised from the CLI and the API."""

    max_layers: int = 100_000  # ResNet-1202 has 4,206 graph nodes
    max_params: int = 2_000_000_000  # 8 GB of float32 weights
    max_activation_bytes: int = 64 * 2**30  # per sample, every layer's output kept for backward

    @classmethod
    def of(
        cls, max_layers: int | None = None, max_params: int | None = None, max_activation_gb: float | None = None
    ) -> Limits:
        default = cls()
        return cls(
            max_layers if max_layers is not None else default.max_layers,
            max_params if max_params is not None else default.max_params,
            int(max_activation_gb * 2**30) if max_activation_gb is not None else default.max_activation_bytes,
        )


def activation_bytes(network: Network) -> int:
    """Estimated memory of one sample's activations in training: every layer's output, float32."""
    total = 0
    for layer in network.layers():
        if layer.shape is not None and not layer.inplace:
            total += math.prod(layer.shape) * BYTES_PER_VALUE
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def check_budget(network: Network, limits: Limits) -> list[Diagnostic]:
    """E603/E604 for a checked network whose size no build should attempt."""
    span = network.definition.name_span if network.definition is not None else network.span
    out = []
    params = network.num_params
    if params > limits.max_params:
        out.append(
            error(
                "E603",
                f"network '{network.name}' has {params:,} parameters ({human_bytes(params * BYTES_PER_VALUE)}); "
                f"the limit is {limits.max_params:,}",
                span,
                help=f"raise the limit with --max-params {params} (API: max_params={params}) if this is meant",
            )
        )
    memory = activation_bytes(network)
    if memory > limits.max_activation_bytes:
        need = math.ceil(memory / 2**30)
        out.append(
            error(
                "E604",
                f"network '{network.name}' needs about {human_bytes(memory)} of activations per sample at input "
                f"{' x '.join(map(str, network.input_shape))}; the limit is {human_bytes(limits.max_activation_bytes)}",
                span,
                help=f"check a smaller --input, or raise the limit with --max-activation-gb {need} "
                f"(API: max_activation_gb={need})",
            )
        )
    return out


def _freeze(value: Any) -> Any:
    """A hashable key for a value (block arguments memoise block sizes)."""
    if isinstance(value, (list, tuple)):
        return ("list", *(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, LayerCall):
        return ("call", id(value.target), _freeze(value.args))
    if isinstance(value, (int, float, str, bool)) or value is None:
        return (type(value).__name__, value)
    return ("object", id(value))


class LayerCounter(Evaluator):
    """Counts the graph nodes a network body would have, without building any of them.

    It evaluates what elaboration evaluates (so ``repeat=n`` and block arguments are known)
    into a scratch collector (elaboration reports the problems), and remembers the size of
    each block per arguments. Statements that fail count as one node, as their error node does.
    """

    def __init__(self, program: Program) -> None:
        super().__init__(program, Collector())
        self._sizes: dict[tuple, int] = {}
        self._active: list[int] = []

    def network(self, body: Sequence[ast.Stmt], env: dict[str, Any], globals: dict[str, ast.Definition]) -> int:
        self.globals = globals
        return 1 + self._body(body, dict(env))  # + the input node

    def _body(self, body: Iterable[ast.Stmt], env: dict[str, Any]) -> int:
        total = 0
        for stmt in body:
            if isinstance(stmt, (ast.InputStmt, ast.MetaStmt)):
                continue
            try:
                if isinstance(stmt, ast.LayerStmt) and isinstance(stmt.value, ast.Call):
                    if stmt.value.func == "residual" and "residual" not in env:
                        total += 1
                        continue
                value = self.eval(stmt.value, env)
            except (Failed, RecursionError):
                total += 1
                continue
            if isinstance(value, LayerCall):
                total += self.size(value)
            elif isinstance(stmt, ast.Assign):
                env[stmt.name] = value
            else:
                total += 1
        return total

    def size(self, call: LayerCall) -> int:
        if call.kind == "op":
            return 1
        if call.kind == "sequential":
            return sum(self.size(item) for item in call.args["layers"])
        if call.kind == "gate":
            return self.size(call.args["branch"]) + 1
        if call.kind == "stage":
            block: LayerCall = call.args["block"]
            repeat = call.args["repeat"]
            first_args = dict(block.args)
            for key in ("stride", "shortcut"):
                if call.args.get(key) is not None:
                    first_args[key] = call.args[key]
            first = LayerCall(CallKind.BLOCK, block.target, first_args, block.exprs, block.arg_spans, block.span)
            return self.size(first) + (repeat - 1) * self.size(block) if repeat > 1 else self.size(first)
        block_def = call.target
        assert isinstance(block_def, ast.BlockDef)
        memo = (id(block_def), _freeze(call.args))
        if memo in self._sizes:
            return self._sizes[memo]
        if id(block_def) in self._active or len(self._active) >= MAX_BLOCK_DEPTH:
            return 1  # recursion or nesting past the limit: elaboration reports it
        saved = self.globals
        self._active.append(id(block_def))
        try:
            self.globals = self.program.definitions(block_def.span.file)
            env: dict[str, Any] = {}
            for param in block_def.params:
                if param.name in call.args:
                    env[param.name] = call.args[param.name]
                elif param.default is not None:
                    env[param.name] = self.eval(param.default, dict(env))
            size = self._body(block_def.body, env)
        except Failed:
            size = 1
        finally:
            self._active.pop()
            self.globals = saved
        self._sizes[memo] = size
        return size
