"""What the emitter knows about the instances a class is written from.

A block class is written from one instance at a time, in the class's own terms (its
parameters, its bindings, ``in_channels``). :class:`Instances` lines up the instances of a
block, statement by statement (:mod:`statements`), and works out each instance's value of every
name its class reads, so that a symbolic value can be checked against the instance it is
written for: :meth:`Instances.checked` keeps an expression that gives the instance's value and
writes the value itself where it does not (a map size behind a global pool, an argument the
class cannot see), so the class is right for that instance whatever else it says.
"""

from __future__ import annotations

from typing import Any

from resdsl.backends.codegen.expr import Translator, const_value, fold, is_const, is_expr, lit
from resdsl.backends.codegen.statements import Entry, entries, layerish
from resdsl.ir import Layer, Network, Scope
from resdsl.ir.forward import reads
from resdsl.ops import channels_of
from resdsl.semantics.values import LayerCall
from resdsl.syntax import ast

__all__ = ["Instances", "Values"]

Values = dict[str, Any]  # an instance's value of each name its class reads, as expressions


class Instances:
    """The instances of the blocks of one network, their statements and their values."""

    def __init__(self, network: Network) -> None:
        self.net = network
        self.tr = Translator(network)
        self._instances: dict[int, list[Scope]] = {}
        self._entries: dict[int, list[Entry]] = {}
        self._values: dict[int, list[Values]] = {}
        self._donors: dict[int, list[tuple[Scope, Layer] | None]] = {}
        self._absent: dict[int, set[int]] = {}
        self._read_at: dict[int, dict[tuple[int, int], int]] = {}

    def instances(self, scope: Scope) -> list[Scope]:
        """Every instance of the block ``scope`` is one of, in network order (the network: itself)."""
        if scope.block is None:
            return [scope]
        key = id(scope.block)
        if key not in self._instances:
            self._instances[key] = [s for s in self.net.root.scopes() if s.kind == "block" and s.block is scope.block]
        return self._instances[key]

    def entries(self, scope: Scope) -> list[Entry]:
        if id(scope) not in self._entries:
            self._entries[id(scope)] = entries(self.net, scope)
        return self._entries[id(scope)]

    def values(self, scope: Scope, arg: str) -> Values:
        """The instance's value of every name its class reads (``arg``: the input channels),
        after all its bindings."""
        return self.snapshots(scope, arg)[-1]

    def values_before(self, scope: Scope, arg: str, index: int) -> Values:
        """The instance's values as statement ``index`` sees them: bound by the statements
        before it (a condition there reads a parameter its own statement may rebind:
        ``se = gate(sq(c)) if se else identity``)."""
        bound = sum(1 for entry in self.entries(scope) if entry.let is not None and entry.index < index)
        return self.snapshots(scope, arg)[bound]

    def snapshots(self, scope: Scope, arg: str) -> list[Values]:
        """The instance's values before its first binding, then after each (in order): the
        ``k``-th binding reads the ``k``-th."""
        if id(scope) in self._values:
            return self._values[id(scope)]
        values: Values = {}
        known = scope.args if scope.block is not None else self.net.params
        for name, value in known.items():
            if not isinstance(value, LayerCall):
                try:
                    values[name] = lit(value)
                except TypeError:
                    continue
        if arg:
            shape = self.net.layer(scope.input).shape
            if shape:
                values[arg] = lit(channels_of(shape))
        names = frozenset(known) | {n for n, _ in scope.lets}
        snapshots = [dict(values)]
        for name, expr in scope.lets:
            values[name] = self.tr.subst(self.binding(expr, names, values), values)
            snapshots.append(dict(values))
        snapshots[-1] = values
        self._values[id(scope)] = snapshots
        return snapshots

    def binding(self, expr: ast.Expr, names: frozenset[str], values: Values) -> ast.Expr:
        """A value binding in Python terms; where a condition could pick a layer instead
        (``identity if first else conv(c)``), the side that this instance takes."""
        while isinstance(expr, ast.Cond) and layerish(expr, names):
            taken = self.value(self.tr.normalize(expr.test, names), values)
            if not isinstance(taken, bool):
                break
            expr = expr.then if taken else expr.orelse
        return self.tr.normalize(expr, names)

    def bound_value(self, expr: ast.Expr, names: frozenset[str], values: Values) -> ast.Expr | None:
        """:meth:`binding`, or None where ``values`` do not say which side is taken and a side
        may be a layer (there is no value to write then)."""
        while isinstance(expr, ast.Cond) and layerish(expr, names):
            taken = self.value(self.tr.normalize(expr.test, names), values)
            if not isinstance(taken, bool):
                return None
            expr = expr.then if taken else expr.orelse
        return None if layerish(expr, names) else self.tr.normalize(expr, names)

    def value(self, expr: Any, values: Values) -> Any:
        """``expr``'s value for an instance, or None when it cannot be worked out."""
        if not is_expr(expr):
            return expr
        folded = fold(self.tr.subst(expr, values))
        return const_value(folded) if is_expr(folded) and is_const(folded) else None

    def checked(self, expr: Any, expected: Any, values: Values | None) -> Any:
        """``expr`` when it gives ``expected`` for the instance (or cannot be worked out),
        otherwise ``expected`` itself: the class then fits that instance."""
        if values is None or expected is None or isinstance(expected, LayerCall):
            return expr
        got = self.value(expr, values)
        if got is None or (got == expected and isinstance(got, bool) == isinstance(expected, bool)):
            return expr
        try:
            return lit(expected)
        except TypeError:
            return expr

    def same_statement(self, scope: Scope, index: int) -> list[Entry]:
        return [self.entries(instance)[index] for instance in self.instances(scope)]

    def donors(self, scope: Scope) -> list[tuple[Scope, Layer] | None]:
        """For each statement of the block: the first instance whose residual adds there, and
        that residual (a residual that is ``none`` in an instance is written from it)."""
        key = id(scope.block) if scope.block is not None else id(scope)
        if key not in self._donors:
            found: list[tuple[Scope, Layer] | None] = [None] * len(self.entries(scope))
            for instance in self.instances(scope):
                for entry in self.entries(instance):
                    first = entry.items[0] if entry.items else None
                    if found[entry.index] is None and isinstance(first, Layer) and first.op == "residual":
                        found[entry.index] = (instance, first)
            self._donors[key] = found
        return self._donors[key]

    def absent(self, scope: Scope) -> set[int]:
        """The statements where a residual is ``none`` in some instance of the block."""
        key = id(scope.block) if scope.block is not None else id(scope)
        if key not in self._absent:
            self._absent[key] = {e.index for i in self.instances(scope) for e in self.entries(i) if e.plain is not None}
        return self._absent[key]

    def read_at(self, scope: Scope) -> dict[tuple[int, int], int]:
        """Where the values a class reads after its main variable moved on stand: for the read
        by statement ``i`` through input ``port``, the statement after which every instance that
        reads it holds that value (-1: the body's input). What is read is the IR's one rule
        (:func:`resdsl.ir.forward.reads`, a gate's branch held apart as the class holds it);
        only the statement it stands at is found here, line by line across the instances (a
        residual that is ``none`` in one instance and adds in another reads the same statement)."""
        key = id(scope.block) if scope.block is not None else id(scope)
        if key in self._read_at:
            return self._read_at[key]
        ranges: dict[tuple[int, int], tuple[int, int]] = {}
        for instance in self.instances(scope):
            found = self._read_ranges(instance)
            for at, (lo, hi) in found.items():
                old_lo, old_hi = ranges.get(at, (lo, hi))
                ranges[at] = (max(lo, old_lo), min(hi, old_hi))
        for (index, port), (lo, hi) in ranges.items():
            if lo > hi:
                raise AssertionError(
                    f"codegen: the instances of {scope.name!r} read input {port} of statement {index} "
                    "from no one statement"
                )
        self._read_at[key] = {at: lo for at, (lo, _) in ranges.items()}
        return self._read_at[key]

    def _read_ranges(self, instance: Scope) -> dict[tuple[int, int], tuple[int, int]]:
        """For each kept read of one instance, by (statement, port): the first and the last
        statement before the reader after which its main value is the node read."""
        after: dict[int, str] = {-1: instance.input}  # the instance's main value after each statement
        where: dict[str, int] = {}  # the statement of each item
        node = instance.input
        for entry in self.entries(instance):
            for item in entry.items:
                where[item.output if isinstance(item, Scope) else item.id] = entry.index
            if entry.items:
                last = entry.items[-1]
                node = last.output if isinstance(last, Scope) else last.id
            after[entry.index] = node
        out: dict[tuple[int, int], tuple[int, int]] = {}
        for item, port, read in reads(self.net, instance, apart=True):
            index = where[item.output if isinstance(item, Scope) else item.id]
            held = [j for j, n in after.items() if j < index and n == read]
            if not held or (index, port) in out:
                raise AssertionError(f"codegen: {item.path or item.name} reads {read!r}, which no statement left")
            out[index, port] = (min(held), max(held))
        return out

    def port(self, layer: Layer, port: int) -> str:
        node = self.net.port(layer.id, port)
        if node is None:
            raise AssertionError(f"codegen: layer {layer.path or layer.id} has no input {port}")
        return node
