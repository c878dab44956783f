"""Spec names for Python classes."""

from __future__ import annotations

from resdsl.syntax.parser import RESERVED_WORDS


def snake(name: str) -> str:
    """``ResNet`` -> ``res_net``, ``BasicBlock`` -> ``basic_block``: a class name as a spec name."""
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    text = "".join(out).replace("__", "_") or "net"
    return text + "_" if text in RESERVED_WORDS else text
