"""``resdsl fmt`` on files: reading, formatting (:func:`resdsl.tools.fmt.format_text`), checking, diffing
and replacing them atomically, and the command's messages and exit status."""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from resdsl.diagnostics import Diagnostic, ResdslError, error
from resdsl.diagnostics.files import keep_endings, read_text, replace_file
from resdsl.syntax import ast
from resdsl.tools.fmt import format_text


@dataclass
class FileResult:
    """What formatting one file found: its new text (None when it could not be read or parsed)."""

    path: str
    old: str = ""
    new: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new is not None and self.new != self.old

    def diff(self) -> str:
        """A unified diff from the file as it is to the file as ``resdsl fmt`` would write it."""
        if not self.changed:
            return ""
        old, new = self.old.splitlines(keepends=True), (self.new or "").splitlines(keepends=True)
        lines = difflib.unified_diff(old, new, f"a/{self.path}", f"b/{self.path}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def arch_files(paths: Iterable[str]) -> list[str]:
    """The files named, with every ``*.arch`` file under a named folder (sorted)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        out += sorted(str(f) for f in path.rglob("*.arch") if f.is_file()) if path.is_dir() else [p]
    return list(dict.fromkeys(out))


def format_file(path: str) -> FileResult:
    """Read and format one file; never writes (see :func:`write_atomically`). The new text keeps
    the file's byte-order mark, and the line ending of every line the layout leaves as it was."""
    result = FileResult(path)
    try:
        result.old = read_text(path, newlines=False)  # written back: line endings kept
    except ResdslError as exc:
        result.diagnostics.extend(exc.diagnostics)
        return result
    try:
        result.new = keep_endings(result.old, format_text(result.old, path))
    except ResdslError as exc:
        result.diagnostics.extend(exc.diagnostics)
    return result


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (temporary file, then ``os.replace``), keeping its mode:
    an interrupted run leaves the old file or the new one, never half of one."""
    target = Path(path).resolve()  # through a symbolic link: the link stays, its target changes
    if not os.access(target, os.W_OK):  # os.replace would get round a read-only file's protection
        raise PermissionError(errno.EACCES, "permission denied", path)
    replace_file(target, text)


def run(
    files: Sequence[str],
    *,
    check: bool,
    show_diff: bool,
    echo: Callable[[str, bool], None],
    render: Callable[[list[Diagnostic], dict[str, str]], None],
    stdin: TextIO | None = None,
) -> int:
    """``resdsl fmt``: format, check or diff ``files`` (``-``: standard input to standard output).

    ``echo(text, to_stderr)`` and ``render(diagnostics, sources)`` print; returns the exit status:
    1 when a file could not be read, parsed or written, or (``check``) would change; else 0.
    """
    if tuple(files) == ("-",) and stdin is not None:
        text = stdin.read()
        try:
            echo(keep_endings(text, format_text(text, "<stdin>")), False)
        except ResdslError as exc:
            render(exc.diagnostics, {"<stdin>": text})
            return 1
        return 0
    results = [format_file(f) for f in arch_files(files)]
    read = {r.path: r.old for r in results if not any(d.code == "E004" for d in r.diagnostics)}
    render([d for r in results for d in r.diagnostics], read)  # an unreadable file's excerpt: from the disk
    failed = sum(r.new is None for r in results)
    for r in results:
        if show_diff:
            echo(r.diff(), False)
        if r.changed and check:
            echo(f"would reformat {r.path}\n", False)
        elif r.changed and not show_diff:
            try:
                write_atomically(r.path, r.new or "")
            except OSError as exc:
                span = ast.Span(r.path, 0, 0, 0, 0)
                render([error("E502", f"cannot write {r.path}: {exc.strerror or exc}", span)], {})
                failed += 1
                continue
            echo(f"reformatted {r.path}\n", True)
    changed = sum(r.changed for r in results)
    verb = "would be reformatted" if check or show_diff else "reformatted"
    echo(f"{changed} file{'s' * (changed != 1)} {verb}, {len(results) - changed - failed} unchanged\n", True)
    return 1 if failed or (check and changed) else 0
