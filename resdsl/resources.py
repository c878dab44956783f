"""Where the grammar and the shipped ``.arch`` library live.

In a wheel they travel inside the package (``resdsl/_data``); in a source checkout they are
the top-level ``grammars/`` and ``specs/`` folders. Either way they are found from any
working directory.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    packaged = _PACKAGE / "_data"
    if (packaged / "grammars").is_dir():
        return packaged
    return _PACKAGE.parent


def grammar_path() -> Path:
    return data_root() / "grammars" / "arch.lark"


def library_dir() -> Path:
    """The shipped specs; also the root that ``import "std/blocks.arch"`` falls back to."""
    return data_root() / "specs"


def shipped_specs() -> list[Path]:
    return sorted(library_dir().glob("*.arch"))
