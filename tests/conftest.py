"""Shared fixtures: the reference data copied from torchvision, and small helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
SPECS = ROOT / "specs"

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


@pytest.fixture(scope="session")
def reference_outputs() -> dict[str, Any]:
    import torch

    return torch.load(FIXTURES / "torchvision" / "reference_outputs.pt")


def rel_error(a: Any, b: Any) -> float:
    return float((a - b).abs().max() / b.abs().max())
