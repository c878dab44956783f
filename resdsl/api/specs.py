"""What a spec argument names: a shipped network, an ``.arch`` file, a spec's text or a compiled
network, and the values given for its parameters (``--set`` strings, input shapes)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resdsl.diagnostics import Collector, Diagnostic, ResdslError, error
from resdsl.diagnostics.span import override_file
from resdsl.ir import Network
from resdsl.resources import shipped_specs
from resdsl.semantics.elaborate import Elaborator, Failed, Program
from resdsl.syntax import ast
from resdsl.syntax.parser import parse_expr

if TYPE_CHECKING:
    pass

Spec = str | Path | Network


def shipped_names() -> dict[str, Path]:
    """Every network reachable by name: each shipped file's stem and each network it defines."""
    names: dict[str, Path] = {}
    for path in shipped_specs():
        names.setdefault(path.stem, path)
    return names


def resolve_spec(spec: str | Path) -> tuple[Path | None, str | None, str | None]:
    """(path, text, network name) for a path, a shipped name, or source text."""
    text = str(spec)
    if isinstance(spec, Path):
        return spec, None, None
    if "{" in text or "\n" in text:  # no path or name holds these; a spec's text always does
        return None, text, None
    if text.endswith(".arch") or "/" in text:
        return Path(spec), None, None
    candidate = Path(text)
    if candidate.is_file():
        return candidate, None, None
    shipped = shipped_names()
    if text in shipped:
        return shipped[text], None, text
    close = difflib.get_close_matches(text, list(shipped), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "`resdsl list` shows the shipped networks; a file path needs its .arch suffix or a '/'"
    )
    raise ResdslError(
        error("E104", f"'{text}' is neither a file nor a shipped network", ast.Span(text, 0, 0, 0, 0), help=hint)
    )


def parse_override(key: str, value: Any) -> Any:
    """A ``--set`` value written in the language (``10``, ``true``, ``projection``, ``[1, 2]``);
    Python values pass through, tuples becoming the language's lists."""
    if isinstance(value, tuple):
        return [parse_override(key, v) for v in value]
    if isinstance(value, list):
        return [parse_override(key, v) for v in value]
    if not isinstance(value, str):
        return value
    collector = Collector()
    expr = parse_expr(value, override_file(key))
    try:
        return Elaborator(Program("--set"), collector).eval(expr, {})
    except Failed:
        raise ResdslError([_quote_hint(d, key, expr) for d in collector.items]) from None


def _quote_hint(diagnostic: Diagnostic, key: str, expr: ast.Expr) -> Diagnostic:
    """An unknown bare name given as a value (``global_pool=avg``) was most likely meant as a
    string: say how to write one, beside the closest names."""
    if diagnostic.code != "E201" or not isinstance(expr, ast.Name):
        return diagnostic
    text = f'"{expr.id}"'
    quoted = (
        f"if you meant {expr.id!r} as text, write it in quotes: --set {key}='{text}' (params={{{key!r}: '{text}'}})"
    )
    shown = quoted if diagnostic.help is None else f"{diagnostic.help} Or, {quoted}"
    return dataclasses.replace(diagnostic, help=shown)


def parse_shape(value: str | Sequence[int] | None, where: str = "input_shape") -> tuple[int, ...] | None:
    """``"3x224x224"``, ``"3 x 224 x 224"`` or ``(3, 224, 224)`` as a shape tuple (None passes)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.lower().split("x")]
        if not all(p.isdigit() and len(p) <= 12 for p in parts):
            raise ResdslError(
                error(
                    "E213",
                    f"{where} {value!r} is not a shape",
                    ast.Span(f"<{where}>", 0, 0, 0, 0),
                    help="write it as C x H x W, e.g. '3x224x224', or a tuple (3, 224, 224)",
                )
            )
        value = [int(p) for p in parts]
    dims = tuple(value)
    if len(dims) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ResdslError(
            error(
                "E213",
                f"{where} {dims!r} must be C x H x W (or a vector size) with positive whole sizes",
                ast.Span(f"<{where}>", 0, 0, 0, 0),
            )
        )
    return dims
