"""The Python API: compile a spec, check it, build a model, generate code, export ONNX.

A *spec* is a path to an ``.arch`` file, the text of one, a shipped name (``"resnet50"``)
or an already compiled :class:`~resdsl.ir.Network`. The package follows the pipeline:
:mod:`~resdsl.api.checking` turns a spec into a checked network (no torch),
:mod:`~resdsl.api.options` keeps a spec's parameters apart from each function's options, and
:mod:`~resdsl.api.building` turns a checked network into a model, a module or an ONNX file.
Torch is imported only by the functions that need it.
"""

from __future__ import annotations

from resdsl.api.building import build_model, export_onnx, generate, save_weights, weight_arrays
from resdsl.api.checking import CheckResult, check, compile, pick_network
from resdsl.api.specs import Spec, parse_override, parse_shape, resolve_spec, shipped_names
from resdsl.resources import library_dir

__all__ = [
    "CheckResult",
    "Spec",
    "build_model",
    "check",
    "compile",
    "export_onnx",
    "generate",
    "library_dir",
    "parse_override",
    "parse_shape",
    "pick_network",
    "resolve_spec",
    "save_weights",
    "shipped_names",
    "weight_arrays",
]
