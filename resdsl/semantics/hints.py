"""Help for names that mean nothing where they stand: a block of the shipped library the file
forgot to import (the import line to add, as a fix), and a word given for a shortcut kind.

The evaluator reports the unknown name; these work out what to say about it and which fix to
attach (:mod:`resdsl.ir.repairs` writes the edit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resdsl.diagnostics import Collector, Diagnostic, error
from resdsl.diagnostics.fixes import Fix
from resdsl.ir.repairs import import_line
from resdsl.ops import P
from resdsl.resources import library_dir
from resdsl.semantics.values import SHORTCUTS, meaning, suggest, typo_fixes
from resdsl.syntax import ast
from resdsl.syntax.loader import Program, library_definitions, load, resolve_import


def forgotten_import(program: Program, name: str, span: ast.Span) -> tuple[str, tuple[Fix, ...]] | None:
    """The help and fix for ``name``, used at ``span``, when the shipped library defines it and the
    file does not import it: the import line to add. It is certain, so ``check --fix`` adds it,
    when one library file defines the name, the file's own imports all resolve (one that is not
    found may be the one meant) and nothing the import brings clashes with the file's names."""
    files = library_definitions().get(name)
    if not files:
        return None
    module = program.modules.get(span.file)
    if len(files) > 1:
        fixes = tuple(f for path in files for f in import_line(program.sources, module, path, safe=False))
        return f"'{name}' is defined in the shipped {' and '.join(files)}: import one of them", fixes
    (path,) = files
    visible = program.definitions(span.file)
    brought = load(library_dir() / path, Collector()).definitions()
    clash = sorted(n for n, d in brought.items() if n in visible and visible[n] is not d)
    help = f"'{name}' is defined in the shipped library: add import \"{path}\" at the top of the file"
    if clash:
        help += f" (it also defines {', '.join(clash)}, which this file defines too)"
    broken = module is not None and any(resolve_import(i, _importer(span.file)) is None for i in module.imports)
    return help, import_line(program.sources, module, path, safe=not clash and not broken)


def _importer(file: str) -> Path | None:
    """The file whose imports resolve relative to it (None for a spec given as text)."""
    path = Path(file)
    return path.resolve() if path.is_file() else None


def unknown_kind(param: P, value: ast.Expr, env: dict[str, Any], globals: dict[str, ast.Definition]) -> bool:
    """Whether ``value``, given for a shortcut kind (``residual(...)``, ``shortcut=``), is a name
    that means nothing here: it is reported against the kinds, not against every name."""
    if param.type != "shortcut" and param.name != "shortcut":
        return False
    if not isinstance(value, ast.Name):
        return False
    return meaning(value.id, env, globals) is None and value.id not in globals  # a network's name: reported as a name


def kind_error(name: ast.Name, env: dict[str, Any]) -> Diagnostic:
    """E201 for a word that is no shortcut kind, with the kinds (and a close one) as the help."""
    kinds = ", ".join(SHORTCUTS)
    close = suggest(name.id, [*SHORTCUTS, *env])
    return error(
        "E201",
        f"unknown shortcut kind '{name.id}'",
        name.span,
        help=f"{close} (the kinds: {kinds})" if close else f"the kinds: {kinds}",
        fixes=typo_fixes(name.id, [*SHORTCUTS, *env], name.span),
    )
