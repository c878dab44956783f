"""Warnings a spec silences where they arise: ``# ignore: W401`` at the end of the line a warning
points at keeps that warning (and only it) out of the report, as ``--ignore W401`` does for a
whole run. A spec that reproduces a published network faithfully says so at the line that does
what the lint advises against (timm's ResNeSt puts a biased conv before a batchnorm, and
normalises a 1 x 1 map); every instance of that line is silenced, nothing else. Errors are
never silenced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from resdsl.diagnostics.span import Span

__all__ = ["comment_of", "ignored_codes", "silenced"]

_IGNORE = re.compile(r"#\s*ignore:\s*((?:[A-Z]\d{3}[\s,]*)+)")
_CODE = re.compile(r"[A-Z]\d{3}")
_STRING = re.compile(r'"([^"\\\n]|\\.)*"')  # the grammar's STRING: a # inside one is no comment


def comment_of(line: str) -> str | None:
    """The comment that ends ``line`` (from its ``#`` on), or None; a ``#`` in a string is text."""
    at = 0
    while True:
        hash_at = line.find("#", at)
        if hash_at < 0:
            return None
        string = _STRING.search(line, at)
        if string is None or string.start() > hash_at:
            return line[hash_at:]
        at = string.end()


def ignored_codes(line: str) -> frozenset[str]:
    """The warning codes a line's ``# ignore: W401, W403`` comment names (none without one)."""
    comment = comment_of(line)
    found = _IGNORE.search(comment) if comment is not None else None
    return frozenset(_CODE.findall(found.group(1))) if found is not None else frozenset()


def silenced(severity: str, code: str, span: Span, sources: Mapping[str, str]) -> bool:
    """Whether a warning's own line (the first line of its span, in its file's text) ignores its code."""
    text = sources.get(span.file)
    if severity == "error" or text is None or span.line < 1:
        return False
    lines = text.splitlines()
    return span.line <= len(lines) and code in ignored_codes(lines[span.line - 1])
