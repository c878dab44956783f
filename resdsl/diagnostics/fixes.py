"""Mechanical fixes: text edits carried by diagnostics, applied by ``check --fix`` and the editor.

A stage that detects a mistake whose repair is certain (a shortcut kind that makes an addition
agree, a bias that batchnorm cancels) attaches a :class:`Fix` to its diagnostic: a title and
the text edits that make it. Both consumers read the same data, so ``resdsl check --fix`` and
the language server's code actions never disagree. This module applies edits to text and
writes files atomically; it knows nothing about what the edits mean.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from resdsl.diagnostics.span import Span
from resdsl.resources import library_dir


@dataclass(frozen=True)
class Edit:
    """Replace the text of ``span`` (1-based lines and columns, end exclusive) with ``text``;
    an empty span (start == end) inserts."""

    span: Span
    text: str


@dataclass(frozen=True)
class Fix:
    """One way to repair a diagnostic. ``safe`` fixes are applied by ``check --fix``; the
    others (a guess at a misspelt name) are only offered to a person in the editor."""

    title: str
    edits: tuple[Edit, ...]
    safe: bool = True

    @property
    def files(self) -> set[str]:
        return {e.span.file for e in self.edits}


def in_library(file: str) -> bool:
    """Whether ``file`` is part of the shipped library, which fixes never edit."""
    return _in_library(os.path.abspath(file))


@cache
def _in_library(file: str) -> bool:
    try:
        return Path(file).resolve().is_relative_to(library_dir().resolve())
    except (OSError, ValueError):
        return False


def line_starts(text: str) -> list[int]:
    """Offset of each line's first character, lines split at "\\n" as the parser counts them."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def offset(text: str, starts: Sequence[int], line: int, column: int) -> int:
    """The offset of a 1-based (line, column); past the end of a line clamps to its end."""
    if line < 1:
        return 0
    if line > len(starts):
        return len(text)
    begin = starts[line - 1]
    end = starts[line] - 1 if line < len(starts) else len(text)
    return min(begin + max(column - 1, 0), end)


def span_text(text: str | None, span: Span) -> str | None:
    """The source text a span covers (None without text or for an empty span)."""
    if text is None or not span.line:
        return None
    body = text.lstrip("\ufeff")
    starts = line_starts(body)
    return body[offset(body, starts, span.line, span.column) : offset(body, starts, span.end_line, span.end_column)]


def add_argument(text: str | None, call: Span, argument: str) -> Edit | None:
    """An insertion of ``argument`` before the closing parenthesis of the call at ``call``,
    after a comma unless the call is empty; None when the call has no parentheses."""
    written = span_text(text, call)
    if written is None or not written.endswith(")"):
        return None
    inner = written[:-1].rstrip()
    at = Span(call.file, call.end_line, call.end_column - 1, call.end_line, call.end_column - 1)
    return Edit(at, ("" if inner.endswith(("(", ",")) else ", ") + argument)


def delete_argument(text: str | None, arg: Span, siblings: Iterable[Span]) -> Edit | None:
    """The deletion of one argument (``arg``: its whole ``name=value`` span) with the comma
    before it; ``siblings`` are the spans of the call's other arguments. None when it is the
    first argument or anything but a comma (a comment) stands between."""
    start = (arg.line, arg.column)
    before = [s for s in siblings if s.file == arg.file and (s.end_line, s.end_column) <= start]
    if not before:
        return None
    last = max(before, key=lambda s: (s.end_line, s.end_column))
    between = span_text(text, Span(arg.file, last.end_line, last.end_column, arg.line, arg.column))
    if between is None or between.strip() != ",":
        return None
    return Edit(Span(arg.file, last.end_line, last.end_column, arg.end_line, arg.end_column), "")


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with every edit made; raises ValueError when two edits overlap."""
    bom = text[: len(text) - len(text.lstrip("\ufeff"))]  # the parser counts columns after BOMs
    body = text[len(bom) :]
    starts = line_starts(body)
    ranges = sorted(
        {
            (
                offset(body, starts, e.span.line, e.span.column),
                offset(body, starts, e.span.end_line, e.span.end_column),
                e.text,
            )
            for e in edits
        }
    )
    out: list[str] = []
    pos = 0
    for begin, end, replacement in ranges:
        if begin < pos:
            raise ValueError("edits overlap")
        out.append(body[pos:begin])
        out.append(replacement)
        pos = max(end, begin)
    out.append(body[pos:])
    return bom + "".join(out)
