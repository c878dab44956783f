"""Counting a network before placing it: its graph nodes (the E601 limit) and its stage blocks
at each depth of stage nesting (the instance value ``net_count``).

:class:`LayerCounter` evaluates what elaboration evaluates (so ``repeat=n`` and block arguments
are known) into a scratch collector (elaboration reports the problems), and remembers the size
of each block per arguments, so a 2**40-layer spec is counted in 40 steps. Statements that fail
count as one node, as their error node does.

A stage whose block argument reads instance values is counted block by block, with ``index``,
``count`` and ``net_index`` exact. ``net_count`` at a depth is known once the shallower depths
are counted (the stages at a depth are found without evaluating any block argument of that
depth), so :meth:`LayerCounter.network` counts in passes, one more depth each, until no block
argument asks for a total not yet known. ``in_channels`` needs shapes, which exist only while
placing: a block argument that reads it counts as one node here, and the totals of the depths
below it as unsure (:attr:`Count.unsure`); elaboration then enforces the layer limit as it
places, and refuses ``net_count`` at those depths (E218).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from resdsl.diagnostics import Collector
from resdsl.semantics.evaluate import Evaluator, first_block
from resdsl.semantics.limits import MAX_BLOCK_DEPTH
from resdsl.semantics.values import Failed, LayerCall, PerInstance
from resdsl.syntax import ast
from resdsl.syntax.loader import Program

__all__ = ["Count", "LayerCounter"]


@dataclass(frozen=True)
class Count:
    """What the counter found for one network."""

    nodes: int  # graph nodes after unrolling, the input included
    stage_blocks: dict[int, int]  # per depth of stage nesting (0: stages in no stage's block): net_count
    unsure: int | None = None  # the shallowest depth whose total depends on in_channels (not known here)
    partial: bool = False  # counting stopped past the limit: ``nodes`` is a lower bound


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
    """Counts the graph nodes and stage blocks a network body would have, building none."""

    def __init__(self, program: Program, limit: int | None = None) -> None:
        super().__init__(program, Collector())
        self.limit = limit  # a stage counted block by block stops past it
        # block sizes per (block, arguments): the size and the stage blocks below, per relative depth
        self._sizes: dict[tuple, tuple[int, dict[int, int]]] = {}
        self._active: list[int] = []
        self.known: dict[int, int] = {}  # net_count per depth, from the passes before
        self._reset()

    def _reset(self) -> None:
        self.depth = 0  # stage blocks enclosing what is counted now
        self.found: dict[int, int] = {}  # stage blocks counted so far, per depth
        self.missing = False  # a block argument read a net_count this pass does not know
        self.unsure: int | None = None
        self.partial = False
        self.context_reads = 0  # instance values read that depend on the position, not the arguments

    def network(self, body: Sequence[ast.Stmt], env: dict[str, Any], globals: dict[str, ast.Definition]) -> Count:
        self.globals = globals
        while True:
            self._reset()
            nodes = 1 + self._body(body, dict(env))  # + the input node
            depth = next(d for d in range(MAX_BLOCK_DEPTH + 2) if d not in self.known)
            if not self.missing or depth > MAX_BLOCK_DEPTH:
                return Count(nodes, dict(self.found), self.unsure, self.partial)
            self.known[depth] = self.found.get(depth, 0)  # exact: every shallower total was known

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
            return self._stage(call)
        return self._block(call)

    def _add(self, depth: int, n: int) -> None:
        self.found[depth] = self.found.get(depth, 0) + n

    def _over(self, total: int) -> bool:
        """Past the limit: a stage counted block by block stops (E601 follows)."""
        if self.limit is not None and total > self.limit:
            self.partial = True
            return True
        return False

    # -- stages -------------------------------------------------------------------------

    def _stage(self, call: LayerCall) -> int:
        block, repeat = call.args["block"], call.args["repeat"]
        if isinstance(block, PerInstance):
            return self._stage_by_block(call, block, repeat)
        self._add(self.depth, repeat)
        self.depth += 1
        try:
            first = self.size(first_block(call, block))
            if repeat == 1:
                return first
            before, reads = dict(self.found), self.context_reads
            rest = self.size(block)
            if self.context_reads != reads:  # blocks below read their position: count each
                total = first + rest
                for _ in range(repeat - 2):
                    if self._over(total):
                        break
                    total += self.size(block)
                return total
            for depth, n in self.found.items():  # the other later blocks hold what this one held
                self.found[depth] = n + (n - before.get(depth, 0)) * (repeat - 2)
            return first + (repeat - 1) * rest
        finally:
            self.depth -= 1

    def _stage_by_block(self, call: LayerCall, block: PerInstance, repeat: int) -> int:
        depth, total = self.depth, 0
        for i in range(repeat):
            values: dict[str, int | Callable[[ast.Name], int]] = {
                "index": i,
                "count": repeat,
                "net_index": partial(self._position, self.found.get(depth, 0)),
                "net_count": partial(self._net_count, depth),
                "in_channels": partial(self._channels, depth),
            }
            try:
                instance: LayerCall | None = self.instance_block(block, values)
            except (Failed, RecursionError):
                instance = None
            self._add(depth, 1)
            self.depth += 1
            try:
                total += 1 if instance is None else self.size(first_block(call, instance) if i == 0 else instance)
            finally:
                self.depth -= 1
            if self._over(total):
                break
        return total

    def _position(self, value: int, name: ast.Name) -> int:
        self.context_reads += 1
        return value

    def _net_count(self, depth: int, name: ast.Name) -> int:
        self.context_reads += 1
        if depth in self.known:
            return self.known[depth]
        self.missing = True
        raise Failed

    def _channels(self, depth: int, name: ast.Name) -> int:
        self.context_reads += 1
        self.unsure = depth + 1 if self.unsure is None else min(self.unsure, depth + 1)
        raise Failed

    # -- blocks -------------------------------------------------------------------------

    def _block(self, call: LayerCall) -> int:
        block_def = call.target
        assert isinstance(block_def, ast.BlockDef)
        memo = (id(block_def), _freeze(call.args))
        if memo in self._sizes:
            size, below = self._sizes[memo]
            for rel, n in below.items():
                self._add(self.depth + rel, n)
            return size
        if id(block_def) in self._active or len(self._active) >= MAX_BLOCK_DEPTH:
            return 1  # recursion or nesting past the limit: elaboration reports it
        saved = self.globals
        before, reads = dict(self.found), self.context_reads
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
        if self.context_reads == reads and not self.partial:  # the same wherever the block is
            below = {d - self.depth: n - before.get(d, 0) for d, n in self.found.items() if n != before.get(d, 0)}
            self._sizes[memo] = (size, below)
        return size
