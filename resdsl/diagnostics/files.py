"""Reading and writing files the way every resdsl command does: text that is not UTF-8 is
reported where it breaks, and files are written whole or not at all.

The data goes to a temporary file in the target's folder, is flushed to disk and renamed over
the target (:func:`os.replace`), so a reader sees the old file or the whole new one, never a
part, and a failure leaves neither a partial file nor the temporary one behind. A file that
exists keeps its permission bits; a new one gets what ``open()`` would give under the umask
(``mkstemp`` alone would make it private). A tool that rewrites a spec it read as text
(``fmt``, ``check --fix``) passes the result through :func:`keep_endings` first, so the file
keeps its byte-order mark and line endings wherever a line did not change.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from resdsl.diagnostics import Diagnostic, ResdslError, error
from resdsl.diagnostics.span import Span


def file_mode(path: Path) -> int:
    """An existing file's mode; for a new file what ``open()`` would give under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def replace_file(target: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text is written as UTF-8, newlines as they are) atomically; OSError on failure."""
    path = Path(target)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(target: str | Path, data: bytes | str) -> None:
    """:func:`replace_file`, with a failure reported as diagnostic E502 naming the file."""
    try:
        replace_file(target, data)
    except OSError as exc:
        span = Span(str(target), 0, 0, 0, 0)
        raise ResdslError(error("E502", f"cannot write {target}: {exc.strerror or exc}", span)) from None


# a line ending: LF or CRLF (a lone CR is not one: the parser counts lines at LF, and a comment
# may hold a CR that must stay where it is)
_LINE_END = re.compile(r"\r?\n")


def _lines(text: str) -> list[tuple[str, str]]:
    """``text`` as (content, line ending) pairs; the last ending is "" without a final newline."""
    out: list[tuple[str, str]] = []
    pos = 0
    for match in _LINE_END.finditer(text):
        out.append((text[pos : match.start()], match.group()))
        pos = match.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out


def keep_endings(original: str, new: str) -> str:
    """``new`` written as ``original`` is on disk: ``original``'s byte-order mark, and each line
    that ``new`` keeps (content unchanged) with the ending it had there; changed and added lines
    take the ending of the line they replace, else the file's most common one. ``new`` may use
    any line endings and may or may not start with a byte-order mark; only its content counts."""
    bom = original[: len(original) - len(original.lstrip("\ufeff"))]
    old_lines = _lines(original[len(bom) :])
    new_lines = _lines(new.lstrip("\ufeff"))
    endings = Counter(end for _, end in old_lines if end)
    usual = endings.most_common(1)[0][0] if endings else "\n"
    matcher = difflib.SequenceMatcher(None, [c for c, _ in old_lines], [c for c, _ in new_lines], autojunk=False)
    out = [bom]
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k, (content, end) in enumerate(new_lines[j1:j2]):
            was = old_lines[i1 + k][1] if i1 + k < i2 else ""
            out.append(content + ((was or usual) if end else ""))
    return "".join(out)


def read_text(path: str | Path, shown: str | None = None, newlines: bool = True) -> str:
    """A spec file's text; E004 naming the file (``shown``: as the user wrote it) when it cannot
    be read, and for text that is not UTF-8 the line, column and value of the first bad byte.
    ``newlines``: line endings read as Python's text mode reads them (CRLF and a lone CR become
    LF); ``resdsl fmt``, which writes the file back, keeps them as they are."""
    shown = str(path) if shown is None else shown
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ResdslError(error("E004", f"cannot read {shown}: {reason}", Span(shown, 0, 0, 0, 0))) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResdslError(not_utf8(shown, data, exc.start, newlines)) from None
    return universal_newlines(text) if newlines else text


def universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def not_utf8(shown: str, data: bytes, start: int, newlines: bool = True) -> Diagnostic:
    """E004 at the first byte that is not UTF-8 (columns count characters, as the parser does)."""
    before = data[:start].decode("utf-8").lstrip("\ufeff")
    if newlines:
        before = universal_newlines(before)
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    byte = data[start]
    latin = bytes([byte]).decode("latin-1")
    guess = f"; in Latin-1 it would be {latin!r}" if latin.isprintable() else ""
    return error(
        "E004",
        f"cannot read {shown}: byte 0x{byte:02x} at line {line}, column {column} is not UTF-8",
        Span(shown, line, column, line, column + 1),
        help=f"specs are UTF-8 text: save the file as UTF-8{guess}",
    )
