"""Where a thing is in a source file: every AST node, diagnostic and fix carries a :class:`Span`.

It lives below the syntax layer so that errors and fixes can point into source without
importing the AST (resdsl.syntax.ast re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resdsl.resources import library_dir

__all__ = ["NO_SPAN", "Span", "is_override", "override_file", "portable"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based lines and columns, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<unknown>", 0, 0, 0, 0)


def portable(span: Span) -> str:
    """``file:line`` that reads the same on every machine: shipped files relative to the library."""
    path = Path(span.file)
    try:
        shown = path.resolve().relative_to(library_dir().resolve()).as_posix()
    except (ValueError, OSError):
        shown = path.as_posix()
    return f"{shown}:{span.line}"


def override_file(key: str) -> str:
    """What the spans of an override's value (``--set KEY=VALUE``, ``build_model(KEY=...)``) name
    as their file, so that a diagnostic about the value says which override it came from."""
    return f"--set {key}"


def is_override(file: str) -> bool:
    return file.startswith("--set ")
