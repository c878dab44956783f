"""The steps of a forward pass: frozen dataclasses, one per kind of line.

A ``forward`` is a flat sequence of :data:`Step` s (a module call, a merge, a saved value, a
feature capture, a run of checkpointed calls, a class-level choice ...) with what it returns
(:class:`Forward`). What the steps of a scope are is :mod:`resdsl.ir.forward`'s (with
:mod:`resdsl.ir.planning` for feature outputs and checkpointing), and so is writing them out
(:func:`resdsl.ir.forward.render`); this module holds only the data both share. Nothing here
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from resdsl.ir import Layer
from resdsl.ops import OPS

__all__ = [
    "Assign",
    "Call",
    "Capture",
    "CheckpointGroup",
    "Choice",
    "Flatten",
    "Forward",
    "Lines",
    "NewFeatures",
    "Present",
    "Residual",
    "Save",
    "Step",
    "Update",
    "flattens",
]


@dataclass(frozen=True)
class Call:
    """``target = self.module(source)  # comment``; ``checkpointed``: the modules (source
    text) that run under checkpointing instead, inside a :class:`CheckpointGroup`."""

    target: str
    module: str
    source: str
    comment: str = ""
    checkpointed: str | None = None


@dataclass(frozen=True)
class Flatten:
    """``target = torch.flatten(source, 1)``: a linear layer reads a map."""

    target: str
    source: str


@dataclass(frozen=True)
class Save:
    """``target = source``: a value kept for a later read while the pass moves on."""

    target: str
    source: str


@dataclass(frozen=True)
class Assign:
    """``target = value``: a merge or an op held as a parameter, ``value`` an expression."""

    target: str
    value: str


@dataclass(frozen=True)
class Update:
    """``target operator= value``: a merge in place (``x += s0``, option A's add-into)."""

    target: str
    operator: str
    value: str


@dataclass(frozen=True)
class Residual:
    """A residual addition: ``identity`` is ``source`` or the ``shortcut`` module applied to
    ``tap`` (``optional``: only where that attribute is not None), then added to ``target``,
    in place where ``inplace``; ``guard``: an attribute that says whether to add at all."""

    target: str
    source: str
    tap: str = ""
    shortcut: str | None = None
    optional: bool = False
    inplace: bool = False
    guard: str | None = None
    operator: str = "+"


@dataclass(frozen=True)
class Lines:
    """Lines an op with modules of its own writes into the forward (Res2Net's loop over its
    chunks, :class:`resdsl.ops.OwnModules`), as the op's definition wrote them."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class NewFeatures:
    """``target: dict[str, Tensor] = {}``: the dict of feature outputs."""

    target: str


@dataclass(frozen=True)
class Capture:
    """``target["key"] = value``: one feature output."""

    target: str
    key: str
    value: str


@dataclass(frozen=True)
class CheckpointGroup:
    """Steps written twice: with their checkpointed calls under checkpointing while
    ``self.grad_checkpointing`` is on and the module is not being scripted, else plainly."""

    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Choice:
    """``if self.flag:`` then ``else:`` orelse: instances of one class that run different steps."""

    flag: str
    then: tuple[Step, ...]
    orelse: tuple[Step, ...]


@dataclass(frozen=True)
class Present:
    """``if self.attr is not None:`` then (``else:`` orelse, if any): a layer some instances lack."""

    attr: str
    then: tuple[Step, ...]
    orelse: tuple[Step, ...] = ()


Step = (
    Call
    | Flatten
    | Save
    | Assign
    | Update
    | Residual
    | Lines
    | NewFeatures
    | Capture
    | CheckpointGroup
    | Choice
    | Present
)


@dataclass(frozen=True)
class Forward:
    """A whole ``forward``: its steps, its return type and the variable it returns."""

    steps: tuple[Step, ...]
    returns: str = "Tensor"
    result: str = "x"


def flattens(layer: Layer) -> bool:
    """Whether ``layer`` flattens its input first: a linear layer that reads a map (not tokens,
    which it maps one by one)."""
    return bool(OPS[layer.op].flatten_input and len(layer.in_shapes[0]) == 3)
