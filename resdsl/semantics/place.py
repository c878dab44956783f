"""Placing layers in the graph: the statements of network and block bodies become IR nodes.

The half of elaboration that places what the walk of the language (:mod:`resdsl.semantics.walk`)
reads: block instances of stages, residuals and gates, every layer a node of the graph with the
scope it belongs to. :mod:`resdsl.semantics.elaborate` drives it for one network (aliases,
parameters, the input, the size limits). Problems are collected, not raised; a statement that
fails leaves an ``error`` node whose shape is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from resdsl.diagnostics import Collector, error, warning
from resdsl.ir import Layer, Scope, ScopeKind, instance_note
from resdsl.ir.repairs import move_stride
from resdsl.ops import OpDef, channels_of
from resdsl.semantics.channels import PlacedShapes
from resdsl.semantics.values import Failed, LayerCall, PerInstance
from resdsl.semantics.walk import Frame, StageWalk, Walker
from resdsl.syntax import ast
from resdsl.syntax.loader import Program
from resdsl.syntax.names import FreshNames, bad_layer_name, layer_name_problem

__all__ = ["Placer", "TooLarge"]


class TooLarge(Exception):
    """Abandons a network whose unrolling passed the layer limit (E601 was reported)."""


@dataclass
class Site:
    """Where a layer goes: its name, the scope it joins, the node that feeds it, and where the
    next residual's shortcut starts."""

    name: str
    anonymous: bool
    scope: Scope
    cur: str
    branch: str


class PlaceFrame(Frame):
    """A body being placed: its scope, its last node and where the next shortcut starts."""

    def __init__(self, body: Sequence[ast.Stmt], scope: Scope, cur: str) -> None:
        super().__init__(body, scope.kind == "network")
        self.scope, self.cur, self.branch = scope, cur, cur


@dataclass
class PlacedStage(StageWalk):
    """A stage being placed: its scope, and the site it was called at."""

    scope: Scope = field(default_factory=lambda: Scope(ScopeKind.STAGE, "", "", ast.NO_SPAN))
    site: Site | None = None


Placed = tuple[str, str]  # the node a layer ends at, and where the next residual's shortcut starts


class Placer(Walker[PlaceFrame, Site, Placed, PlacedStage]):
    """Builds the graph and module tree of one network, statement by statement."""

    def __init__(self, program: Program, collector: Collector) -> None:
        super().__init__(program, collector)
        self.graph: nx.DiGraph = nx.DiGraph()
        self.order: list[str] = []
        # instance values: the stage blocks per depth in all (counted before placing), the
        # first depth whose total is unsure
        self.net_totals: dict[int, int] = {}
        self.net_unsure: int | None = None
        self.node_limit: int | None = None  # the layer limit, where counting could not check it
        self.shapes = PlacedShapes(self.graph, self.order)  # what in_channels reads
        self._node_ids = FreshNames(self.graph, sep="#")

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
        node_id = self._node_ids(path or name)
        layer = Layer(node_id, op, attrs, exprs, name, module, path, span, scope, anonymous)
        self.graph.add_node(node_id, layer=layer)
        self.order.append(node_id)
        if scope is not None:
            scope.items.append(layer)
        return layer

    def _connect(self, src: str, dst: str, port: int = 0) -> None:
        self.graph.add_edge(src, dst, port=port)

    # -- bodies ---------------------------------------------------------------------------

    def _body(self, body: Sequence[ast.Stmt], scope: Scope, env: dict[str, Any], cur: str) -> str:
        """Place ``body`` in ``scope`` after node ``cur``; gives the node it ends at."""
        frame = PlaceFrame(body, scope, cur)
        self.read_body(body, env, frame)
        return frame.cur

    def body_name(self, frame: PlaceFrame) -> str:
        return f"{frame.scope.kind} '{frame.scope.path or frame.scope.name}'"

    def walk_statement(self, value: LayerCall, name: str, anonymous: bool, frame: PlaceFrame) -> str:
        tap = self.merge_tap(value, frame)  # a merge's other operand, where a parameter names it
        branch = frame.branch if tap is None else tap
        frame.cur, frame.branch = self.walk(value, Site(name, anonymous, frame.scope, frame.cur, branch))
        return frame.cur

    def walk_value(self, stmt: ast.Assign, frame: PlaceFrame) -> None:
        frame.scope.lets.append((stmt.name, stmt.value))
        frame.scope.let_at.append(len(frame.scope.items))

    def walk_failed(self, stmt: ast.Stmt, name: str, frame: PlaceFrame) -> None:
        scope = frame.scope
        bad = self._node("error", name, {}, {}, name, _join(scope.path, name), stmt.span, scope, True)
        self._connect(frame.cur, bad.id)
        frame.cur = bad.id

    def walk_residual(self, call: ast.Call, env: dict[str, Any], frame: PlaceFrame) -> None:
        frame.cur, frame.branch = self._residual(call, frame, env)

    # -- layers ---------------------------------------------------------------------------

    def walk_op(self, call: LayerCall, site: Site) -> Placed:
        op = call.target
        assert isinstance(op, OpDef)
        path = _join(site.scope.path, site.name)
        layer = self._node(
            op.name, site.name, call.args, call.exprs, site.name, path, call.span, site.scope, site.anonymous
        )
        self._connect(site.cur, layer.id)
        if op.merge is not None:  # concat(): the main branch and the block input, as a residual
            self._connect(site.branch, layer.id, 1)
            return layer.id, layer.id
        return layer.id, site.branch

    def walk_block(self, call: LayerCall, site: Site) -> Placed:
        sub = self._block(call, site.name, _join(site.scope.path, site.name), site.scope, site.cur)
        return sub.output, site.branch

    def walk_sequential(self, call: LayerCall, site: Site) -> Placed:
        """Layers numbered by position, like an ``nn.Sequential`` (``conv1.0``, ``conv1.3``)."""
        path = _join(site.scope.path, site.name)
        group = Scope(ScopeKind.SEQUENTIAL, site.name, path, call.span, input=site.cur)
        site.scope.items.append(group)
        out = site.cur
        for i, item in enumerate(call.args["layers"]):
            out, _ = self.walk(self.sequential_item(item), Site(str(i), False, group, out, out))
        group.output = out
        return out, site.branch

    def walk_gate(self, call: LayerCall, site: Site) -> Placed:
        """The input times what a side branch computes from it (squeeze-excitation): the branch
        is a child named after the gate, the multiply a merge node checked like an addition."""
        name, parent, cur = site.name, site.scope, site.cur
        gate_out, _ = self.walk(self.gate_branch(call), Site(name, False, parent, cur, cur))
        side = parent.items[-1]
        assert isinstance(side, Scope), "a gate's branch is a block or a sequential group"
        side.side = True
        mul_path = _join(parent.path, f"{name}_mul")
        mul = self._node("mul", f"{name}_mul", {}, {}, f"{name}_mul", mul_path, call.span, parent, True)
        self._connect(cur, mul.id, 0)
        self._connect(gate_out, mul.id, 1)
        return mul.id, site.branch

    def _block(self, call: LayerCall, name: str, path: str, parent: Scope, cur: str) -> Scope:
        with self.entering(call) as env:
            block = call.target
            assert isinstance(block, ast.BlockDef)
            scope = Scope(
                ScopeKind.BLOCK,
                name,
                path,
                call.span,
                input=cur,
                block=block,
                args=dict(env),
                arg_exprs=dict(call.exprs),
            )
            parent.items.append(scope)
            with self.diags.within("block", call.span.file, instance_note(scope), call.span):
                scope.output = self._body(block.body, scope, env, cur)
        return scope

    # -- stages -----------------------------------------------------------------------------

    def open_stage(self, call: LayerCall, site: Site) -> PlacedStage:
        path = _join(site.scope.path, site.name)
        scope = Scope(ScopeKind.STAGE, site.name, path, call.span, input=site.cur)
        scope.repeat, scope.repeat_expr = call.args["repeat"], call.exprs.get("repeat")
        scope.prefix, scope.start = self.block_names(call)
        depth = self.stage_depth
        scope.depth, scope.net_start = depth, self.stage_blocks.get(depth, 0)
        scope.net_count = self.net_totals.get(depth, 0)
        if isinstance(call.args["block"], PerInstance):
            scope.instance_names = call.args["block"].names
        return PlacedStage(call, path, scope.repeat, depth, site.cur, scope, site)

    def stage_opened(self, stage: PlacedStage, block: LayerCall) -> None:
        assert isinstance(block.target, ast.BlockDef)
        stage.scope.block, stage.scope.arg_exprs = block.target, dict(block.exprs)  # what later blocks get
        self._lint_stride(stage, block)

    def _lint_stride(self, stage: PlacedStage, block: LayerCall) -> None:
        """W404 for a stride given to every block (not one chosen per block by instance values)."""
        assert isinstance(block.target, ast.BlockDef) and stage.site is not None
        given, repeat, value = block.args.get("stride"), stage.repeat, stage.call
        written = block.exprs.get("stride")
        chosen = written is not None and any(
            isinstance(n, ast.Name) and n.id in stage.scope.instance_names for n in ast.walk(written)
        )
        if repeat > 1 and isinstance(given, int) and given != 1 and "stride" in block.arg_spans and not chosen:
            self.diags.add(
                warning(
                    "W404",
                    f"stride={given} given to {block.target.name} inside a stage strides all {repeat} blocks",
                    block.arg_spans["stride"],
                    notes=["a stage's stride= applies to its first block only, as the paper downsamples once"],
                    help=f"move it to the stage: {stage.site.name} = stage({block.target.name}(...), "
                    f"repeat={repeat}, stride={given})",
                    fixes=move_stride(self.program.sources, value.span, value.arg_spans, block.arg_spans, given),
                )
            )

    def stage_instance(self, stage: PlacedStage, i: int, block: LayerCall | None) -> None:
        assert block is not None and stage.site is not None  # the placer walks on past no block
        if i == 0:
            stage.site.scope.items.append(stage.scope)
        name = stage.scope.child_name(i)
        stage.source = self._block(block, name, _join(stage.path, name), stage.scope, stage.source).output
        stage.scope.output = stage.source

    def stage_done(self, stage: PlacedStage, i: int) -> bool:
        self._check_size(stage.call.span)
        return False

    def close_stage(self, stage: PlacedStage) -> Placed:
        assert stage.site is not None
        return stage.source, stage.site.branch

    def read_net_count(self, depth: int, name: ast.Name) -> int:
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

    def read_in_channels(self, stage: PlacedStage, name: ast.Name) -> int:
        shape = self.shapes.of(stage.source)
        if shape is None:
            raise Failed  # a layer before it has no shape: its error is reported (here or by the checker)
        return channels_of(shape)

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

    # -- residuals --------------------------------------------------------------------------

    def _residual(self, call: ast.Call, frame: PlaceFrame, env: dict[str, Any]) -> Placed:
        """``residual(kind)``: the main branch plus the shortcut from where the unit began
        (or from ``project_from``); ``none`` ends the unit with no addition (a plain network)."""
        bound, source = self.read_residual(call, env, frame)
        scope, cur, branch = frame.scope, frame.cur, frame.branch
        if bound.args["shortcut"] == "none":  # a plain network: no addition, but the unit still ends here
            scope.plain.append((len(scope.items), bound.exprs["shortcut"]))
            return cur, cur
        local = self._shortcut_name(bound, call, frame)
        layer = self._node(
            "residual", local, bound.args, bound.exprs, local, _join(scope.path, local), call.span, scope
        )
        self._connect(cur, layer.id, 0)
        self._connect(branch, layer.id, 1)
        if source is not None:
            self._connect(source, layer.id, 2)
        return layer.id, layer.id

    def _shortcut_name(self, bound: LayerCall, call: ast.Call, frame: PlaceFrame) -> str:
        """The name of the residual's shortcut module (E505, E206), bound in the body."""
        local = bound.args["name"]
        problem = layer_name_problem(local)
        if problem is not None:
            self.diags.add(bad_layer_name(local, problem, bound.arg_spans.get("name", call.span)))
            raise Failed
        written = bound.exprs.get("shortcut")
        # residual(identity) as written makes no module in any instance, so it takes no name
        moduleless = bound.args["shortcut"] == "identity" and isinstance(written, ast.Name) and written.id == "identity"
        if moduleless:
            return local
        first = frame.bound_before(local)
        if first is not None:
            self.diags.add(
                error(
                    "E206",
                    f"'{local}' is already defined in this block",
                    call.span,
                    notes=[f"first defined at {first}"],
                    help='name the shortcut module: residual(..., name="shortcut2")',
                )
            )
            raise Failed
        frame.names[local] = call.span
        return local


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
