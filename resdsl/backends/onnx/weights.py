"""Weights for the ONNX back end, as numpy arrays: read from a file, given, or made up.

The exporter asks for every tensor by its ``state_dict`` key (``layer1.0.conv1.weight``) with
the shape the IR says it has; :class:`WeightSource` answers from the arrays it was given
(checking shapes, and afterwards that none was left over) or, without arrays, with seeded
numpy draws from the distributions ``build_model`` initialises with (Kaiming normal fan_out
convs, unit-scale norms, running mean 0 and variance 1, torch's default uniform for linear
layers). Those are *random* weights: the same seed gives the same file, not a trained model.

``.safetensors`` files are read with ``safetensors.numpy`` (no torch). A torch checkpoint
(``.pt``, ``.pth``, ``.bin``, ``.ckpt``) needs torch to unpickle, so it is read above the back
ends (:func:`resdsl.api.weight_arrays`) and arrives here as arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from resdsl.diagnostics import ResdslError, error
from resdsl.syntax.ast import Span

Init = tuple[str, float]  # ("normal", std) | ("uniform", bound) | ("const", value)

IGNORED_SUFFIXES = (".num_batches_tracked",)  # a training counter; inference has no use for it
_LISTED = 8  # keys named per kind of mismatch


def _file_error(path: Path, message: str, help: str | None = None) -> ResdslError:
    return ResdslError(error("E821", message, Span(str(path), 0, 0, 0, 0), help=help))


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """A ``.safetensors`` file as ``{state_dict key: array}``, read with numpy (no torch);
    E821 when it cannot be read. A torch checkpoint is read above the back ends
    (:func:`resdsl.api.weight_arrays`), since unpickling it needs torch."""
    path = Path(path)
    if not path.is_file():
        raise _file_error(path, f"cannot read weights {path}: no such file")
    arrays = _read_safetensors(path)
    if arrays and all(k.startswith("module.") for k in arrays):  # saved from a DDP-wrapped model
        return {k[len("module.") :]: v for k, v in arrays.items()}
    return arrays


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise _file_error(
            path, "reading .safetensors needs the safetensors package", "pip install safetensors"
        ) from None
    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # a broken header, a dtype numpy lacks (bfloat16), a truncated file
        raise _file_error(path, f"cannot read weights {path}: {exc}") from None


def file_error(path: Path, message: str, help: str | None = None) -> ResdslError:
    """E821: a weights file the exporter cannot read."""
    return _file_error(path, message, help)


class WeightSource:
    """Answers the exporter's requests for initial values and remembers what did not fit."""

    def __init__(self, arrays: Mapping[str, Any] | None, seed: int = 0, origin: str = "") -> None:
        self.arrays = None if arrays is None else dict(arrays)
        self.origin = origin  # the file they came from, for diagnostics
        self.rng = np.random.default_rng(seed)
        self.used: set[str] = set()
        self.served: dict[str, np.ndarray] = {}  # every stored tensor handed out, by key
        self.missing: list[str] = []
        self.wrong: list[str] = []

    @property
    def random(self) -> bool:
        return self.arrays is None

    def get(self, key: str, shape: tuple[int, ...], init: Init, stored: bool = True) -> np.ndarray:
        """The float32 array for ``key``; a fixed value (``stored=False``) is never looked up."""
        array = self._get(key, shape, init, stored)
        if stored:
            self.served[key] = array
        return array

    def _get(self, key: str, shape: tuple[int, ...], init: Init, stored: bool) -> np.ndarray:
        kind, value = init
        if stored and self.arrays is not None:
            self.used.add(key)
            if key not in self.arrays:
                self.missing.append(key)
                return np.zeros(shape, np.float32)
            array = np.asarray(self.arrays[key], dtype=np.float32)
            if array.shape != shape:
                self.wrong.append(f"{key}: the file has {_dims(array.shape)}, the network needs {_dims(shape)}")
                return np.zeros(shape, np.float32)
            return array
        if kind == "const" or not stored:
            return np.full(shape, value, np.float32)
        if kind == "normal":
            return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(value)
        if kind == "uniform":
            return self.rng.random(shape, dtype=np.float32) * np.float32(2 * value) - np.float32(value)
        raise ValueError(f"unknown init {init!r}")

    def check(self, network: str) -> None:
        """E822 listing every missing, misshapen and unexpected tensor, if any."""
        if self.arrays is None:
            return
        extra = sorted(k for k in self.arrays if k not in self.used and not k.endswith(IGNORED_SUFFIXES))
        if not (self.missing or self.wrong or extra):
            return
        notes: list[str] = []
        for title, keys in (("missing", self.missing), ("wrong shape", self.wrong), ("unexpected", extra)):
            shown = ", ".join(keys[:_LISTED]) + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")
            if keys:
                notes.append(f"{title} ({len(keys)}): {shown}")
        counts = f"{len(self.missing)} missing, {len(self.wrong)} of the wrong shape, {len(extra)} unexpected"
        raise ResdslError(
            error(
                "E822",
                f"the weights do not fit {network}: {counts}",
                Span(self.origin or "<weights>", 0, 0, 0, 0),
                notes,
                help="keys and shapes must be build_model(spec).state_dict()'s (same spec, --set and --head)",
            )
        )


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape) or "a scalar"
