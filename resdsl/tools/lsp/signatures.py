"""How ops, blocks, networks, built-in forms and shortcut kinds are described to a person:
signatures with defaults and their documentation (hover and completion share these)."""

from __future__ import annotations

from typing import Any

from resdsl.diagnostics.fixes import span_text
from resdsl.ops import OPS, REQUIRED, P
from resdsl.ops.shortcut import SHORTCUT_DOCS
from resdsl.semantics.builtins import BUILTINS
from resdsl.semantics.values import STAGE_PARAMS
from resdsl.syntax import ast
from resdsl.tools.lsp.locate import doc_comment

FORM_DOCS = {
    "stage": "A sequence of `repeat` instances of a block (an `nn.Sequential`); `stride` and `shortcut` "
    "apply to the first block only, as the paper downsamples once per stage.",
    "residual": "The residual addition: the main branch plus the shortcut of the block input; "
    "the checker realises the shortcut from the two shapes.",
    "sequential": "Layers numbered by position, like `nn.Sequential` (`conv1.0`, `conv1.1`, ...).",
    "gate": "The input scaled by what a side branch computes from it (squeeze-excitation).",
}
FORM_SIGNATURES = {
    "sequential": "sequential(layer, ...)",
    "gate": "gate(branch)",
}


def _value(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "none"
    return f'"{value}"' if isinstance(value, str) else str(value)


def op_param(p: P) -> str:
    """``name`` for a required parameter, ``name=default`` otherwise."""
    if p.required:
        return p.name
    if p.default_from is not None and (p.default is None or p.default is REQUIRED):
        return f"{p.name}={p.default_from}"
    return f"{p.name}={_value(p.default)}"


def op_signature(name: str) -> str:
    if name == "stage":
        params: tuple[P, ...] = STAGE_PARAMS
    elif name in OPS:
        params = OPS[name].params
    else:
        return FORM_SIGNATURES.get(name, f"{name}(...)")
    return f"{name}({', '.join(op_param(p) for p in params)})"


def op_doc(name: str) -> str:
    """An op's or form's documentation, with the aliases its parameters accept."""
    if name in FORM_DOCS:
        return FORM_DOCS[name]
    op = OPS.get(name)
    if op is None:
        return ""
    aliases = [f"`{p.name}`: also {', '.join(p.aliases)}" for p in op.params if p.aliases]
    return op.doc + ("\n\n" + "; ".join(aliases) if aliases else "")


def function_signature(name: str) -> str:
    """A builtin function's forms, one a line: ``range(n)`` and ``range(start, stop, step=1)``."""
    return "\n".join(BUILTINS[name].signatures())


def function_doc(name: str) -> str:
    """A builtin function's doc line, and how generated code writes it."""
    f = BUILTINS[name]
    return f"{f.doc}.\n\nBuiltin function; generated code calls `{f.python.replace('{}', '...')}`."


def param_text(param: ast.Param, sources: dict[str, str]) -> str:
    if param.default is None:
        return param.name
    written = span_text(sources.get(param.default.span.file), param.default.span)
    return f"{param.name} = {written if written is not None else '...'}"


def definition_signature(definition: ast.Definition, sources: dict[str, str]) -> str:
    if isinstance(definition, ast.NetworkAlias):
        target = span_text(sources.get(definition.span.file), definition.target.span) or definition.target.func
        return f"network {definition.name} = {target}"
    word = "block" if isinstance(definition, ast.BlockDef) else "network"
    params = ", ".join(param_text(p, sources) for p in definition.params)
    return f"{word} {definition.name}({params})"


def definition_doc(definition: ast.Definition, sources: dict[str, str]) -> str:
    doc = doc_comment(sources.get(definition.span.file), definition.span.line)
    return doc + ("\n\n" if doc else "") + f"defined at `{definition.name_span}`"


def shortcut_doc(kind: str) -> str:
    return f"shortcut kind `{kind}`: {SHORTCUT_DOCS[kind]}"


def markdown(signature: str, doc: str = "") -> str:
    return f"```arch\n{signature}\n```" + (f"\n\n{doc}" if doc else "")
