"""resdsl: a compiler for residual networks.

``resdsl.check`` and ``resdsl.compile`` never import torch; ``build_model`` and ``generate``
bring in their back ends on demand (``export_onnx`` needs onnx, never torch).
"""

from resdsl._version import __version__
from resdsl.api import CheckResult, build_model, check, compile, export_onnx, generate, save_weights
from resdsl.diagnostics import Diagnostic, ResdslError
from resdsl.importing import import_model

__all__ = [
    "CheckResult",
    "Diagnostic",
    "ResdslError",
    "__version__",
    "build_model",
    "check",
    "compile",
    "export_onnx",
    "generate",
    "import_model",
    "save_weights",
]
