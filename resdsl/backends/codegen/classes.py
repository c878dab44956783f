"""The template's model: the classes, constructor calls and forward steps that the emitter
(:mod:`codegen_emit`) fills from the IR and templates/module.py.j2 writes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ctor:
    attr: str
    cls: str
    args: list[str]


@dataclass
class Call:
    """A constructor call the template writes out: ``Name(arg, key=value)``."""

    name: str
    args: list[str]


@dataclass
class Step:
    """One line (or small group) of a forward pass."""

    kind: str  # call | flatten | save | residual
    target: str = ""
    module: str = ""
    source: str = ""
    comment: str = ""
    shortcut: str | None = None  # residual: attribute holding the shortcut module
    optional: bool = False  # residual: the shortcut module may be None
    inplace: bool = False
    guard: str | None = None  # residual: attribute that says whether to add at all
    checkpointed: str | None = None  # call: the modules to run under checkpointing instead
    steps: list[Step] = field(default_factory=list)  # checkpoint: the steps of both branches


@dataclass
class ClassDef:
    name: str
    doc: str  # already escaped for a docstring
    params: list[tuple[str, str, str | None]]  # (name, type, default source or None)
    init: list[tuple[str, Any]] = field(default_factory=list)  # ("let", (name, src)) | ("module", Ctor) | ...
    forward: list[Step] = field(default_factory=list)
    main: str = "out"
    returns: str = "Tensor"  # forward's return type
    zero_init: list[str] = field(default_factory=list)  # batchnorm attributes zeroed by zero_init_residual
    kinds: list[tuple[Step, Any]] = field(default_factory=list)  # each guarded residual step and its kind
    plain_kinds: list[Any] = field(default_factory=list)  # kinds of residuals written as 'none' (refused otherwise)
    locals: set[str] = field(default_factory=set)  # variable names taken in forward
    layer_params: set[str] = field(default_factory=set)  # parameters holding layers, built in
    attrs: set[str] = field(default_factory=set)  # module attribute names
