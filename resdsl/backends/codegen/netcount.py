"""net_index in generated code: which classes need to be told it, the running counts of the
class being written, and the instance values of one block in that class's terms.

net_index numbers the stage blocks at one depth of stage nesting across the whole network,
so a block class whose stages read it (directly or in the blocks it holds) cannot know it
alone: it takes keyword-only ``net_index``/``net_count`` arguments per depth below it
(``net_index_1``... for stages in its stages' blocks), and whoever builds it passes the running
count. The network class starts every count at 0 and writes the totals as expressions of its
parameters (``net_count = depths[0] + depths[1] + depths[2]``) where it can, as numbers where it
cannot; then it refuses other values of its parameters (a ValueError saying to regenerate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from resdsl.backends.codegen.classes import Call, ClassDef
from resdsl.backends.codegen.expr import (
    Translator,
    const_value,
    fold,
    free_names,
    fresh,
    is_const,
    lit,
    py,
    py_default,
    py_name,
    py_str,
)
from resdsl.diagnostics import ResdslError, error
from resdsl.ir import Network, Scope
from resdsl.semantics.values import LayerCall
from resdsl.syntax import ast


class Emitter(Protocol):
    """What stage writing uses of :class:`resdsl.backends.codegen.emit.Emitter`, which holds it."""

    net: Network
    tr: Translator
    value_names: frozenset[str]
    classes: dict[tuple[str, int], ClassDef]
    uses_ordered_dict: bool

    def bound_value(self, expr: ast.Expr, names: frozenset[str], values: dict[str, Any]) -> ast.Expr | None: ...

    def block_class(self, scope: Scope) -> ClassDef: ...

    def block_call(
        self,
        scope: Scope,
        cin: Any,
        names: frozenset[str],
        values: dict[str, Any] | None = None,
        exprs: Mapping[str, ast.Expr] | None = None,
        inst: Mapping[str, Any] | None = None,
        hidden: Sequence[tuple[str, Any]] = (),
        simplify: Callable[[Any], Any] | None = None,
        expected: Mapping[str, Any] | None = None,
    ) -> tuple[Call, Any, Any]: ...

    def block_mapping(
        self,
        scope: Scope,
        cin: Any,
        names: frozenset[str],
        values: dict[str, Any] | None = None,
        exprs: Mapping[str, ast.Expr] | None = None,
        inst: Mapping[str, Any] | None = None,
        simplify: Callable[[Any], Any] | None = None,
        expected: Mapping[str, Any] | None = None,
    ) -> tuple[ClassDef, list[str], dict[str, Any]]: ...


NET_NAMES = frozenset({"net_index", "net_count"})
PLACEHOLDER = "resdsl_in_channels"  # an unknown input in the caller's terms: no spec name has this prefix


def add(a: Any, b: Any) -> Any:
    """``a + b`` folded; for the whole numbers this module adds (counts, channels), a sum on the
    right is flattened: ``n + (i + 1)`` is written ``n + i + 1``."""
    if isinstance(a, ast.IntLit) and a.value == 0:
        return b
    if isinstance(b, ast.BinOp) and b.op == "+":
        return add(add(a, b.left), b.right)
    return fold(ast.BinOp("+", a, b))


def mul(a: Any, b: Any) -> Any:
    return fold(ast.BinOp("*", a, b))


def stage_blocks(scope: Scope) -> list[Scope]:
    blocks = [s for s in scope.items if isinstance(s, Scope)]
    if len(blocks) != len(scope.items) or not blocks:
        raise AssertionError(f"codegen: stage {scope.path!r} holds something other than blocks")
    return blocks


@dataclass
class Counts:
    """The class being written: per relative depth of stage nesting, the net_index of the next
    stage block there (an expression in the class's terms; None where none can be written) and
    the total; for the network class also the IR's own numbers (``numbers``), its fallback."""

    next: dict[int, Any]
    total: dict[int, Any]
    values: dict[str, Any]  # the class's names as constants, as in the instance it is written from
    network: bool
    cls: ClassDef | None = None
    block: ast.BlockDef | None = None  # the block class's definition
    numbers: dict[int, int] = field(default_factory=dict)


class NetCounts:
    """The net_index counts of the classes being written (a stack: one per class)."""

    def __init__(self, em: Emitter) -> None:
        self.em = em
        self.counts: list[Counts] = []
        self._levels: dict[int, frozenset[int]] = {}
        self._blocks: dict[tuple[int, int], Any] = {}
        self.hidden: dict[str, dict[int, tuple[str, str]]] = {}  # block name: depth -> (index, total) argument
        self.guard = False  # the network class wrote IR numbers where its parameters could change them

    # -- which classes need net_index -------------------------------------------------------

    def class_levels(self, block: ast.BlockDef) -> frozenset[int]:
        """The depths below a block class (0: its own stages) where stages read net_index or
        net_count: where its instances need to be told the running count."""
        key = id(block)
        if key not in self._levels:
            self._levels[key] = frozenset()  # blocks are never recursive; this only guards
            found: set[int] = set()
            for scope in self.em.net.root.scopes():
                if scope.kind == "block" and scope.block is block:
                    found |= self.scope_levels(scope)
            self._levels[key] = frozenset(found)
        return self._levels[key]

    def scope_levels(self, scope: Scope) -> frozenset[int]:
        out: set[int] = set()
        for item in scope.items:
            if not isinstance(item, Scope):
                continue
            if item.kind == "stage":
                if item.instance_names & NET_NAMES:
                    out.add(0)
                for block in stage_blocks(item):
                    assert block.block is not None
                    out |= {q + 1 for q in self.class_levels(block.block)}
            elif item.kind == "block":
                assert item.block is not None
                out |= self.class_levels(item.block)
            else:
                out |= self.scope_levels(item)
        return frozenset(out)

    def hidden_params(self, block: ast.BlockDef, taken: set[str]) -> dict[int, tuple[str, str]]:
        """The keyword-only arguments of a block class that give its net_index counts."""
        if block.name not in self.hidden:
            names: dict[int, tuple[str, str]] = {}
            used = set(taken) | set(self.em.value_names)
            for q in sorted(self.class_levels(block)):
                suffix = f"_{q}" if q else ""
                index = fresh(f"net_index{suffix}", used)
                used.add(index)
                total = fresh(f"net_count{suffix}", used)
                used.add(total)
                names[q] = (index, total)
            self.hidden[block.name] = names
        return self.hidden[block.name]

    # -- one class --------------------------------------------------------------------------

    def begin(self, scope: Scope, cls: ClassDef, names: frozenset[str], network: bool) -> None:
        """Start the counts of a class written from ``scope`` (the network's root, or a block
        instance) whose names are ``names``."""
        em = self.em
        if network:
            levels = self.scope_levels(scope)
            params = {k: v for k, v in em.net.params.items() if not isinstance(v, LayerCall)}
            counts = Counts({}, {}, self._constants(scope, params), True, cls)
            for r in levels:
                counts.next[r], counts.numbers[r] = ast.IntLit(0), 0
                counts.total[r] = self.blocks_in(scope, r)
                if counts.total[r] is None:
                    counts.total[r] = ast.IntLit(_ir_total(em.net.root, r))
                    self.guard = True
        else:
            assert scope.block is not None
            hidden = self.hidden.get(scope.block.name, {})
            values = {k: v for k, v in scope.args.items() if k in names}
            counts = Counts({}, {}, self._constants(scope, values), False, cls, scope.block)
            for r, (index, total) in hidden.items():
                counts.next[r], counts.total[r] = ast.Name(index), ast.Name(total)
        self.counts.append(counts)

    def end(self, cls: ClassDef, network: bool) -> None:
        self.counts.pop()
        if network and self.guard:
            self._refuse_other_values(cls)

    def _constants(self, scope: Scope, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            try:
                out[name] = lit(value)
            except TypeError:
                continue
        for name, expr in scope.lets:
            bound = self.em.bound_value(expr, frozenset(out), out)  # the side this instance took
            if bound is None:
                continue
            value = self.em.tr.subst(bound, out)
            if is_const(value):
                out[name] = value
        return out

    def _refuse_other_values(self, cls: ClassDef) -> None:
        params = [(py_name(k), v) for k, v in self.em.net.params.items() if not isinstance(v, LayerCall)]
        if not params:
            return
        names = ", ".join(n for n, _ in params)
        written = ", ".join(f"{n}={py_default(v)}" for n, v in params)
        message = py_str(
            f"this module was generated for {written}: the net_index and net_count of its stage blocks are "
            "written as numbers; regenerate it for other values"
        )
        given = f"({names},)" if len(params) == 1 else f"({names})"
        wanted = py_default([v for _, v in params])
        cls.init.insert(0, ("require", (given, wanted, message)))

    # -- counting stage blocks ----------------------------------------------------------------

    def blocks_in(self, scope: Scope, r: int) -> Any:
        """The stage blocks at relative depth ``r`` inside ``scope`` (a class's body), as an
        expression in the terms of that class; None where no expression says it."""
        total: Any = ast.IntLit(0)
        for item in scope.items:
            if not isinstance(item, Scope):
                continue
            if item.kind == "stage":
                part = self.stage_count(item, r)
            elif item.kind == "block":
                part = self.instance_blocks(item, r, None, {})
            else:
                part = self.blocks_in(item, r)
            if part is None:
                return None
            total = add(total, part)
        return total

    def instance_blocks(self, scope: Scope, q: int, exprs: dict[str, ast.Expr] | None, values: dict[str, Any]) -> Any:
        """The stage blocks at depth ``q`` inside one block instance, in its caller's terms."""
        assert scope.block is not None
        key = (id(scope.block), q)
        if key not in self._blocks:
            self._blocks[key] = self.blocks_in(scope, q)
        inner = self._blocks[key]
        if inner is None:
            return None
        # counts are whole numbers: no shortcut kind in them, so no names that shadow one
        mapping = self.em.block_mapping(scope, ast.Name(PLACEHOLDER), frozenset(), None, exprs, values)[2]
        out = self.em.tr.subst(inner, mapping)
        return None if PLACEHOLDER in free_names(out) else out

    def stage_count(self, stage: Scope, r: int) -> Any:
        """The stage blocks at relative depth ``r`` of a stage (0: the stage's own)."""
        repeat = self._repeat(stage)
        if r == 0:
            return repeat
        blocks = stage_blocks(stage)
        marker = ast.Name("resdsl_index")
        first = self.instance_blocks(blocks[0], r - 1, None, self._count_values(stage, ast.IntLit(0), repeat))
        later = self.instance_blocks(blocks[0], r - 1, stage.arg_exprs, self._count_values(stage, marker, repeat))
        if first is None or later is None:
            return None
        if marker.id not in free_names(later):
            return add(first, mul(fold(ast.BinOp("-", repeat, ast.IntLit(1))), later))
        if not is_const(repeat):
            return None
        total = first
        for k in range(1, const_value(repeat)):
            part = self.instance_blocks(blocks[k], r - 1, None, self._count_values(stage, ast.IntLit(k), repeat))
            if part is None:
                return None
            total = add(total, part)
        return total

    def _count_values(self, stage: Scope, index: Any, repeat: Any) -> dict[str, Any]:
        """Instance values for counting: index and count; the others are unknown here."""
        out: dict[str, Any] = {}
        for name in stage.instance_names:
            out[name] = index if name == "index" else repeat if name == "count" else ast.Name(PLACEHOLDER)
        return out

    def _repeat(self, stage: Scope) -> Any:
        if stage.repeat_expr is None:
            return ast.IntLit(stage.repeat)
        return self.em.tr.normalize(stage.repeat_expr, frozenset())

    # -- the values of one instance ---------------------------------------------------------

    def values(self, stage: Scope, k: Any, cin: Any, repeat: Any) -> dict[str, Any]:
        """What each instance value the stage's block argument reads is for block ``k`` (an
        expression), in the terms of the class that builds the stage."""
        out: dict[str, Any] = {}
        for name in stage.instance_names:
            if name == "index":
                out[name] = k
            elif name == "count":
                out[name] = repeat
            elif name == "in_channels":
                out[name] = cin
            elif name == "net_index":
                out[name] = add(self._next(stage, 0), k)
            else:
                out[name] = self._total(0)
        return out

    def _total(self, r: int) -> Any:
        """The network's total at relative depth ``r``; in the network class, an expression of
        its parameters is written once, as ``net_count = ...`` where first needed."""
        counts = self.counts[-1]
        total = counts.total[r]
        params = {k for k, v in self.em.net.params.items() if not isinstance(v, LayerCall)}
        # the network's parameters, or values its class has bound by now (MobileNet's computed depths)
        bound = {item[1][0] for item in counts.cls.init if item[0] == "let"} if counts.cls is not None else set()
        known = params | bound
        if not counts.network or is_const(total) or isinstance(total, ast.Name) or not free_names(total) <= known:
            return total
        assert counts.cls is not None
        taken = set(self.em.value_names) | {n for n, _, _ in counts.cls.params} | counts.cls.locals
        name = fresh("net_count" if r == 0 else f"net_count_{r}", taken)
        counts.cls.locals.add(name)
        counts.cls.init.append(("let", (name, py(total))))
        counts.total[r] = ast.Name(name)
        return counts.total[r]

    def _next(self, where: Scope, r: int) -> Any:
        counts = self.counts[-1]
        value = counts.next[r]
        if value is not None:
            return value
        if counts.network:  # no expression of the parameters: the IR's number, and a guard
            self.guard = True
            return ast.IntLit(counts.numbers[r])
        raise unwritable(where, "its stage blocks' net_index cannot be written in the terms of its block class")

    def hidden_args(self, scope: Scope, shift: int, bases: dict[int, Any]) -> list[tuple[str, Any]]:
        """The net_index/net_count arguments a block instance's class takes: ``bases`` per depth
        below the instance (in the caller's terms); ``shift``: 1 for a block of a stage the
        caller builds (its depth 0 is the caller's 1), 0 for a block the caller holds itself."""
        assert scope.block is not None
        out: list[tuple[str, Any]] = []
        for q, (index, total) in self.hidden.get(scope.block.name, {}).items():
            out += [(index, bases[q]), (total, self._total(q + shift))]
        return out

    def plain_block(self, scope: Scope) -> list[tuple[str, Any]]:
        """A block the class holds itself (not in a stage): its net_index arguments, and the
        counts moved past it."""
        assert scope.block is not None
        hidden = self.hidden_args(scope, 0, {q: self._next(scope, q) for q in self.hidden.get(scope.block.name, {})})
        self.advance(scope, {r: self.instance_blocks(scope, r, None, {}) for r in self.counts[-1].next})
        return hidden

    def advance(self, item: Scope, amounts: dict[int, Any]) -> None:
        """Count what ``item`` placed at each relative depth (None: no expression says)."""
        counts = self.counts[-1]
        for r in list(counts.next):
            if counts.network:  # the network's relative depths are the absolute ones
                counts.numbers[r] += ir_blocks_at(item, r)
            part = amounts.get(r)
            counts.next[r] = None if part is None or counts.next[r] is None else add(counts.next[r], part)


def ir_blocks_at(item: Scope, depth: int) -> int:
    """The IR's number of stage blocks at absolute ``depth`` inside ``item``."""
    return sum(s.repeat for s in item.scopes() if s.kind == "stage" and s.depth == depth)


def _ir_total(root: Scope, depth: int) -> int:
    return sum(s.repeat for s in root.scopes() if s.kind == "stage" and s.depth == depth)


def unwritable(scope: Scope, why: str) -> ResdslError:
    return ResdslError(
        error(
            "E506",
            f"stage {scope.path} cannot be written in generated code: {why}",
            scope.span,
            help="build it with build_model, which elaborates every block; or give the instances of the "
            "enclosing block the same stage sizes",
        )
    )
