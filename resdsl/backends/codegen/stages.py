"""Stages in generated code: one loop where the blocks differ only by instance values, the
blocks one by one where they cannot be one loop.

``stage(b(c, drop=rate * net_index / (net_count - 1)), repeat=n)`` becomes
``nn.Sequential(B(c, drop=rate * 0 / (net_count - 1)), *[B(c, drop=rate * (i + 1) / (net_count - 1))
for i in range(n - 1)])``: each instance value the block argument reads is replaced, in the
terms of the class that builds the stage, by what it is for the first block and for later block
``i + 1`` (:meth:`NetCounts.values`); comparisons that ``i >= 0`` decides are folded, so a
later block's ``1 if index == 0 else 6`` reads ``6``. A loop is checked against the IR before
it is written: every later block's arguments, input channels and the counts below it computed
from the loop must be what elaboration gave that block, and a block past the last must read
what the last one makes. Where that check fails, or the channels grow by an amount that changes
from block to block, or the counts below do not grow by a fixed amount, the calls are written
one by one; a repeat that depends on a parameter is then refused other values (a ValueError
saying to regenerate), and in a block class every instance must have the same (E506).

A stage of one block whose repeat is a parameter's still gets the loop, though the IR holds no
later block to check it by: block ``i + 1`` reads what block ``i`` makes (in the class's terms),
and only the arguments the later blocks share with the first (no instance value, no stage
``stride=``) are checked against the first block.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from resdsl.backends.codegen.classes import Call, ClassDef
from resdsl.backends.codegen.expr import (
    attr_name,
    const_value,
    fold,
    free_names,
    fresh,
    is_const,
    is_expr,
    lit,
    py,
    py_str,
    subst,
)
from resdsl.backends.codegen.instances import Values
from resdsl.backends.codegen.netcount import (
    PLACEHOLDER,
    NetCounts,
    add,
    ir_blocks_at,
    mul,
    stage_blocks,
    unwritable,
)
from resdsl.ir import Network, Scope
from resdsl.ops import channels_of
from resdsl.semantics.values import LayerCall
from resdsl.syntax import ast


class StageWriter(NetCounts):
    """Writes the stages of the classes being written."""

    # -- writing a stage --------------------------------------------------------------------

    def write(
        self,
        scope: Scope,
        parent: ClassDef,
        cin: Any,
        names: frozenset[str],
        check: Values | None,
        local: str | None = None,
    ) -> tuple[Any, Any]:
        """The init line of a stage the class ``parent`` builds; returns its output channels and
        its stride. ``check``: the values of the instance ``parent`` is written from; ``local``:
        the variable that holds the stage (one in a sequential group), not an attribute."""
        em = self.em
        blocks = stage_blocks(scope)
        cin = cin if is_expr(cin) else lit(cin)  # channels may come as numbers from the op table
        repeat = em.tr.normalize(scope.repeat_expr, names) if scope.repeat_expr is not None else lit(scope.repeat)
        first_values = self.values(scope, ast.IntLit(0), cin, repeat)
        first_bases = {q: self._next(scope, q + 1) for q in self._hidden(blocks[0])}
        hidden = self.hidden_args(blocks[0], 1, first_bases)
        first_call, out, stride = em.block_call(blocks[0], cin, names, check, inst=first_values, hidden=hidden)
        out = out if is_expr(out) else lit(out)
        calls, rest = [first_call], None
        if len(blocks) > 1 or not is_const(repeat):
            loop = self._loop(scope, blocks, out, repeat, names, first_values, check)
            if loop is not None:
                rest, out, later_stride = loop
                if not (isinstance(later_stride, ast.IntLit) and later_stride.value == 1):
                    stride = lit(_ir_stride(em.net, scope))  # later blocks stride too: this instance's
            else:
                calls, out, stride = self._unrolled(scope, blocks, cin, repeat, parent, names, check)
        named = self._names(scope, len(calls), rest[2] if rest is not None else None)
        target = local if local is not None else f"self.{attr_name(scope.name, scope.span)}"
        parent.init.append(("stage", (target, calls, rest, py(repeat), named)))
        self.advance(scope, {r: self.stage_count(scope, r) for r in self.counts[-1].next})
        return out, stride

    def _names(self, scope: Scope, written: int, var: str | None) -> tuple[list[str], str] | None:
        """A stage with ``prefix=``/``start=``: its blocks' names as Python source (the blocks
        written one by one, then the loop's f-string over block ``var + 1``); None where the
        blocks are numbered from 0 as nn.Sequential numbers them."""
        if not scope.prefix and not scope.start:
            return None
        self.em.uses_ordered_dict = True
        first = [py_str(scope.child_name(k)) for k in range(written)]
        later = f'f"{scope.prefix}{{{var} + {scope.start + written}}}"' if var is not None else ""
        return first, later

    def _hidden(self, block: Scope) -> dict[int, tuple[str, str]]:
        assert block.block is not None
        return self.hidden.get(block.block.name, {})

    def _loop(
        self,
        scope: Scope,
        blocks: list[Scope],
        out: Any,
        repeat: Any,
        names: frozenset[str],
        first_values: dict[str, Any],
        check: Values | None,
    ) -> tuple[tuple[Call, str, str], Any, Any] | None:
        """The later blocks as one comprehension over ``i`` (block ``i + 1``), the stage's
        output channels and the later blocks' stride, or None where one call cannot say every
        later block (they need other classes, or other arguments than the loop gives)."""
        em = self.em
        var = fresh("i", names | set(em.net.params))
        i = ast.Name(var)
        # the later blocks' class: the first block's stride or shortcut may choose other layers
        later = blocks[min(1, len(blocks) - 1)]
        if any(em.block_class(block) is not em.block_class(later) for block in blocks[1:]):
            return None  # later blocks of different classes: written one by one
        later_in, last_out = self._later_channels(scope, later, out, var, repeat, names)
        if later_in is None:
            return None
        values = self.values(scope, add(i, ast.IntLit(1)), later_in, repeat)
        bases: dict[int, Any] = {}
        for q in self._hidden(blocks[0]):
            first = self.instance_blocks(blocks[0], q, None, first_values)
            each = self.instance_blocks(blocks[0], q, scope.arg_exprs, values)
            if first is None or each is None:
                return None
            if var in free_names(each):  # each block its own count (ConvNeXt's depths[index])
                bases[q] = add(self._next(scope, q + 1), _running_sum(first, each, var, names | set(em.net.params)))
            else:
                bases[q] = add(add(self._next(scope, q + 1), first), mul(i, each))
        hidden = self.hidden_args(blocks[0], 1, bases)
        decided = partial(_from_zero, var=var)  # i >= 0: what index == 0 decides is decided
        expected = None if len(blocks) > 1 else _shared_args(scope, blocks[0])
        call, _, stride = em.block_call(
            later, later_in, names, check, scope.arg_exprs, values, hidden=hidden, simplify=decided, expected=expected
        )
        if not self._verify(scope, blocks, later_in, values, bases, var, names):
            return None
        count = fold(ast.BinOp("-", repeat, ast.IntLit(1)))
        named = bool(scope.prefix or scope.start)  # the loop's variable numbers the blocks' names
        return (call, py(count), var if named or uses_name(call, var) else "_"), last_out, stride

    def _later_channels(
        self, scope: Scope, block: Scope, out: Any, var: str, repeat: Any, names: frozenset[str]
    ) -> tuple[Any, Any]:
        """The input channels of later block ``i + 1`` and the last block's output, in the
        caller's terms: a block that adds a fixed number of channels to its input (DenseNet's
        concatenation) reads ``c + i * growth``; one whose output does not depend on its input
        reads what block ``i`` made, where the first block's output follows the same rule.
        (None, None) where neither holds."""
        i, placeholder = ast.Name(var), ast.Name(PLACEHOLDER)
        values = self.values(scope, add(i, ast.IntLit(1)), placeholder, repeat)
        _, made, _ = self.em.block_call(block, placeholder, names, exprs=scope.arg_exprs, inst=values)
        tr = self.em.tr
        if PLACEHOLDER not in free_names(made):  # block i + 1 makes ``made``; block 0 must fit i = -1
            if py(tr.subst(made, {var: ast.IntLit(-1)})) != py(out):
                return None, None
            previous = tr.subst(made, {var: fold(ast.BinOp("-", i, ast.IntLit(1)))})
            last = tr.subst(made, {var: fold(ast.BinOp("-", repeat, ast.IntLit(2)))})
            return previous, last
        if isinstance(made, ast.BinOp) and made.op == "+":
            for mine, growth in ((made.left, made.right), (made.right, made.left)):
                fixed = PLACEHOLDER not in free_names(growth) and var not in free_names(growth)
                if isinstance(mine, ast.Name) and mine.id == PLACEHOLDER and fixed:
                    later = fold(ast.BinOp("-", repeat, ast.IntLit(1)))
                    return add(out, mul(i, growth)), add(out, mul(later, growth))
        return None, None

    def _verify(
        self,
        scope: Scope,
        blocks: list[Scope],
        later_in: Any,
        values: dict[str, Any],
        bases: dict[int, Any],
        var: str,
        names: frozenset[str],
    ) -> bool:
        """Whether the loop gives every later block what elaboration gave it: its arguments, its
        input channels and the counts below it, each where it folds to a number; and whether a
        block past the IR's last (a larger repeat: a stage of one block has only that) would read
        what the last one makes."""
        em = self.em
        decided = partial(_from_zero, var=var)
        mapping = em.block_mapping(blocks[0], later_in, names, None, scope.arg_exprs, values, decided)[2]
        constants = self.counts[-1].values
        made = em.net.layer(blocks[-1].output).shape
        if made is not None:
            got = fold(em.tr.subst(later_in, {**constants, var: ast.IntLit(len(blocks) - 1)}))
            if is_const(got) and not _same(const_value(got), channels_of(made)):
                return False
        for k, block in enumerate(blocks[1:], 1):
            env = {**constants, var: ast.IntLit(k - 1)}
            checks: list[tuple[Any, Any]] = [
                (mapping[p], block.args.get(p)) for p in scope.arg_exprs if p in mapping and p in block.args
            ]
            shape = em.net.layer(block.input).shape
            if shape is not None:
                checks.append((later_in, channels_of(shape)))
            for q, base in bases.items():
                inner = next((s for s in block.scopes() if s.kind == "stage" and s.depth == scope.depth + 1 + q), None)
                if inner is not None:
                    checks.append((base, inner.net_start))
            for expr, want in checks:
                if isinstance(want, LayerCall):
                    continue
                got = fold(em.tr.subst(expr, env))
                if is_const(got) and not _same(const_value(got), want):
                    return False
        return True

    def _unrolled(
        self,
        scope: Scope,
        blocks: list[Scope],
        cin: Any,
        repeat: Any,
        parent: ClassDef,
        names: frozenset[str],
        check: Values | None,
    ) -> tuple[list[Call], Any, Any]:
        """The blocks of a stage written one by one, each with its own instance values; their
        calls, the stage's output channels and its stride."""
        em = self.em
        if not is_const(repeat):
            self._fix_repeat(scope, repeat, parent)
        counts = self.counts[-1]
        running = {q: self._next(scope, q + 1) for q in self._hidden(blocks[0])}
        calls: list[Call] = []
        stride: Any = ast.IntLit(1)
        for k, block in enumerate(blocks):
            values = self.values(scope, ast.IntLit(k), cin, repeat)
            hidden = self.hidden_args(block, 1, dict(running))
            call, cin, own = em.block_call(block, cin, names, check, inst=values, hidden=hidden)
            cin = cin if is_expr(cin) else lit(cin)
            stride = fold(ast.BinOp("*", stride, own))
            calls.append(call)
            for q in running:
                part = self.instance_blocks(block, q, None, values)
                if part is not None:
                    running[q] = add(running[q], part)
                elif counts.network:  # the IR's number, and a guard
                    self.guard = True
                    done = sum(ir_blocks_at(b, q + 1) for b in blocks[: k + 1])
                    running[q] = ast.IntLit(counts.numbers[q + 1] + done)
                else:
                    raise unwritable(scope, "the blocks below it cannot be counted in its block class's terms")
        return calls, cin, stride

    def _fix_repeat(self, scope: Scope, repeat: Any, parent: ClassDef) -> None:
        """Blocks written one by one fix the repeat: refuse other values; in a block class, every
        instance in this network must have the same."""
        if not self.counts[-1].network:
            for other in self.em.net.root.scopes():
                if other.kind != "block" or other.block is not self.counts[-1].block:
                    continue
                twin = next((s for s in other.items if isinstance(s, Scope) and s.name == scope.name), None)
                if twin is not None and twin.repeat != scope.repeat:
                    raise unwritable(
                        scope,
                        f"its blocks differ in ways one loop cannot say, so they are written one by one, "
                        f"but {twin.path} has {twin.repeat} of them and this one {scope.repeat}",
                    )
        message = py_str(
            f"this module was generated with {scope.repeat} blocks in stage {scope.name}, written one by one; "
            "regenerate it for another number"
        )
        parent.init.append(("require", (py(repeat), str(scope.repeat), message)))


def _running_sum(first: Any, each: Any, var: str, taken: set[str] | frozenset[str]) -> Any:
    """The blocks below the blocks before later block ``var + 1``, where block ``var + 1`` has
    ``each`` of them and the first ``first``: ``sum([depths[j] for j in range(i + 1)])`` (the
    first one's count the same rule at 0), else ``first + sum([... for j in range(1, i + 1)])``."""
    j = fresh("j", set(taken) | {var} | free_names(each))
    count = subst(each, {var: ast.BinOp("-", ast.Name(j), ast.IntLit(1))})
    upto = add(ast.Name(var), ast.IntLit(1))
    same = py(subst(count, {j: ast.IntLit(0)})) == py(first)
    bounds = (upto,) if same else (ast.IntLit(1), upto)
    loop = ast.Loop(j, ast.FuncCall("range", tuple(ast.Arg(None, b) for b in bounds)), None)
    total = ast.FuncCall("sum", (ast.Arg(None, ast.ListComp(count, (loop,))),))
    return total if same else add(first, total)


def _shared_args(stage: Scope, first: Scope) -> dict[str, Any]:
    """The arguments a stage's later blocks get that its first block got too: those the stage
    writes for every block (not its stride= or shortcut= for the first) and that read no
    instance value (in_channels, index, ...). Where the IR holds no later block, only these say
    what a later block's argument is; the others are computed from the first block."""
    return {
        name: first.args[name]
        for name, expr in stage.arg_exprs.items()
        if name in first.args and first.arg_exprs.get(name) == expr and not free_names(expr) & stage.instance_names
    }


def _ir_stride(network: Network, scope: Scope) -> int:
    """The spatial stride of a scope in the IR: its input map over its output map."""
    before, after = network.layer(scope.input).shape, network.layer(scope.output).shape
    if before is None or after is None or len(before) != 3 or len(after) != 3:
        return 1
    return max(before[1] // after[1], 1)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def uses_name(call: Call, name: str) -> bool:
    """Whether a constructor call's source reads ``name``."""
    return any(name in _WORD.findall(arg) for arg in call.args)


def _same(got: Any, want: Any) -> bool:
    """Whether a folded value is the one elaboration computed (lists compare as lists)."""
    if isinstance(want, (list, tuple)):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    return bool(got == want)


_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _offset(e: Any, var: str) -> int | None:
    """``c`` where ``e`` is ``var + c`` (or ``var``), else None."""
    if isinstance(e, ast.Name) and e.id == var:
        return 0
    if isinstance(e, ast.BinOp) and e.op == "+":
        for a, b in ((e.left, e.right), (e.right, e.left)):
            if isinstance(a, ast.Name) and a.id == var and isinstance(b, ast.IntLit):
                return b.value
    return None


def _from_zero(e: Any, var: str) -> Any:
    """``e`` with the comparisons that ``var >= 0`` decides replaced by their answer, and the
    choices they made folded: a later block's ``1 if index == 0 else 6`` reads ``6``."""
    if isinstance(e, ast.Cond):
        return fold(ast.Cond(_from_zero(e.test, var), _from_zero(e.then, var), _from_zero(e.orelse, var)))
    if isinstance(e, ast.Neg):
        return fold(ast.Neg(_from_zero(e.operand, var)))
    if isinstance(e, ast.ListExpr):
        return ast.ListExpr(tuple(_from_zero(i, var) for i in e.items))
    if isinstance(e, ast.Index):
        return fold(ast.Index(_from_zero(e.value, var), _from_zero(e.index, var)))
    if not isinstance(e, ast.BinOp):
        return e
    left, right = _from_zero(e.left, var), _from_zero(e.right, var)
    op = e.op
    if op in _FLIPPED and isinstance(left, ast.IntLit) and _offset(right, var) is not None:
        left, right, op = right, left, _FLIPPED[op]
    c = _offset(left, var)
    if op in _FLIPPED and c is not None and isinstance(right, ast.IntLit):
        d = right.value  # left takes every value from c up
        decided = {"==": False, "!=": True, "<": False, "<=": False, ">": True, ">=": True}
        if d < c or (d == c and op in ("<", ">=")):
            return ast.BoolLit(decided[op])
    return fold(ast.BinOp(op, left, right))
