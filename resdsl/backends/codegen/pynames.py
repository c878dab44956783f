"""Names and strings for the code generator: spec names as Python identifiers, and escapes.

Spec names that could shadow something the generated module uses are renamed by
:func:`py_name` (per network, :func:`value_names`); module attributes keep the spec's name
(``state_dict`` keys depend on it). Every string that reaches generated code passes through one
of three escapes: :func:`py_str` (a Python string literal), :func:`doc_text` (inside a
docstring) and :func:`comment_text` (inside a ``#`` comment: no line breaks or control
characters). :mod:`resdsl.backends.codegen.expr` re-exports all of them.
"""

from __future__ import annotations

import builtins
import keyword
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from resdsl.backends.codegen.copied import copied_names
from resdsl.diagnostics import ResdslError, error
from resdsl.syntax import ast

# Every name the generated module defines, imports or uses as a local variable. A spec value
# name (parameter, binding) equal to one of these, to a keyword or to a builtin gets a
# trailing underscore; a block class or factory name equal to one is renamed too.
GENERATED_NAMES = frozenset(
    {
        # imports
        "torch",
        "nn",
        "F",
        "Tensor",
        "Any",
        "contextlib",
        "math",
        "checkpoint",
        "Iterable",
        "Callable",
        # module-level names of the template (the copied helpers' are added below)
        "INPUT_SIZE",
        "MEAN",
        "STD",
        "META",
        "FOLDS",
        "RENAMED",
        "FEATURE_INFO",
        "from_trained",
        "state_dict",  # from_trained's own arguments: a spec parameter must reach it through **kwargs
        "channels_last",
        "compile",  # from_trained's own argument too
        "grad_checkpointing",
        "checkpoint_reentrant",
        "os",
        "Mapping",
        "Sequence",
        "WEIGHTS",
        "preprocess",
        "weights",
        "model",
        # locals and arguments of generated functions
        "self",
        "x",
        "out",
        "identity",
        "network_input",
        "m",
        "layers",
        "kind",
        "changes",
        "zero_init_residual",
        "_",
    }
)


GENERATED_NAMES |= copied_names()
RESERVED = frozenset(n for n in dir(builtins) if not n.startswith("__")) | GENERATED_NAMES


_RENAMES: ContextVar[Mapping[str, str] | None] = ContextVar("resdsl_codegen_renames", default=None)


def _unsafe(name: str) -> bool:
    base = name.rstrip("_")
    mangled = name.startswith("__") and not name.endswith("__")  # private names are mangled in a class
    return not base or keyword.iskeyword(base) or base in RESERVED or mangled


def py_name(name: str) -> str:
    """A spec value name as a Python identifier that shadows nothing the generated code uses:
    the network's own table (see :func:`value_names`), else ``name`` plus ``_`` where unsafe."""
    table = _RENAMES.get()
    if table is not None and name in table:
        return table[name]
    if not _unsafe(name):
        return name
    return "v" + name if name.startswith("__") or not name.strip("_") else name + "_"


def _clashes(name: str) -> bool:
    mangled = name.startswith("__") and not name.endswith("__")
    return keyword.iskeyword(name) or name in RESERVED or mangled or not name.strip("_")


def value_names(names: Iterable[str]) -> dict[str, str]:
    """One Python name for every spec value name of a network (parameters, bindings), each
    distinct from the others, from keywords, builtins and every name the generated code uses."""
    names = sorted(set(names))
    table: dict[str, str] = {}
    taken = set(names)
    for name in names:
        if not _clashes(name):
            table[name] = name
            continue
        candidate = ("v" + name) if name.startswith("__") or not name.strip("_") else name + "_"
        while candidate in taken or keyword.iskeyword(candidate) or candidate in RESERVED:
            candidate += "_"
        taken.add(candidate)
        table[name] = candidate
    return table


@contextmanager
def renaming(table: Mapping[str, str]) -> Iterator[None]:
    token = _RENAMES.set(table)
    try:
        yield
    finally:
        _RENAMES.reset(token)


def attr_name(name: str, span: ast.Span) -> str:
    """A module attribute: exactly the spec's name (state_dict keys depend on it)."""
    if keyword.iskeyword(name) or not name.isidentifier():
        why = "is a Python keyword"
    elif name.startswith("__") and not name.endswith("__"):
        why = "starts with '__' (Python would mangle it inside a class)"
    else:
        return name
    raise ResdslError(
        error(
            "E503",
            f"the layer name '{name}' {why} and cannot be an attribute in generated code",
            span,
            help="rename the layer (build_model can still use it)",
        )
    )


def fresh(base: str, taken: Iterable[str], suffix: str = "_") -> str:
    """``base``, or ``base`` with ``suffix`` repeated until it is not in ``taken``."""
    taken = set(taken)
    while base in taken or keyword.iskeyword(base) or base in RESERVED:
        base += suffix
    return base


# -- escapes ------------------------------------------------------------------------------


def _escape_char(ch: str) -> str:
    return repr(ch)[1:-1]  # \n, \x1b, \u2028, \ud83d ...


def py_str(text: str) -> str:
    """A double-quoted Python string literal for any text (ruff keeps double quotes)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable() and not _is_surrogate(ch):
            out.append(ch)
        else:
            out.append(_escape_char(ch))
    return '"' + "".join(out) + '"'


def doc_text(text: Any) -> str:
    """Text that can stand inside a triple-quoted docstring: the body of a string literal.
    A lone surrogate is shown as its escape (Python cannot encode one in a docstring)."""
    text = "".join(f"\\u{ord(ch):04x}" if _is_surrogate(ch) else ch for ch in str(text))
    return py_str(text)[1:-1]


def comment_text(text: Any) -> str:
    """Text for a ``#`` comment: line breaks and other control characters escaped."""
    return "".join(ch if ch.isprintable() and not _is_surrogate(ch) else _escape_char(ch) for ch in str(text))


def _is_surrogate(ch: str) -> bool:
    return 0xD800 <= ord(ch) <= 0xDFFF


def py_float(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    return repr(value)
