"""Spec names for Python classes."""

from __future__ import annotations

from resdsl.ops import OPS
from resdsl.syntax.ast import BUILTIN_FORMS, BUILTIN_FUNCTIONS
from resdsl.syntax.parser import LAYER_RESERVED_WORDS, RESERVED_WORDS


def snake(name: str) -> str:
    """``ResNet`` -> ``res_net``, ``BasicBlock`` -> ``basic_block``: a class name as a spec name
    (``sequential_`` for ``nn.Sequential``: a word of the language or an op is not redefined)."""
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    text = "".join(out).replace("__", "_").lstrip("_") or "net"  # torchvision's _DenseLayer
    taken = text in RESERVED_WORDS or text in OPS or text in BUILTIN_FORMS or text in BUILTIN_FUNCTIONS
    return text + "_" if taken else text


def stage_naming(names: list[str]) -> str | None:
    """``prefix="b", start=1`` for blocks named b1, b2, ... (timm's RegNet, torchvision's
    denselayer1, ... and its RegNet's block1-0, block1-1, ...: the keys are kept); "" for 0, 1,
    ...; None where the names are no prefix and count."""
    if names == [str(i) for i in range(len(names))]:
        return ""
    prefix = names[0].rstrip("0123456789") if names else ""
    start = names[0][len(prefix) :] if names else ""
    if not start or (prefix and not prefix.replace("-", "_").isidentifier()):
        return None
    if names != [f"{prefix}{int(start) + i}" for i in range(len(names))]:
        return None
    return f'prefix="{prefix}", start={int(start)}' if prefix else f"start={int(start)}"


def reserved_layer(attr: str) -> str | None:
    """The first part of a module path that is a word of the language no layer of a spec can be
    named (E005: ``input``, ``if``, ...; ``block``, a keyword only where a definition starts,
    may: torchvision's ConvNeXt holds ``self.block``); None where every part may name a layer."""
    return next((part for part in attr.split(".") if part in LAYER_RESERVED_WORDS), None)
