"""Completion: ops, the blocks a file can see, their parameters with defaults, and shortcut
kinds, chosen by the call the cursor is in. The context is read from the text before the
cursor (which may not parse while typing); the names come from the latest text that did."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lsprotocol import types

from resdsl.ops import OPS, P
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.semantics.builtins import BUILTINS, BuiltinParam
from resdsl.semantics.values import INSTANCE_DOCS, STAGE_PARAMS
from resdsl.syntax import ast
from resdsl.syntax.ast import BUILTIN_FORMS
from resdsl.tools.lsp.convert import Lines
from resdsl.tools.lsp.locate import body_names, definition_at_line, params_of
from resdsl.tools.lsp.signatures import (
    FORM_DOCS,
    definition_doc,
    definition_signature,
    function_doc,
    function_signature,
    op_doc,
    op_param,
    op_signature,
    param_text,
    shortcut_doc,
)
from resdsl.tools.lsp.workspace import Analysis, Workspace

LAYER_PARAMS = ("norm", "block", "branch")  # parameters that take a layer, by convention
_NAMED = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*[A-Za-z_]?\w*$")
_WORD = re.compile(r"^\s*[A-Za-z_]?\w*$")


@dataclass
class Context:
    """Where the cursor is: the call around it, which argument, and what is typed of it."""

    func: str | None  # the function of the innermost unclosed call
    index: int  # how many arguments come before this one
    typed: str  # the text of this argument so far (or of the statement, outside calls)
    in_stage: bool = False  # inside the block argument of a stage(...): instance values are bound


def _strip_comment(line: str) -> str:
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i]
    return line


def context(prefix: str) -> Context | None:
    """The completion context at the end of ``prefix``; None inside a comment or string."""
    lines = prefix.split("\n")
    if _strip_comment(lines[-1]) != lines[-1] or lines[-1].count('"') % 2:
        return None
    text = "\n".join(_strip_comment(line) for line in lines)
    depth = commas = 0
    last_sep = len(text)
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch in ")]":
            depth += 1
        elif ch == "[" and depth:
            depth -= 1
        elif ch == "[":  # inside a list: values
            return Context("[", commas, text[(i + 1 if commas == 0 else last_sep) :])
        elif ch == "(":
            if depth:
                depth -= 1
                continue
            func = re.search(r"([A-Za-z_]\w*)\s*$", text[:i])
            start = i + 1 if commas == 0 else last_sep
            outer = context(text[: func.start()]) if func else None
            in_stage = outer is not None and (
                outer.in_stage
                or (outer.func == "stage" and (outer.index == 0 or outer.typed.lstrip().startswith("block")))
            )
            return Context(func.group(1) if func else None, commas, text[start:], in_stage)
        elif ch == "," and not depth:
            if commas == 0:
                last_sep = i + 1
            commas += 1
        elif ch in "{}" and not depth:
            break
    statement = text[text.rfind("\n") + 1 :]
    return Context(None, 0, statement)


def completions(ws: Workspace, analysis: Analysis, position: types.Position) -> list[types.CompletionItem]:
    source = ws.parsed.get(analysis.uri)
    lines = Lines(ws.texts.get(analysis.uri, analysis.text), ws.encoding)  # the text as typed, checked or not
    ctx = context(lines.prefix(position))
    if ctx is None:
        return []
    program = source.result.program if source is not None else None
    definitions = program.definitions(source.file) if program is not None and source is not None else {}
    sources = source.result.sources if source is not None else {}
    module = source.module if source is not None else None
    enclosing = definition_at_line(module, position.line + 1) if module is not None else None
    named = _NAMED.match(ctx.typed)
    values = [*_values(enclosing, sources), *(_instance_values() if ctx.in_stage else []), *_functions()]
    if named is not None:  # the value of name=...
        key = named.group(1)
        if key == "shortcut":
            return _kinds()
        if key in LAYER_PARAMS:
            return _layers(definitions, sources)
        return values
    if not _WORD.match(ctx.typed):
        return values if ctx.typed.rstrip().endswith(("=", "+", "-", "*", "/")) else []
    func = ctx.func
    if func == "[":
        return values
    if func is None:
        return [*_layers(definitions, sources), *_forms(), *values]
    if func == "stage":
        return _blocks(definitions, sources) if ctx.index == 0 else _params(STAGE_PARAMS[1:])
    if func == "residual":
        return _kinds() if ctx.index == 0 else _params(OPS["residual"].params[1:])
    if func in ("sequential", "gate"):
        return _layers(definitions, sources)
    if func in OPS:
        return [*_params(OPS[func].params), *values]
    if func in BUILTINS:  # the named parameters a builtin takes (range, min and max take none)
        keywords = () if BUILTINS[func].positional else BUILTINS[func].params[ctx.index :]
        return [*_function_params(keywords), *values]
    target = definitions.get(func)
    if isinstance(target, ast.BlockDef | ast.NetworkDef):
        items = [
            types.CompletionItem(
                label=f"{p.name}=",
                kind=types.CompletionItemKind.Property,
                detail=param_text(p, sources),
                insert_text=f"{p.name}=",
                sort_text=f"0{i:03d}",
            )
            for i, p in enumerate(target.params)
        ]
        return [*items, *values]
    return values


def _kinds() -> list[types.CompletionItem]:
    return [
        types.CompletionItem(
            label=kind,
            kind=types.CompletionItemKind.EnumMember,
            detail="shortcut kind",
            documentation=shortcut_doc(kind),
        )
        for kind in SHORTCUT_KINDS
    ]


def _params(params: tuple[P, ...]) -> list[types.CompletionItem]:
    return [
        types.CompletionItem(
            label=f"{p.name}=",
            kind=types.CompletionItemKind.Property,
            detail=op_param(p),
            insert_text=f"{p.name}=",
            sort_text=f"0{i:03d}",
        )
        for i, p in enumerate(params)
    ]


def _doc(text: str) -> types.MarkupContent:
    return types.MarkupContent(types.MarkupKind.Markdown, text)


def _blocks(definitions: dict[str, ast.Definition], sources: dict[str, str]) -> list[types.CompletionItem]:
    return [
        types.CompletionItem(
            label=name,
            kind=types.CompletionItemKind.Class,
            detail=definition_signature(d, sources),
            documentation=_doc(definition_doc(d, sources)),
            sort_text=f"1{name}",
        )
        for name, d in sorted(definitions.items())
        if isinstance(d, ast.BlockDef)
    ]


def _layers(definitions: dict[str, ast.Definition], sources: dict[str, str]) -> list[types.CompletionItem]:
    ops = [
        types.CompletionItem(
            label=name,
            kind=types.CompletionItemKind.Function,
            detail=op_signature(name),
            documentation=_doc(op_doc(name)),
            sort_text=f"2{name}",
        )
        for name, op in sorted(OPS.items())
        if op.called
    ]
    return [*_blocks(definitions, sources), *ops]


def _forms() -> list[types.CompletionItem]:
    return [
        types.CompletionItem(
            label=name,
            kind=types.CompletionItemKind.Keyword,
            detail=op_signature(name),
            documentation=_doc(FORM_DOCS[name]),
            sort_text=f"3{name}",
        )
        for name in BUILTIN_FORMS
    ]


def _functions() -> list[types.CompletionItem]:
    """The builtin functions of numbers and lists, with their signatures and doc lines."""
    return [
        types.CompletionItem(
            label=name,
            kind=types.CompletionItemKind.Function,
            detail=function_signature(name).replace("\n", " / "),
            documentation=_doc(function_doc(name)),
            sort_text=f"5{name}",
        )
        for name in BUILTINS
    ]


def _function_params(params: Sequence[BuiltinParam]) -> list[types.CompletionItem]:
    return [
        types.CompletionItem(
            label=f"{p.name}=",
            kind=types.CompletionItemKind.Property,
            detail=str(p),
            insert_text=f"{p.name}=",
            sort_text=f"0{i:03d}",
        )
        for i, p in enumerate(params)
    ]


def _instance_values() -> list[types.CompletionItem]:
    """index, count, net_index, net_count, in_channels: what a stage binds for each block."""
    return [
        types.CompletionItem(
            label=name, kind=types.CompletionItemKind.Constant, detail=f"instance value: {doc}", sort_text=f"4{name}"
        )
        for name, doc in INSTANCE_DOCS.items()
    ]


def _values(definition: ast.Definition | None, sources: dict[str, str]) -> list[types.CompletionItem]:
    """The parameters and values of the enclosing definition."""
    items = [
        types.CompletionItem(label=name, kind=types.CompletionItemKind.Variable, detail=param_text(p, sources))
        for name, p in params_of(definition).items()
    ]
    items += [
        types.CompletionItem(label=name, kind=types.CompletionItemKind.Field, detail="layer or value of this body")
        for name in body_names(definition)
    ]
    return items
