"""The helpers generated modules carry, cut from the modules ``build_model`` runs.

Each helper has one definition: the part of its module after a marker comment is copied into
generated files (the template writes the imports above it), so what a generated module runs
is what ``build_model`` runs. Nothing here imports torch or the rest of resdsl.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

__all__ = [
    "bias_source",
    "checkpoint_source",
    "choosing_source",
    "copied_names",
    "divisible_source",
    "fold_source",
    "fusion_source",
    "layer_classes",
    "layer_sources",
    "packed_source",
    "runtime_source",
    "weights_source",
    "zero_pad_source",
]

TRAINING = "# --- copied into generated modules from here ---\n"
INFERENCE = "# --- copied into generated inference modules from here ---\n"
ZERO_PAD = "# --- copied into generated modules that zero-pad, from here ---\n"
CHOOSING = "# --- copied into generated modules that choose a shortcut at run time, from here ---\n"
CHECKPOINT = "# --- copied into generated modules that checkpoint, from here ---\n"
DIVISIBLE = "# --- copied into generated modules that call make_divisible, from here ---\n"
# the runtime (resdsl/runtime/) and the IR's fold, read as text: nothing is imported
PACKAGE = Path(__file__).resolve().parents[2]


@cache
def _copied(file: str, start: str, end: str | None = None) -> str:
    text = (PACKAGE / file).read_text(encoding="utf-8").split(start, 1)[1]
    return (text.split(end, 1)[0] if end is not None else text).strip()


def runtime_source() -> str:
    """The shortcut helpers (:mod:`resdsl.runtime.shortcuts`): ``ZeroPadShortcut`` and
    ``make_shortcut``, for a module that chooses a shortcut kind at run time."""
    return zero_pad_source() + "\n\n\n" + choosing_source()


def zero_pad_source() -> str:
    """``ZeroPadShortcut`` alone (:mod:`resdsl.runtime.shortcuts`), for a network that pads."""
    return _copied("runtime/shortcuts.py", ZERO_PAD, CHOOSING)


def choosing_source() -> str:
    """``SHORTCUT_KINDS`` and ``make_shortcut`` (:mod:`resdsl.runtime.shortcuts`); they need
    ``ZeroPadShortcut`` too."""
    return _copied("runtime/shortcuts.py", CHOOSING)


def weights_source() -> str:
    """Checkpoint reading and preprocessing (:mod:`resdsl.runtime.weights`)."""
    return _copied("runtime/weights.py", TRAINING)


def checkpoint_source() -> str:
    """Gradient checkpointing (:mod:`resdsl.runtime.checkpointing`)."""
    return _copied("runtime/checkpointing.py", CHECKPOINT)


def divisible_source() -> str:
    """``make_divisible`` (:mod:`resdsl.semantics.divisible`), for a module that calls it."""
    return _copied("semantics/divisible.py", DIVISIBLE)


def fold_source() -> str:
    """``fold_batchnorm`` (:mod:`resdsl.ir.fold`), for inference modules."""
    return _copied("ir/fold.py", INFERENCE)


def packed_source() -> str:
    """``PackedConv2d`` and ``pack_convolutions`` (:mod:`resdsl.runtime.packed`), for inference modules."""
    return _copied("runtime/packed.py", INFERENCE)


def fusion_source() -> str:
    """``FusedConv``, ``FusedCall`` and ``fuse_convolutions`` (:mod:`resdsl.runtime.fusion`), for
    inference modules (``pack_convolutions`` fuses)."""
    return _copied("runtime/fusion.py", INFERENCE)


def bias_source() -> str:
    """``with_bias`` (the part of :mod:`resdsl.runtime.shortcuts` only inference modules need)."""
    return _copied("runtime/shortcuts.py", INFERENCE, ZERO_PAD)


@cache
def layer_classes() -> dict[str, str]:
    """The source of each class of :mod:`resdsl.runtime.layers` (the layers torch.nn lacks), by
    name: a generated module copies the ones its network uses."""
    text = (PACKAGE / "runtime/layers.py").read_text(encoding="utf-8")
    return {
        node.name: str(ast.get_source_segment(text, node))
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef)
    }


def layer_sources(names: Iterable[str]) -> list[str]:
    """The classes ``names`` of :mod:`resdsl.runtime.layers`, in the file's order."""
    wanted = set(names)
    return [source for name, source in layer_classes().items() if name in wanted]


@cache
def copied_names() -> frozenset[str]:
    """The top-level names (classes, functions, constants) of every copied helper: a spec name
    equal to one must be renamed in generated code, or it would replace the helper."""
    names: set[str] = set(layer_classes())  # each a class's own source: its one name, no need to parse it again
    sources = [
        f()
        for f in (
            runtime_source,
            weights_source,
            checkpoint_source,
            fold_source,
            packed_source,
            fusion_source,
            bias_source,
            divisible_source,
        )
    ]
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return frozenset(names)
