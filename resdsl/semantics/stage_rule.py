"""The stage rule, written once for every walker of a network (:mod:`resdsl.semantics.walk`).

``stage(block(...), repeat=N)`` is N blocks: the first with the stage's stride and shortcut
(:func:`~resdsl.semantics.evaluate.first_block`), every one an instance of the one block the
stage repeats (E205), each with its instance values (``index``, ``count``, ``net_index``,
``net_count``, ``in_channels``) where a block argument reads them. :class:`StageRule` walks a
stage by that rule and leaves what is done with each block to the visitor's hooks
(``open_stage``, ``stage_instance``, ``close_stage`` ...): the placer places it, the layer
counter counts it (and may account for the rest of a stage at once: ``stage_done``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from resdsl.diagnostics import Collector, error
from resdsl.semantics.evaluate import Evaluator, InstanceValues, first_block
from resdsl.semantics.values import INSTANCE_NAMES, Failed, LayerCall, PerInstance, show_value
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.syntax.names import layer_name_problem

__all__ = ["StageRule", "StageWalk"]


@dataclass
class StageWalk:
    """One stage being walked: where its blocks go and what feeds the next one."""

    call: LayerCall
    path: str  # its module path ("layer1"; the counter's stages have none)
    repeat: int
    depth: int  # stage blocks enclosing it
    source: Any = None  # what feeds the next block (the placer's node; in_channels reads its channels)


S = TypeVar("S")  # where a layer goes: the placer's site, nothing for the counter
R = TypeVar("R")  # what walking a layer gives: the placer's (output, branch), the counter's size
W = TypeVar("W", bound=StageWalk)


class StageRule(Evaluator, Generic[S, R, W]):
    """Walks stages by the stage rule; a visitor says what each block of a stage does."""

    # what abandons only one block of a stage, the others walked on (the counter's: an unknown value)
    instance_failures: tuple[type[BaseException], ...] = ()

    def __init__(self, program: Program, collector: Collector) -> None:
        super().__init__(program, collector)
        self.stage_depth = 0  # stage blocks enclosing what is walked now
        self.stage_blocks: dict[int, int] = {}  # stage blocks walked so far, per depth (net_index)

    # -- stages: the stage rule -----------------------------------------------------------

    def walk_stage(self, call: LayerCall, site: S) -> R:
        """``stage(block(...), repeat=N)``: N blocks, the first with the stage's stride and
        shortcut (:func:`first_block`), every one of the block the stage repeats; a block
        argument that reads instance values is evaluated for each block with its own."""
        stage = self.open_stage(call, site)
        written = self._tolerant(partial(self.stage_block, stage, 0))
        if written is not None:
            self.stage_opened(stage, written)
            self._stage_sets(call, written)
        for i in range(stage.repeat):
            block = written if i == 0 else self._tolerant(partial(self.stage_block, stage, i))
            if block is not None and written is not None:
                block = first_block(call, block) if i == 0 else self._same_block(stage, i, block, written)
            self.stage_blocks[stage.depth] = self.stage_blocks.get(stage.depth, 0) + 1
            self.stage_depth += 1
            try:
                self.stage_instance(stage, i, block)
            finally:
                self.stage_depth -= 1
            if self.stage_done(stage, i):
                break
        return self.close_stage(stage)

    def _tolerant(self, make: Callable[[], LayerCall]) -> LayerCall | None:
        """A block of a stage, or None where a visitor walks on past one it cannot evaluate."""
        try:
            return make()
        except self.instance_failures:
            return None

    def stage_block(self, stage: W, i: int) -> LayerCall:
        """Block ``i`` of a stage as its block argument says, instance values bound."""
        block = stage.call.args["block"]
        if not isinstance(block, PerInstance):
            return block  # type: ignore[no-any-return]
        position = self.stage_blocks.get(stage.depth, 0)
        values = self.instance_values(stage, i, position)
        note = f"evaluated for block {stage.path}.{i} (index {i}, net_index {position})"
        with self.diags.within("block", "", note, stage.call.span):
            return self.instance_block(block, values)

    def instance_values(self, stage: W, i: int, position: int) -> InstanceValues:
        """The instance values of block ``i`` (:data:`INSTANCE_NAMES`, each a number or read when used)."""
        values: InstanceValues = {
            "index": i,
            "count": stage.repeat,
            "net_index": partial(self.read_net_index, position),
            "net_count": partial(self.read_net_count, stage.depth),
            "in_channels": partial(self.read_in_channels, stage),
        }
        assert tuple(values) == INSTANCE_NAMES
        return values

    def block_names(self, call: LayerCall) -> tuple[str, int]:
        """A stage's ``prefix=`` and ``start=``: its blocks are named prefix + number (E213 for a
        prefix that cannot start a module name). The names are keys of the stage's nn.Sequential,
        never attributes, so a hyphen may join the prefix and the number (torchvision's RegNet
        names its blocks ``block1-0``, ``block1-1`` ...)."""
        prefix, start = call.args.get("prefix", ""), call.args.get("start", 0)
        if prefix and layer_name_problem(f"{prefix}{start}".replace("-", "_")) is not None:
            self.diags.add(
                error(
                    "E213",
                    f"stage prefix {prefix!r} does not make module names ({prefix}{start}, {prefix}{start + 1}, ...)",
                    call.arg_spans.get("prefix", call.span),
                    help='a prefix is a name\'s start: letters, digits, underscores and hyphens, such as "b", '
                    '"denselayer" or "block1-"',
                )
            )
            raise Failed
        return prefix, start

    def _stage_sets(self, call: LayerCall, block: LayerCall) -> None:
        """E203 for a stride or shortcut the stage sets that its block has no parameter for."""
        assert isinstance(block.target, ast.BlockDef)
        block_params = {p.name for p in block.target.params}
        for key in ("stride", "shortcut"):
            if call.args.get(key) is not None and key not in block_params:
                self.diags.add(
                    error(
                        "E203",
                        f"block '{block.target.name}' has no parameter '{key}' for the stage to set",
                        call.arg_spans[key],
                        help=f"add a '{key}' parameter to block {block.target.name}",
                    )
                )
                raise Failed

    def _same_block(self, stage: W, i: int, block: LayerCall, written: LayerCall) -> LayerCall:
        """E205 where block ``i`` is another block than block 0: a stage repeats one block."""
        if block.target is not written.target:
            self.diags.add(
                error(
                    "E205",
                    f"a stage repeats one block: block {i} of {stage.path} is {show_value(block)}, "
                    f"block 0 is {getattr(written.target, 'name', '?')}",
                    stage.call.exprs["block"].span,
                    help="choose arguments by index (expand=1 if index == 0 else 6), not the block itself",
                )
            )
            raise Failed
        return block

    # what a visitor does with a stage
    def open_stage(self, call: LayerCall, site: S) -> W:
        raise NotImplementedError

    def stage_opened(self, stage: W, block: LayerCall) -> None:
        """Block 0 as its block argument says (before the stage's stride and shortcut)."""

    def stage_instance(self, stage: W, i: int, block: LayerCall | None) -> None:
        """Block ``i`` (None: it could not be evaluated, and the visitor walks on)."""
        raise NotImplementedError

    def stage_done(self, stage: W, i: int) -> bool:
        """After block ``i``: whether the visitor has accounted for the rest of the stage."""
        return False

    def close_stage(self, stage: W) -> R:
        raise NotImplementedError

    def read_net_index(self, position: int, name: ast.Name) -> int:
        return position

    def read_net_count(self, depth: int, name: ast.Name) -> int:
        raise NotImplementedError

    def read_in_channels(self, stage: W, name: ast.Name) -> int:
        raise NotImplementedError
