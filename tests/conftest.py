"""Shared fixtures: the reference data copied from torchvision and timm, cached models, small helpers.

Tolerance policy for numerical comparisons (relative error, max|a - b| / max|b|, see ``rel_error``):

- Against external reference data (the torchvision and timm fixtures, computed on another machine and
  torch build): float64 only, the model cast with ``.double()`` after the deterministic fill, held to
  ``REFERENCE_TOL`` = 1e-9. Float32 logits of deep nets differ between processors (and thread counts) by
  up to ~1e-4 in train mode (why the float32 fixture was dropped); float64 differences are ~1e-14, so 1e-9
  leaves five orders of magnitude and still catches any wrong weight, wiring or op (those show as 1e-3
  or worse).
- Two of our own implementations of the same network on the same machine (built vs generated,
  traced/exported/scripted vs eager): float64 with ``SAME_MACHINE_TOL`` = 1e-10. They run the same
  torch kernels in the same order, so they usually agree bit for bit; the margin only covers a
  different but equivalent summation order.
- Comparisons that must run in float32 because float32 is the thing under test (torch.compile's
  generated kernels, channels_last kernels, onnxruntime): ``FLOAT32_TOL`` = 1e-4, with a comment at each
  use. Those back ends legitimately fuse and reorder float32 arithmetic, which costs ~1e-6..1e-5
  relative through an 18-layer net; 1e-4 is a margin over that, not a property of the processor.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
SPECS = ROOT / "specs"

REFERENCE_TOL = 1e-9  # float64, against data computed elsewhere
SAME_MACHINE_TOL = 1e-10  # float64, two of our implementations in the same process or on the same machine
FLOAT32_TOL = 1e-4  # float32 only where float32 itself is under test (compile, channels_last, onnxruntime)

TORCHVISION_MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]
CIFAR = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18, "resnet1202": 200}
# paper.md: exact CIFAR-10 parameter counts (with BN affine), option A shortcuts
CIFAR_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}


def shipped_spec_files() -> list[Path]:
    return sorted(SPECS.glob("*.arch"))


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return json.loads((FIXTURES / "torchvision" / "manifest.json").read_text())["models"]


@pytest.fixture(scope="session")
def reference_outputs_f64() -> dict[str, Any]:
    """torchvision's logits in float64: ``{"input": [2,3,96,96], "outputs": {name: {output_eval, output_train}}}``."""
    import torch

    return torch.load(FIXTURES / "torchvision" / "reference_outputs_f64.pt")


# The three helpers below are also pasted, by inspect.getsource, into the script that test_codegen runs
# where resdsl cannot be imported: keep them self-contained (torch, math and typing.Any only).


def state_listing(model: Any) -> list[list[Any]]:
    """``[key, shape, dtype]`` for every state_dict entry, in order: the fixture manifests' format."""
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def deterministic_fill(entries: list[list[Any]]) -> dict[str, Any]:
    """The fixture README's fill: one generator seeded 0, entries in manifest order."""
    import torch

    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape, _dtype in entries:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) * math.sqrt(1 / math.prod(shape[1:]))
        elif key.endswith("weight"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out


def outputs_f64(model: Any, x: Any) -> dict[str, Any]:
    """The model's float64 outputs in eval and then train mode, with the same dropout masks on every run."""
    import torch

    model.double()
    out = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            model.train(mode == "train")
            torch.manual_seed(1)
            out[mode] = model(x.double())
    return out


def rel_error(a: Any, b: Any) -> float:
    return float((a - b).abs().max() / b.abs().max())


@functools.cache
def _built(spec: str, options: tuple[tuple[str, Any], ...]) -> torch.nn.Module:
    import resdsl

    return resdsl.build_model(spec, **dict(options))


def built_model(spec: str, **options: Any) -> torch.nn.Module:
    """A fresh copy of ``resdsl.build_model(spec, **options)``; each spec is built once per session.

    Building the full-depth nets is most of their cost (weight initialisation); a deep copy is cheaper,
    and leaves the cached original untouched whatever the test does to its copy. The cache holds about
    2.5 GB of float32 weights once every shipped spec has been built.
    """
    return copy.deepcopy(_built(spec, tuple(sorted(options.items()))))


@functools.cache
def compiled(spec: str) -> Any:
    """``resdsl.compile(spec)``, once per session; the IR is only read by the tests that share it."""
    import resdsl

    return resdsl.compile(spec)
