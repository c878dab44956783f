"""The helpers generated modules carry, cut from the modules ``build_model`` runs.

Each helper has one definition: the part of its module after a marker comment is copied into
generated files (the template writes the imports above it), so what a generated module runs
is what ``build_model`` runs. Nothing here imports torch or the rest of resdsl.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

__all__ = [
    "bias_source",
    "checkpoint_source",
    "copied_names",
    "flatten_linear_source",
    "fold_source",
    "packed_source",
    "runtime_source",
    "weights_source",
]

TRAINING = "# --- copied into generated modules from here ---\n"
INFERENCE = "# --- copied into generated inference modules from here ---\n"
CHECKPOINT = "# --- copied into generated modules that checkpoint, from here ---\n"
# the runtime (resdsl/runtime/) and the IR's fold, read as text: nothing is imported
PACKAGE = Path(__file__).resolve().parents[2]


@cache
def _copied(file: str, start: str, end: str | None = None) -> str:
    text = (PACKAGE / file).read_text(encoding="utf-8").split(start, 1)[1]
    return (text.split(end, 1)[0] if end is not None else text).strip()


def runtime_source() -> str:
    """The shortcut helpers (:mod:`resdsl.runtime.shortcuts`)."""
    return _copied("runtime/shortcuts.py", TRAINING)


def weights_source() -> str:
    """Checkpoint reading and preprocessing (:mod:`resdsl.runtime.weights`)."""
    return _copied("runtime/weights.py", TRAINING)


def checkpoint_source() -> str:
    """Gradient checkpointing (:mod:`resdsl.runtime.checkpointing`)."""
    return _copied("runtime/checkpointing.py", CHECKPOINT)


def fold_source() -> str:
    """``fold_batchnorm`` (:mod:`resdsl.ir.fold`), for inference modules."""
    return _copied("ir/fold.py", INFERENCE)


def packed_source() -> str:
    """``PackedConv2d`` and ``pack_convolutions`` (:mod:`resdsl.runtime.packed`), for inference modules."""
    return _copied("runtime/packed.py", INFERENCE)


def bias_source() -> str:
    """``with_bias`` (the part of :mod:`resdsl.runtime.shortcuts` only inference modules need)."""
    return _copied("runtime/shortcuts.py", INFERENCE, TRAINING)


@cache
def flatten_linear_source() -> str:
    """``FlattenLinear`` (:mod:`resdsl.runtime.shortcuts`): a linear layer in a sequential group
    that flattens its input itself, as build_model's does."""
    text = (PACKAGE / "runtime/shortcuts.py").read_text(encoding="utf-8")
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == "FlattenLinear")
    segment = ast.get_source_segment(text, node)
    assert segment is not None
    return segment


@cache
def copied_names() -> frozenset[str]:
    """The top-level names (classes, functions, constants) of every copied helper: a spec name
    equal to one must be renamed in generated code, or it would replace the helper."""
    names: set[str] = set()
    helpers = (runtime_source, weights_source, checkpoint_source, fold_source, packed_source, bias_source)
    for source in (*helpers, flatten_linear_source):
        for node in ast.parse(source()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return frozenset(names)
