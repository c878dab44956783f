"""Positions: resdsl spans (1-based lines and character columns) to LSP ranges (0-based lines,
columns in the client's code units, UTF-16 unless negotiated otherwise) and back."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from resdsl.syntax.ast import Span


class Lines:
    """One file's text split as the parser splits it, for converting columns."""

    def __init__(self, text: str, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        stripped = text.lstrip("\ufeff")
        self.bom = len(text) - len(stripped)  # the parser counts columns after byte-order marks
        self.lines = text.split("\n")
        self.encoding = encoding

    def _units(self, chars: str) -> int:
        if self.encoding == types.PositionEncodingKind.Utf8:
            return len(chars.encode("utf-8"))
        if self.encoding == types.PositionEncodingKind.Utf32:
            return len(chars)
        return len(chars) + sum(1 for c in chars if ord(c) > 0xFFFF)

    def position(self, line: int, column: int) -> types.Position:
        """The LSP position of a 1-based (line, column) as spans give them."""
        if line < 1:
            return types.Position(0, 0)
        if line > len(self.lines):
            return types.Position(len(self.lines) - 1, self._units(self.lines[-1]))
        text = self.lines[line - 1]
        chars = max(column - 1, 0) + (self.bom if line == 1 else 0)
        return types.Position(line - 1, self._units(text[:chars]))

    def range(self, span: Span) -> types.Range:
        if not span.line:
            return types.Range(types.Position(0, 0), types.Position(0, 0))
        return types.Range(self.position(span.line, span.column), self.position(span.end_line, span.end_column))

    def column(self, position: types.Position) -> tuple[int, int]:
        """The 1-based (line, column) of an LSP position, as spans count them."""
        if position.line >= len(self.lines):
            return len(self.lines), len(self.lines[-1]) + 1
        text = self.lines[position.line]
        units = chars = 0
        while chars < len(text) and units < position.character:
            units += self._units(text[chars])
            chars += 1
        if position.line == 0:
            chars = max(chars - self.bom, 0)
        return position.line + 1, chars + 1

    def prefix(self, position: types.Position) -> str:
        """The text from the start of the file up to ``position`` (for completion contexts)."""
        line, column = self.column(position)
        before = "\n".join(self.lines[: line - 1])
        current = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        cut = column - 1 + (self.bom if line == 1 else 0)
        return (before + "\n" if line > 1 else "") + current[:cut]


def uri_to_path(uri: str) -> Path | None:
    """The file of a ``file:`` URI (None for an unsaved buffer of another scheme)."""
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path).resolve() if path else None


def path_to_uri(file: str | Path) -> str:
    return from_fs_path(str(Path(file).resolve())) or str(file)


def contains(span: Span, line: int, column: int) -> bool:
    """Whether (line, column) lies in ``span``, its end included (a cursor just after a word)."""
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)
