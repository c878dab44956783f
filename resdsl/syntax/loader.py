"""Loading files: a root spec and everything it imports, with the names each file can see.

Imports resolve relative to the importing file, then to the shipped library; cycles and
duplicate definitions are reported. Problems are collected, not raised.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from resdsl.diagnostics import Collector, ResdslError, error
from resdsl.diagnostics.files import read_text
from resdsl.diagnostics.fixes import Edit, Fix
from resdsl.ops import OPS
from resdsl.resources import library_dir
from resdsl.syntax import ast
from resdsl.syntax.names import reserved_names
from resdsl.syntax.parser import parse

MAX_IMPORT_DEPTH = 50  # files importing files (resdsl.semantics.limits documents every limit)


@dataclass
class Program:
    """The files reachable from one root file, and the names each one can see."""

    root: str
    sources: dict[str, str] = field(default_factory=dict)
    # text to use instead of a file's contents (an editor's unsaved buffers), by resolved path
    overlay: Mapping[Path, str] = field(default_factory=dict, repr=False)
    modules: dict[str, ast.Module] = field(default_factory=dict)
    visible: dict[str, dict[str, ast.Definition]] = field(default_factory=dict)

    def definitions(self, file: str | None = None) -> dict[str, ast.Definition]:
        return self.visible.get(file or self.root, {})

    def own_networks(self) -> list[ast.NetworkDef | ast.NetworkAlias]:
        module = self.modules.get(self.root)
        if module is None:
            return []
        return [d for d in module.definitions if isinstance(d, (ast.NetworkDef, ast.NetworkAlias))]


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load(
    path: str | Path | None,
    collector: Collector,
    text: str | None = None,
    name: str = "<string>",
    overlay: Mapping[Path, str] | None = None,
) -> Program:
    """Parse ``path`` (or ``text``) and everything it imports; a file in ``overlay`` (keyed by
    resolved path) is read from there instead of the disk."""
    root = display_path(Path(path)) if path is not None else name
    program = Program(root, overlay=overlay or {})
    _load_file(program, root, Path(path).resolve() if path is not None else None, text, collector, [])
    return program


@lru_cache(maxsize=128)
def parse_file(text: str, file: str) -> ast.Module:
    """:func:`parse`, once per file text: the AST is immutable, so compiling the same specs again
    (a sweep of ``build_model`` calls, the language server re-checking an edited file against the
    unchanged library) reuses it. Syntax errors are not cached; they are raised each time.
    ``parse_file.cache_clear()`` forgets every file (benchmarks measuring a first compile do)."""
    return parse(text, file)


def _load_file(
    program: Program,
    file: str,
    real: Path | None,
    text: str | None,
    collector: Collector,
    stack: list[str],
) -> dict[str, ast.Definition]:
    if file in program.visible:
        return program.visible[file]
    if text is None and real is not None:
        text = program.overlay.get(real)
    if text is None:
        assert real is not None
        try:
            text = read_text(real, file)
        except ResdslError as exc:
            collector.extend(exc.diagnostics)
            program.visible[file] = {}
            return {}
    program.sources[file] = text
    try:
        module = parse_file(text, file)
    except ResdslError as exc:
        collector.extend(exc.diagnostics)
        program.visible[file] = {}
        return {}
    program.modules[file] = module
    collector.extend(reserved_names(module))
    visible: dict[str, ast.Definition] = {}
    owners: dict[str, str] = {}
    stack = [*stack, file]
    for imp in module.imports:
        if len(stack) > MAX_IMPORT_DEPTH:
            collector.add(
                error(
                    "E602",
                    f"imports nested more than {MAX_IMPORT_DEPTH} deep ({' -> '.join(stack[:3])} -> ...)",
                    imp.span,
                    help="import the files you need directly from one file",
                )
            )
            break
        target = resolve_import(imp, real)
        if target is None:
            searched = [str((real.parent if real else Path.cwd()) / imp.path), str(library_dir() / imp.path)]
            collector.add(
                error(
                    "E101",
                    f'import "{imp.path}" not found',
                    imp.span,
                    notes=[f"looked in {s}" for s in searched],
                    help=_import_hint(close := _close_import(imp.path, real)),
                    fixes=_import_fixes(imp, close),
                )
            )
            continue
        shown = display_path(target)
        if shown in stack:
            cycle = " -> ".join([*stack[stack.index(shown) :], shown])
            collector.add(
                error("E102", f"import cycle: {cycle}", imp.span, help="move shared blocks into a third file")
            )
            continue
        for name, definition in _load_file(program, shown, target, None, collector, stack).items():
            _define(visible, owners, name, definition, shown, collector)
    for definition in module.definitions:
        _define(visible, owners, definition.name, definition, file, collector)
    program.visible[file] = visible
    return visible


def _import_hint(close: str | None) -> str:
    """A close match among the files an import could name, or where imports are looked for."""
    if close:
        return f'did you mean "{close}"?'
    return "paths are relative to the importing file, or to the shipped library (std/...)"


def _import_fixes(imp: ast.Import, close: str | None) -> tuple[Fix, ...]:
    """The close match as an editor's quick fix (a guess: never applied by check --fix)."""
    return (Fix(f'change to import "{close}"', (Edit(imp.span, f'import "{close}"'),), safe=False),) if close else ()


def _close_import(wanted: str, importer: Path | None) -> str | None:
    """The file an import most likely meant, among those next to the importer and shipped."""
    roots = [importer.parent if importer is not None else Path.cwd(), library_dir()]
    options: list[str] = []
    for root in roots:
        try:
            found = itertools.islice(root.glob("**/*.arch"), 2000)  # bounded: the importer may sit in /
            options += [p.relative_to(root).as_posix() for p in found]
        except OSError:
            continue
    close = difflib.get_close_matches(wanted, options, n=1, cutoff=0.7)
    return close[0] if close else None


def resolve_import(imp: ast.Import, importer: Path | None) -> Path | None:
    base = importer.parent if importer is not None else Path.cwd()
    for candidate in (base / imp.path, library_dir() / imp.path):
        try:
            if candidate.is_file():
                return candidate.resolve()
        except (OSError, ValueError):  # a name too long, a NUL byte: no such file
            continue
    return None


def _define(
    visible: dict[str, ast.Definition],
    owners: dict[str, str],
    name: str,
    definition: ast.Definition,
    file: str,
    collector: Collector,
) -> None:
    previous = visible.get(name)
    if previous is not None and previous is not definition:
        collector.add(
            error(
                "E103",
                f"'{name}' is defined twice",
                definition.name_span,
                notes=[f"first defined at {previous.name_span}"],
                help="rename one of them",
            )
        )
        return
    function = name in ast.BUILTIN_FUNCTIONS and isinstance(definition, ast.BlockDef)  # its calls are the function's
    if name in OPS or name in ast.BUILTIN_FORMS or function:
        what = "function" if function else "op"
        collector.add(error("E103", f"'{name}' is a built-in {what} and cannot be redefined", definition.name_span))
        return
    visible[name] = definition
    owners[name] = file


@lru_cache(maxsize=1)
def library_definitions() -> dict[str, tuple[str, ...]]:
    """Each name the shipped library (``std/...``) defines, with the import path of every file
    that defines it: what a forgotten ``import`` would have brought in."""
    found: dict[str, list[str]] = {}
    root = library_dir()
    for path in sorted(root.glob("std/**/*.arch")):
        try:
            module = parse_file(path.read_text(encoding="utf-8"), display_path(path))
        except (OSError, UnicodeDecodeError, ResdslError):
            continue
        for definition in module.definitions:
            found.setdefault(definition.name, []).append(path.relative_to(root).as_posix())
    return {name: tuple(files) for name, files in found.items()}


def definition_params(definition: ast.Definition, globals: dict[str, ast.Definition]) -> list[str]:
    seen = set()
    while isinstance(definition, ast.NetworkAlias):
        if definition.name in seen:
            return []
        seen.add(definition.name)
        target = globals.get(definition.target.func)
        if target is None:
            return []
        definition = target
    return [p.name for p in definition.params]


def network_params(program: Program, definition: ast.Definition) -> list[str]:
    return definition_params(definition, program.definitions(definition.span.file))
