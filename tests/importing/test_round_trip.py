"""Shipped specs' generated modules come back: generate -> load -> import_model -> build_model
gives the same state_dict and float64 outputs (the importer verifies, and so does this test)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

import resdsl

ROOT = Path(__file__).resolve().parents[2]


def _generated(name: str) -> types.ModuleType:
    module = types.ModuleType(f"generated_{name}")
    exec(compile(resdsl.generate(name), f"{name}.py", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize(("name", "shape"), [("resnet18", (3, 32, 32)), ("resnet50", (3, 32, 32))])
def test_generated_module_round_trips(name: str, shape: tuple[int, int, int]) -> None:
    model = _generated(name).ResNet(num_classes=7)
    source = resdsl.import_model(model, name, shape)
    built = resdsl.build_model(source, input_shape=shape)
    assert list(built.state_dict()) == list(model.state_dict())
    built.load_state_dict(model.state_dict())
    x = torch.randn(2, *shape, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model.double().eval()(x), built.double().eval()(x))


def test_cifar_resnet20_with_option_a_round_trips() -> None:
    model = _generated_file(str(ROOT / "specs" / "cifar_resnet.arch")).CifarResNet(n=3)
    source = resdsl.import_model(model, "resnet20", (3, 32, 32))
    assert "residual(zero_pad)" in source and source.count("stage(") == 3
    built = resdsl.build_model(source, input_shape=(3, 32, 32))
    assert list(built.state_dict()) == list(model.state_dict())
    built.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model.double().eval()(x), built.double().eval()(x))


def _generated_file(path: str) -> types.ModuleType:
    module = types.ModuleType("generated_file")
    exec(compile(resdsl.generate(path), "generated.py", "exec"), module.__dict__)
    return module
