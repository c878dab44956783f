"""A statement whose condition chooses between layers, as generated code.

``down = identity if first else conv(c, k=1)`` makes an identity in the instances where
``first`` holds and a conv in the others. The emitter writes each side from an instance that
takes it (a :class:`Leaf`: its constructor lines, forward steps and where its value ends up);
:func:`decide` arranges the sides by the conditions that pick them (a :class:`Branch` per
condition, outermost first), and the functions below turn that tree into ``if``/``else`` in
``__init__``, into a forward pass (one set of steps when every side runs the same ones), and
into channel and stride expressions (``c if first else 2 * c``). A side that no instance takes
has nothing to be written from: the constructor refuses it with a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from resdsl.backends.codegen.expr import py
from resdsl.ir.steps import Call, Choice, Present, Step
from resdsl.syntax import ast

__all__ = ["Branch", "Leaf", "Tree", "decide", "forward_steps", "init_lines", "point_expr"]

Variant = tuple[tuple[int, bool], ...]


@dataclass
class Leaf:
    """One side as written from an instance that takes it."""

    init: list[tuple[str, Any]]
    forward: list[Step]
    point: Any  # classes.Point: where the value is afterwards
    binds: bool = False  # this side binds a value (``identity`` names a shortcut kind): no layer


@dataclass
class Branch:
    """A condition in a generated class and the layers on each side of it."""

    test: ast.Expr  # in the class's terms
    then: Tree | None  # None: no instance takes this side
    orelse: Tree | None


Tree = Leaf | Branch


def decide(
    variants: Sequence[Variant],
    conds: Sequence[ast.Cond],
    test_of: Callable[[ast.Expr], ast.Expr],
    leaves: Mapping[Variant, Leaf],
    start: int = 0,
) -> Tree:
    """The sides ``variants`` (each: which side of which condition) arranged by condition.

    A condition whose test is a constant in the class's terms picks its side outright; one
    that no variant reached (it stands in a side none took, or chooses values, not layers) is
    passed over."""
    for i in range(start, len(conds)):
        sides = [dict(v).get(i) for v in variants]
        if all(side is None for side in sides):
            continue
        if any(side is None for side in sides):
            raise AssertionError(f"codegen: the condition at {conds[i].span} is reached by some instances only")
        then = [v for v, side in zip(variants, sides, strict=True) if side]
        orelse = [v for v, side in zip(variants, sides, strict=True) if not side]
        test = test_of(conds[i].test)
        if isinstance(test, ast.BoolLit):
            chosen, other = (then, orelse) if test.value else (orelse, then)
            if other:
                raise AssertionError(f"codegen: instances disagree on the constant condition at {conds[i].span}")
            return decide(chosen, conds, test_of, leaves, i + 1)
        return Branch(
            test,
            decide(then, conds, test_of, leaves, i + 1) if then else None,
            decide(orelse, conds, test_of, leaves, i + 1) if orelse else None,
        )
    if len(variants) != 1:
        raise AssertionError(f"codegen: {len(variants)} different layers for one choice")
    return leaves[variants[0]]


def init_lines(tree: Tree | None, refusal: str) -> list[tuple[str, Any]]:
    """Constructor lines: ``if test:`` ... ``else:`` ...; a side no instance takes is a guard,
    ``if test: raise ValueError(refusal)`` (``refusal`` is a Python string literal), followed by
    the other side's lines unindented; a side with nothing to construct is left out (``if not
    test:`` when it is the first)."""
    if tree is None:
        return [("raise", refusal)]
    if isinstance(tree, Leaf):
        return list(tree.init)
    if tree.then is None or tree.orelse is None:  # a guard, then the side taken at the class's level
        refused = tree.test if tree.then is None else ast.Not(tree.test)
        taken = init_lines(tree.orelse if tree.then is None else tree.then, refusal)
        return [("choice", (py(refused, -1), [("raise", refusal)], [])), *taken]
    then, orelse = init_lines(tree.then, refusal), init_lines(tree.orelse, refusal)
    if then == orelse:
        return then
    if not then:  # the 'then' side's layers exist already (an earlier statement made them there)
        return [("choice", (py(ast.Not(tree.test), -1), orelse, []))]
    return [("choice", (py(tree.test, -1), then, orelse))]


def unguarded(lines: list[tuple[str, Any]], before: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``lines`` without the guards that ``before`` has already made at the class's level: one
    ``if conv_mlp: raise ...`` stands for every statement that ``conv_mlp`` chooses."""
    tests = {data[0] for kind, data in before if _is_guard(kind, data)}
    return [(kind, data) for kind, data in lines if not (_is_guard(kind, data) and data[0] in tests)]


def _is_guard(kind: str, data: Any) -> bool:
    return kind == "choice" and not data[2] and [k for k, _ in data[1]] == ["raise"]


def _taken(tree: Tree, layers_only: bool = False) -> Tree:
    """The tree without the sides no instance takes (their constructor refuses), and without
    the sides that bind a value when ``layers_only``."""
    if isinstance(tree, Branch):
        then = _taken(tree.then, layers_only) if tree.then is not None else None
        orelse = _taken(tree.orelse, layers_only) if tree.orelse is not None else None
        if layers_only:
            then = None if isinstance(then, Leaf) and then.binds else then
            orelse = None if isinstance(orelse, Leaf) and orelse.binds else orelse
        if then is None or orelse is None:
            side = then if then is not None else orelse
            assert side is not None, "a choice with no side to run"
            return side
        return Branch(tree.test, then, orelse)
    return tree


def _leaves(tree: Tree | None) -> list[Leaf]:
    if tree is None:
        return []
    if isinstance(tree, Leaf):
        return [tree]
    return _leaves(tree.then) + _leaves(tree.orelse)


def forward_steps(tree: Tree, flag: Callable[[ast.Expr], str], present: str | None, bound: list[Step]) -> list[Step]:
    """The forward steps; where the sides run different steps, ``if self.FLAG:`` picks them
    (``flag(test)`` names an attribute that holds the test, set in ``__init__``). Where some
    side binds a value instead of making a layer, its instances hold None in the attribute
    ``present``, and ``if self.PRESENT is not None:`` runs the layers' steps, else ``bound``
    (TorchScript then compiles only the calls an instance has)."""
    leaves = _leaves(tree)
    if present is not None and any(leaf.binds for leaf in leaves) and not all(leaf.binds for leaf in leaves):
        return [Present(present, tuple(_forward(_taken(tree, True), flag)), tuple(bound))]
    return _forward(_taken(tree), flag)


def _forward(tree: Tree, flag: Callable[[ast.Expr], str]) -> list[Step]:
    if isinstance(tree, Leaf):
        return list(tree.forward)
    assert tree.then is not None and tree.orelse is not None
    then, orelse = _forward(tree.then, flag), _forward(tree.orelse, flag)
    same = _same_steps(then, orelse)
    if same is not None:
        return same
    return [Choice(flag(tree.test), tuple(then), tuple(orelse))]


def _same_steps(a: list[Step], b: list[Step]) -> list[Step] | None:
    """``a`` when both sides run the same steps; a shape comment that differs is left out."""
    if len(a) != len(b) or any(_uncommented(x) != _uncommented(y) for x, y in zip(a, b, strict=True)):
        return None
    return [x if x == y else _uncommented(x) for x, y in zip(a, b, strict=True)]


def _uncommented(step: Step) -> Step:
    """A call without its shape comment (the only steps that have one)."""
    return replace(step, comment="") if isinstance(step, Call) else step


def point_expr(tree: Tree, get: Callable[[Any], Any], fold: Callable[[Any], Any]) -> Any:
    """A value the sides leave (channels, stride) as one expression: ``a if test else b``."""
    tree = _taken(tree)
    return _point(tree, get, fold)


def _point(tree: Tree, get: Callable[[Any], Any], fold: Callable[[Any], Any]) -> Any:
    if isinstance(tree, Leaf):
        return get(tree.point)
    assert tree.then is not None and tree.orelse is not None
    return fold(ast.Cond(tree.test, _point(tree.then, get, fold), _point(tree.orelse, get, fold)))
