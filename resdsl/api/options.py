"""The API's two namespaces: a spec's parameters (``params={...}`` or keywords no function takes)
and each function's own options. A keyword option given a value only a spec parameter of that
name takes is E219, before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.api.specs import Spec, resolve_spec
from resdsl.diagnostics import Collector, ResdslError, error
from resdsl.ir import Network
from resdsl.semantics.elaborate import load, network_params
from resdsl.syntax import ast

if TYPE_CHECKING:
    pass


def spec_parameters(params: Mapping[str, Any] | None, keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's parameters: ``params=`` and the keywords that are no option of the function;
    one given both ways is refused (E219)."""
    twice = sorted(set(params or {}) & set(keywords))
    if twice:
        raise ResdslError(
            error(
                "E219",
                f"the spec parameter{'s' * (len(twice) > 1)} {', '.join(map(repr, twice))} given twice: "
                "in params= and as a keyword",
                ast.Span("<params>", 0, 0, 0, 0),
                help="give each parameter once, in params={...}",
            )
        )
    return {**(params or {}), **keywords}


Option = tuple[Any, Callable[[Any], bool]]  # a keyword's value and whether the option takes it


def refuse_clashes(spec: Spec, network: str | None, function: str, options: Mapping[str, Option]) -> None:
    """E219 for an option given a value it does not take while the spec has a parameter of that
    name: the caller meant the parameter (``build_model("resnet50", norm="groupnorm(32)")``)."""
    wrong = {name: value for name, (value, takes) in options.items() if not takes(value)}
    if not wrong:
        return
    names = set(spec.params) if isinstance(spec, Network) else _parameter_names(spec, network)
    for name, value in wrong.items():
        if name in names:
            raise ResdslError(
                error(
                    "E219",
                    f"{function}({name}=...) is {function}'s own option, and the spec also has a parameter "
                    f"'{name}'; {value!r} is not a value of the option",
                    ast.Span(f"<{name}>", 0, 0, 0, 0),
                    help=f"to set the spec's parameter, pass params={{{name!r}: {value!r}}}; "
                    + OPTION_DOCS.get(name, ""),
                )
            )


def _parameter_names(spec: str | Path, network: str | None) -> set[str]:
    """The parameters of the networks a spec defines (of ``network`` when given), read without
    elaborating anything; an empty set when the spec cannot be read (compiling says why)."""
    try:
        path, text, name = resolve_spec(spec)
    except ResdslError:
        return set()
    program = load(path, Collector(), text=text)
    wanted = network or name
    return {p for d in program.own_networks() if wanted is None or d.name == wanted for p in network_params(program, d)}


def whole_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def names_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, Sequence) and not isinstance(value, str))


def checkpoint_option(value: Any) -> bool:
    return value is None or isinstance(value, bool) or names_or_none(value)


OPTION_DOCS = {
    "norm": "norm= is the batchnorm class: 'batchnorm' or 'syncbatchnorm'",
    "mode": "mode= is 'training' or 'inference'",
    "zero_init_residual": "zero_init_residual= is true or false",
    "head": "head= is a number of outputs for a new linear layer",
    "in_channels": "in_channels= is a number of input channels",
    "features": "features= lists the layers whose outputs to return",
    "checkpoint": "checkpoint= is true or a list of stages",
}


def build_options(given: Mapping[str, Any]) -> dict[str, Option]:
    """build_model's options that a spec parameter could be mistaken for, with their values."""
    return {
        "norm": (given["norm"], lambda v: v in (None, "batchnorm", "syncbatchnorm")),
        "mode": (given["mode"], lambda v: v in ("training", "inference")),
        "zero_init_residual": (given["zero_init_residual"], lambda v: v is None or isinstance(v, bool)),
        "head": (given["head"], whole_or_none),
        "in_channels": (given["in_channels"], whole_or_none),
        "features": (given["features"], names_or_none),
        "checkpoint": (given["checkpoint"], checkpoint_option),
        "channels_last": (given["channels_last"], is_bool),
        "freeze_bn": (given["freeze_bn"], is_bool),
        "compile": (given["compile"], is_bool),
    }
