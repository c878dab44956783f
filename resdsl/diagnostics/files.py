"""Writing files the way every resdsl command does: whole or not at all.

The data goes to a temporary file in the target's folder, is flushed to disk and renamed over
the target (:func:`os.replace`), so a reader sees the old file or the whole new one, never a
part, and a failure leaves neither a partial file nor the temporary one behind. A file that
exists keeps its permission bits; a new one gets what ``open()`` would give under the umask
(``mkstemp`` alone would make it private).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from resdsl.diagnostics import ResdslError, error
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
