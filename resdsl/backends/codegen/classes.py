"""The template's model: the classes and constructor calls that the emitter (:mod:`emit`)
fills from the IR and templates/module.py.j2 writes out, each class's forward as steps of
:mod:`resdsl.ir.forward` (which writes them, as it does build_model's); and the emitter's
state while it writes one body (:class:`Point`, :class:`Body`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resdsl.backends.codegen.expr import py
from resdsl.ir import Scope
from resdsl.ir import forward as ir_forward
from resdsl.ir import steps as ir_steps
from resdsl.ir.steps import Residual, Step
from resdsl.syntax import ast


@dataclass
class Ctor:
    """A module the class's ``__init__`` builds: ``self.attr = cls(args)``."""

    attr: str
    cls: str
    args: list[str]


@dataclass
class Call:
    """A constructor call the template writes out: ``Name(arg, key=value)``."""

    name: str
    args: list[str]


@dataclass
class ClassDef:
    """A generated class (a block, or the network): its parameters, ``__init__`` and ``forward``."""

    name: str
    doc: str  # already escaped for a docstring
    params: list[tuple[str, str, str | None]]  # (name, type, default source or None)
    init: list[tuple[str, Any]] = field(default_factory=list)  # ("let", (name, src)) | ("module", Ctor) | ...
    forward: list[Step] = field(default_factory=list)
    main: str = "out"
    returns: str = "Tensor"  # forward's return type
    # batchnorm attributes zeroed by zero_init_residual, each with the attribute that says whether
    # its residual adds (None: it always does)
    zero_init: list[tuple[str, str | None]] = field(default_factory=list)
    kinds: list[tuple[Residual, Any]] = field(default_factory=list)  # each guarded residual step and its kind
    plain_kinds: list[Any] = field(default_factory=list)  # kinds of residuals written as 'none' (refused otherwise)
    locals: set[str] = field(default_factory=set)  # variable names taken in forward
    layer_params: set[str] = field(default_factory=set)  # parameters holding layers, built in
    fixed: dict[str, ast.Expr] = field(default_factory=dict)  # parameters holding one kind throughout, built in
    attrs: set[str] = field(default_factory=set)  # module attribute names
    flags: set[str] = field(default_factory=set)  # attributes that hold a condition's test
    held: set[str] = field(default_factory=set)  # attributes that hold a merge's argument for forward
    out_channels: Any = None  # a block class: its output channels and stride, in its own terms
    out_stride: Any = None

    def forward_source(self) -> str:
        """``def forward`` as :func:`resdsl.ir.forward.render` writes it, without the last newline."""
        return ir_forward.render(ir_steps.Forward(tuple(self.forward), self.returns, self.main)).rstrip("\n")

    def key(self) -> str:
        """Everything the template writes for this class but its name and docstring: two
        instances whose classes have one key can share one class."""
        return repr(
            (
                self.params,
                self.init,
                self.forward,
                self.main,
                self.returns,
                self.zero_init,
                [(step, py(kind)) for step, kind in self.kinds],
                [py(kind) for kind in self.plain_kinds],
                sorted(self.layer_params),
                sorted(self.flags),
                py(self.out_channels) if self.out_channels is not None else None,
                py(self.out_stride) if self.out_stride is not None else None,
            )
        )


@dataclass(frozen=True)
class Point:
    """Where a value of the forward pass is: its variable, channels and spatial stride so far;
    ``pooled``: a global pool made its map 1 x 1 (what later layers' comments say)."""

    var: str
    channels: Any
    stride: Any
    pooled: bool = False


Guard = frozenset[tuple[str, bool]]  # condition sides, as (test written in Python, side taken)


@dataclass
class Body:
    """The state of writing one scope's body: the instance, the class, and what each statement
    left behind (statement index -1 is the body's input)."""

    scope: Scope
    cls: ClassDef
    names: frozenset[str]
    network: bool
    main: str
    arg: str  # the constructor argument holding the input channels ("" in the network class)
    stmts: tuple[ast.Assign | ast.LayerStmt, ...]
    current: Point
    points: dict[int, Point] = field(default_factory=dict)
    node: str = ""  # this instance's node that holds the value so far
    label: str = "value"  # the layer that made it, to name a saved copy after
    saves: set[int] = field(default_factory=set)  # statements whose value a later residual or merge reads
    # module attributes already constructed, each with the condition sides it was constructed
    # under, one set per construction (a layer in a side of a condition exists only where that
    # side is taken)
    registered: dict[str, set[Guard]] = field(default_factory=dict)
    guard: Guard = frozenset()  # the condition sides the statement being written stands in

    def constructed(self, module: str) -> bool:
        """Whether ``module`` already exists wherever the current statement runs: some
        construction of it stood under no condition side that the current one does not."""
        return any(g <= self.guard for g in self.registered.get(module, ()))

    def register(self, module: str) -> None:
        """Note that ``module`` is constructed here (under the current guard)."""
        self.registered[module] = _minimal(self.registered.get(module, set()) | {self.guard})


def merged(sides: list[tuple[Guard, dict[str, set[Guard]]]], outer: Guard) -> dict[str, set[Guard]]:
    """What is constructed after a choice, from what each side an instance takes constructed
    (its guard, and the guards of every module then): a module keeps every guard it has in
    some side, and one that exists whichever side is taken exists wherever the choice runs
    (``outer``: the sides no instance takes refuse to build)."""
    out: dict[str, set[Guard]] = {}
    for _, registered in sides:
        for module, guards in registered.items():
            out.setdefault(module, set()).update(guards)
    for module, guards in out.items():
        if all(any(g <= guard for g in registered.get(module, ())) for guard, registered in sides):
            guards.add(outer)
    return {module: _minimal(guards) for module, guards in out.items()}


def _minimal(guards: set[Guard]) -> set[Guard]:
    """The guards that no other guard in ``guards`` implies (a weaker one covers them)."""
    return {g for g in guards if not any(h < g for h in guards)}
