"""Counting a network before placing it: its graph nodes (the E601 limit) and its stage blocks
at each depth of stage nesting (the instance value ``net_count``).

:class:`LayerCounter` walks what elaboration walks, by the same rules (:mod:`resdsl.semantics.walk`:
so ``repeat=n`` and block arguments are known, and the stage rule is the placer's), into a scratch
collector (elaboration reports the problems), and remembers the size
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resdsl.diagnostics import Collector
from resdsl.semantics.limits import MAX_BLOCK_DEPTH
from resdsl.semantics.values import Failed, LayerCall, PerInstance
from resdsl.semantics.walk import Frame, StageWalk, Walker
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


class CountFrame(Frame):
    """A body being counted: the nodes it holds so far."""

    def __init__(self, body: Sequence[ast.Stmt], network: bool) -> None:
        super().__init__(body, network)
        self.total = 0


@dataclass
class CountedStage(StageWalk):
    """A stage being counted: its nodes so far, and what the block counted now found before it."""

    total: int = 0
    first: int = 0  # the nodes of block 0 (the stage's stride and shortcut make it differ)
    before: dict[int, int] | None = None
    reads: int = 0


class LayerCounter(Walker[CountFrame, None, int, CountedStage]):
    """Counts the graph nodes and stage blocks a network body would have, building none."""

    failures = (Failed, RecursionError)
    instance_failures = (Failed, RecursionError)  # one block of a stage that reads what is unknown here

    def __init__(self, program: Program, limit: int | None = None) -> None:
        super().__init__(program, Collector())
        self.limit = limit  # a stage counted block by block stops past it
        # block sizes per (block, arguments): the size and the stage blocks below, per relative depth
        self._sizes: dict[tuple, tuple[int, dict[int, int]]] = {}
        self.known: dict[int, int] = {}  # net_count per depth, from the passes before
        self._reset()

    def _reset(self) -> None:
        self.stage_depth = 0
        self.stage_blocks = {}  # stage blocks counted so far, per depth
        self.missing = False  # a block argument read a net_count this pass does not know
        self.unsure: int | None = None
        self.partial = False
        self.context_reads = 0  # instance values read that depend on the position, not the arguments

    def network(self, body: Sequence[ast.Stmt], env: dict[str, Any], globals: dict[str, ast.Definition]) -> Count:
        self.globals = globals
        while True:
            self._reset()
            nodes = 1 + self._count_body(body, dict(env), True)  # + the input node
            depth = next(d for d in range(MAX_BLOCK_DEPTH + 2) if d not in self.known)
            if not self.missing or depth > MAX_BLOCK_DEPTH:
                return Count(nodes, dict(self.stage_blocks), self.unsure, self.partial)
            self.known[depth] = self.stage_blocks.get(depth, 0)  # exact: every shallower total was known

    def _count_body(self, body: Sequence[ast.Stmt], env: dict[str, Any], network: bool) -> int:
        frame = CountFrame(body, network)
        self.read_body(body, env, frame)
        return frame.total

    def walk_statement(self, value: LayerCall, name: str, anonymous: bool, frame: CountFrame) -> None:
        frame.total += self.walk(value, None)

    def walk_residual(self, call: ast.Call, env: dict[str, Any], frame: CountFrame) -> None:
        bound, _ = self.read_residual(call, env, frame)
        frame.total += int(bound.args["shortcut"] != "none")  # a plain network's unit adds nothing

    def walk_failed(self, stmt: ast.Stmt, name: str, frame: CountFrame) -> None:
        frame.total += 1  # its error node

    def size(self, call: LayerCall) -> int:
        """The graph nodes one layer makes."""
        return self.walk(call, None)

    def walk_op(self, call: LayerCall, site: None) -> int:
        return 1

    def walk_sequential(self, call: LayerCall, site: None) -> int:
        return sum(self.walk(self.sequential_item(item), None) for item in call.args["layers"])

    def walk_gate(self, call: LayerCall, site: None) -> int:
        return self.walk(self.gate_branch(call), None) + 1  # + the multiply

    def _over(self, total: int) -> bool:
        """Past the limit: a stage counted block by block stops (E601 follows)."""
        if self.limit is not None and total > self.limit:
            self.partial = True
            return True
        return False

    # -- stages -------------------------------------------------------------------------

    def open_stage(self, call: LayerCall, site: None) -> CountedStage:
        return CountedStage(call, "", call.args["repeat"], self.stage_depth)

    def stage_instance(self, stage: CountedStage, i: int, block: LayerCall | None) -> None:
        stage.before, stage.reads = dict(self.stage_blocks), self.context_reads
        stage.total += 1 if block is None else self.walk(block, None)

    def stage_done(self, stage: CountedStage, i: int) -> bool:
        """Block 1 of a stage whose blocks read nothing of their position stands for every later
        one: the rest is multiplied, not counted (a 10**9-block stage is counted in two)."""
        if i == 1 and not isinstance(stage.call.args["block"], PerInstance) and self.context_reads == stage.reads:
            rest, before = stage.repeat - 2, stage.before or {}
            last = stage.total - stage.first
            for depth, n in self.stage_blocks.items():  # the other later blocks hold what this one held
                self.stage_blocks[depth] = n + (n - before.get(depth, 0)) * rest
            self.stage_blocks[stage.depth] += rest  # and are blocks of this stage themselves
            stage.total += rest * last
            return True
        if i == 0:
            stage.first = stage.total
            return self._over(stage.total)  # block 1 may yet stand for the rest (exact count)
        # the blocks still to come hold at least one module each: a stage of 10**30 blocks that
        # read their position (a drop-path schedule) is over the limit at once, not after 10**5
        bound = stage.total + stage.repeat - i - 1
        if self._over(bound):
            stage.total = bound  # a lower bound, over the limit: E601 says "more than"
            return True
        return False

    def close_stage(self, stage: CountedStage) -> int:
        return stage.total

    def read_net_index(self, position: int, name: ast.Name) -> int:
        self.context_reads += 1
        return position

    def read_net_count(self, depth: int, name: ast.Name) -> int:
        self.context_reads += 1
        if depth in self.known:
            return self.known[depth]
        self.missing = True
        raise Failed

    def read_in_channels(self, stage: CountedStage, name: ast.Name) -> int:
        self.context_reads += 1
        depth = stage.depth
        self.unsure = depth + 1 if self.unsure is None else min(self.unsure, depth + 1)
        raise Failed

    # -- blocks -------------------------------------------------------------------------

    def walk_block(self, call: LayerCall, site: None) -> int:
        block_def = call.target
        assert isinstance(block_def, ast.BlockDef)
        memo = (id(block_def), _freeze(call.args))
        if memo in self._sizes:
            size, below = self._sizes[memo]
            for rel, n in below.items():
                depth = self.stage_depth + rel
                self.stage_blocks[depth] = self.stage_blocks.get(depth, 0) + n
            return size
        before, reads = dict(self.stage_blocks), self.context_reads
        try:
            with self.entering(call) as env:
                size = self._count_body(block_def.body, env, False)
        except Failed:
            size = 1  # nesting too deep, recursion, a default that fails: elaboration reports it
        if self.context_reads == reads and not self.partial:  # the same wherever the block is
            found = self.stage_blocks
            below = {d - self.stage_depth: n - before.get(d, 0) for d, n in found.items() if n != before.get(d, 0)}
            self._sizes[memo] = (size, below)
        return size
